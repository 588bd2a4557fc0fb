/* Unit tests for engine/config.c: every field, defaults, path resolution, validation
 * messages (field path, expectation, suggestion for typos), files and canonical JSON. */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/config.h"

/* tests/data/configs, from the environment CTest sets or from this file's location. */
static const char *configs_dir(void)
{
    static char dir[PATH_MAX];
    const char *src = getenv("LUAMR_SOURCE_DIR");
    if (src) {
        snprintf(dir, sizeof dir, "%s/tests/data/configs", src);
    } else {
        snprintf(dir, sizeof dir, "%s", __FILE__);
        char *cut = strstr(dir, "/tests/unit/");
        ck_assert_ptr_nonnull(cut);
        strcpy(cut, "/tests/data/configs");
    }
    return dir;
}

static config *parse_ok(const char *json)
{
    mr_err e = {0};
    config *c = config_parse(json, "job.json", "/jobs/x", &e);
    ck_assert_msg(c != NULL, "%s", e.msg);
    return c;
}

/* Expects failure with a message containing every needle. */
static void parse_fails(const char *json, const char *needle1, const char *needle2)
{
    mr_err e = {0};
    config *c = config_parse(json, "job.json", "/jobs/x", &e);
    ck_assert_msg(c == NULL, "accepted: %s", json);
    ck_assert_int_eq(e.code, MR_EINVAL);
    ck_assert_msg(strncmp(e.msg, "job.json: ", 10) == 0, "message lacks the file: %s", e.msg);
    ck_assert_msg(strstr(e.msg, needle1) != NULL, "'%s' not in: %s", needle1, e.msg);
    if (needle2) ck_assert_msg(strstr(e.msg, needle2) != NULL, "'%s' not in: %s", needle2, e.msg);
}

#define BASE "\"name\": \"job\", \"script\": \"job.lua\", "
#define INPUT "\"readConnector\": {\"manifest\": \"in.txt\"}"

/* ---- fields ---- */

START_TEST(test_full_config_file)
{
    mr_err e = {0};
    char path[PATH_MAX + 32], real[PATH_MAX];
    snprintf(path, sizeof path, "%s/full.json", configs_dir());
    ck_assert_ptr_nonnull(realpath(configs_dir(), real));
    config *c = config_load(path, &e);
    ck_assert_msg(c != NULL, "%s", e.msg);
    char want[PATH_MAX + 64];
    ck_assert_str_eq(c->dir, real);
    ck_assert_str_eq(c->name, "sales-by-region");
    ck_assert_ptr_nonnull(c->description);
    snprintf(want, sizeof want, "%s/jobs/sales.lua", real);
    ck_assert_str_eq(c->script, want);
    ck_assert_int_eq(c->mode, CONFIG_MAPPER_AND_REDUCER);
    ck_assert_uint_eq(c->nmanifest, 3);
    snprintf(want, sizeof want, "%s/data/2024/*.csv", real);
    ck_assert_str_eq(c->manifest[0], want);
    ck_assert_str_eq(c->manifest[1], "/abs/extra.csv");
    ck_assert_str_eq(c->manifest[2], "s3://bucket/sales/2023/");
    snprintf(want, sizeof want, "%s/lists/more-inputs.txt.gz", real);
    ck_assert_str_eq(c->manifest_file, want);
    ck_assert_str_eq(c->read_format, "csv");
    ck_assert_int_eq(c->delimiter, ';');
    ck_assert_int_eq(c->header, 0);
    ck_assert_uint_eq(c->ncolumns, 4);
    ck_assert_str_eq(c->columns[0].name, "region");
    ck_assert_int_eq(c->columns[0].type, FRAME_STR);
    ck_assert_int_eq(c->columns[1].type, FRAME_I64);
    ck_assert_int_eq(c->columns[2].type, FRAME_F64);
    ck_assert_int_eq(c->columns[3].type, FRAME_BOOL);
    ck_assert_uint_eq(c->split_size, (uint64_t)64 * 1024 * 1024);
    ck_assert_str_eq(c->intermediate, "s3://bucket/tmp/sales/");
    ck_assert_int_eq(c->intermediate_level, 6);
    snprintf(want, sizeof want, "%s/out/sales.csv", real);
    ck_assert_str_eq(c->write_location, want);
    ck_assert_str_eq(c->write_format, "csv");
    ck_assert_int_eq(c->write_gzip, 1);
    snprintf(want, sizeof want, "%s/bad/", real);
    ck_assert_str_eq(c->error_location, want);
    ck_assert_int_eq(c->max_bad_records, 100);
    ck_assert_int_eq(c->skip_bad_map_records, 1);
    ck_assert_str_eq(c->executor, "lambda");
    ck_assert_int_eq(c->concurrency, 200);
    ck_assert_int_eq(c->max_attempts, 5);
    ck_assert_int_eq(c->reducers, 8);
    ck_assert_uint_eq(c->memory_budget, (uint64_t)1536 << 20);
    ck_assert(c->task_timeout == 600.5);
    ck_assert_str_eq(c->function, "arn:aws:lambda:eu-west-1:123456789012:function:luamr");
    ck_assert_str_eq(c->region, "eu-west-1");
    config_free(c);
}
END_TEST

START_TEST(test_split_default)
{
    config *c = parse_ok("{" BASE INPUT ", \"compute\": {\"memoryMB\": 256}}");
    ck_assert_uint_eq(c->split_size, (uint64_t)32 << 20);
    config_free(c);
    c = parse_ok("{" BASE INPUT ", \"compute\": {\"memoryMB\": 4096}}");
    ck_assert_uint_eq(c->split_size, (uint64_t)128 << 20);
    config_free(c);
    c = parse_ok("{" BASE INPUT ", \"compute\": {\"memoryMB\": 16}}");
    ck_assert_uint_eq(c->split_size, (uint64_t)2 << 20);
    config_free(c);
    /* inside a Lambda function the budget follows its memory; the splits do not, since
     * the driver that plans them does not see that memory */
    setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "2048", 1);
    c = parse_ok("{" BASE INPUT ", \"compute\": {\"executor\": \"lambda\", \"function\": \"f\"}}");
    ck_assert_uint_eq(c->memory_budget, (uint64_t)1536 << 20);
    ck_assert_uint_eq(c->split_size, (uint64_t)128 << 20);
    config_free(c);
    c = parse_ok("{" BASE INPUT ", \"compute\": {\"executor\": \"lambda\", \"function\": \"f\", "
                 "\"memoryMB\": 512}}");
    ck_assert_uint_eq(c->memory_budget, (uint64_t)512 << 20);
    config_free(c);
    unsetenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE");
    c = parse_ok("{" BASE INPUT ", \"compute\": {\"executor\": \"lambda\", \"function\": \"f\"}}");
    ck_assert_uint_eq(c->memory_budget, (uint64_t)1024 << 20);
    config_free(c);
    /* 0 says one task per file, whatever the budget */
    c = parse_ok("{\"name\": \"job\", \"script\": \"job.lua\", \"readConnector\": "
                 "{\"manifest\": [\"a.txt\"], \"splitSize\": 0}, "
                 "\"compute\": {\"memoryMB\": 16}}");
    ck_assert_uint_eq(c->split_size, 0);
    config_free(c);
}
END_TEST

START_TEST(test_defaults)
{
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    config *c = parse_ok("{" BASE INPUT "}");
    ck_assert_int_eq(c->mode, CONFIG_MAPPER_AND_REDUCER);
    ck_assert_str_eq(c->read_format, "lines");
    ck_assert_int_eq(c->delimiter, ',');
    ck_assert_int_eq(c->header, 1);
    ck_assert_ptr_null(c->columns);
    /* Spark's 128 MB, unless an eighth of the budget is less */
    uint64_t eighth = c->memory_budget / 8 - c->memory_budget / 8 % (1 << 20);
    ck_assert_uint_eq(c->split_size, eighth < (128u << 20) ? eighth : (128u << 20));
    ck_assert_str_eq(c->intermediate, "/jobs/x/.luamr/job");
    ck_assert_int_eq(c->intermediate_level, 1);
    ck_assert_str_eq(c->write_location, "/jobs/x/output/");
    ck_assert_str_eq(c->write_format, "json");
    ck_assert_int_eq(c->write_gzip, 0);
    ck_assert_str_eq(c->error_location, "/jobs/x/output/_errors");
    ck_assert_int_eq(c->max_bad_records, 0);
    ck_assert_int_eq(c->skip_bad_map_records, 0);
    ck_assert_str_eq(c->executor, "local");
    ck_assert_int_eq(c->concurrency, (int)sysconf(_SC_NPROCESSORS_ONLN));
    ck_assert_int_eq(c->max_attempts, 1);
    ck_assert_int_eq(c->reducers, 1);
    uint64_t ram = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGE_SIZE);
    ck_assert_uint_le(c->memory_budget, ram);
    ck_assert_uint_ge(c->memory_budget, (uint64_t)64 << 20);
    ck_assert(c->task_timeout == 0);
    ck_assert_ptr_null(c->function);
    ck_assert_ptr_null(c->region);
    config_free(c);

    /* Lambda changes the retry and memory defaults; the region comes from the environment. */
    setenv("AWS_DEFAULT_REGION", "us-east-2", 1);
    c = parse_ok("{" BASE INPUT ", \"compute\": {\"executor\": \"lambda\", \"function\": \"f\"}}");
    ck_assert_int_eq(c->max_attempts, 3);
    ck_assert_uint_eq(c->memory_budget, (uint64_t)1024 << 20);
    ck_assert_str_eq(c->region, "us-east-2");
    config_free(c);
    setenv("AWS_REGION", "eu-central-1", 1);
    c = parse_ok("{" BASE INPUT ", \"compute\": {\"executor\": \"lambda\", \"function\": \"f\"}}");
    ck_assert_str_eq(c->region, "eu-central-1");
    config_free(c);
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");

    /* tsv implies a tab delimiter; an output file puts errors beside it. */
    c = parse_ok("{" BASE "\"readConnector\": {\"manifest\": \"a\", \"format\": \"tsv\"}, "
                 "\"writeConnector\": {\"location\": \"s3://b/out/result.json\"}}");
    ck_assert_int_eq(c->delimiter, '\t');
    ck_assert_str_eq(c->error_location, "s3://b/out/_errors");
    config_free(c);
}
END_TEST

START_TEST(test_modes)
{
    config *c = parse_ok("{" BASE "\"taskMode\": \"REDUCER_ONLY\"}");   /* no manifest needed */
    ck_assert_int_eq(c->mode, CONFIG_REDUCER_ONLY);
    ck_assert_str_eq(config_mode_name(c->mode), "REDUCER_ONLY");
    config_free(c);
    c = parse_ok("{" BASE "\"taskMode\": \"MAPPER_ONLY\", "
                 "\"readConnector\": {\"manifestFile\": \"list.txt\"}}");
    ck_assert_int_eq(c->mode, CONFIG_MAPPER_ONLY);
    ck_assert_str_eq(c->manifest_file, "/jobs/x/list.txt");
    config_free(c);
    parse_fails("{" BASE "\"taskMode\": \"MAPPER_ONLY\"}", "readConnector:", "manifest");
    parse_fails("{\"name\": \"job\", \"script\": \"job.lua\"}",
                "taskMode MAPPER_AND_REDUCER reads input", NULL);
    parse_fails("{" BASE "\"taskMode\": \"REDUCE\"}",
                "taskMode: expected one of MAPPER_AND_REDUCER, MAPPER_ONLY, REDUCER_ONLY", NULL);
}
END_TEST

START_TEST(test_paths)
{
    mr_err e = {0};
    config *c = parse_ok("{\"name\": \"j\", \"script\": \"./lib/j.lua\", \"readConnector\": "
                         "{\"manifest\": [\"a/*.txt\", \"/data/b\", \"s3://bkt/p/\", \".\"]},"
                         "\"intermediate\": {\"location\": \"tmp\"}, "
                         "\"errorConnector\": {\"location\": \"s3://bkt/err/\"}}");
    ck_assert_str_eq(c->script, "/jobs/x/lib/j.lua");
    ck_assert_uint_eq(c->nmanifest, 4);
    ck_assert_str_eq(c->manifest[0], "/jobs/x/a/*.txt");
    ck_assert_str_eq(c->manifest[1], "/data/b");
    ck_assert_str_eq(c->manifest[2], "s3://bkt/p/");
    ck_assert_str_eq(c->manifest[3], "/jobs/x");
    ck_assert_str_eq(c->intermediate, "/jobs/x/tmp");
    ck_assert_str_eq(c->error_location, "s3://bkt/err/");
    config_free(c);
    /* A config read from S3 resolves against its prefix. */
    c = config_parse("{" BASE INPUT "}", "s3://bkt/jobs/job.json", "s3://bkt/jobs", &e);
    ck_assert_msg(c != NULL, "%s", e.msg);
    ck_assert_str_eq(c->script, "s3://bkt/jobs/job.lua");
    ck_assert_str_eq(c->manifest[0], "s3://bkt/jobs/in.txt");
    ck_assert_str_eq(c->path, "s3://bkt/jobs/job.json");
    config_free(c);
    /* No folder given: the current one. */
    char cwd[PATH_MAX], want[PATH_MAX + 16];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    c = config_parse("{" BASE INPUT "}", NULL, NULL, &e);
    ck_assert_msg(c != NULL, "%s", e.msg);
    snprintf(want, sizeof want, "%s/in.txt", cwd);
    ck_assert_str_eq(c->manifest[0], want);
    config_free(c);
}
END_TEST

START_TEST(test_split_size_units)
{
    static const struct { const char *text; uint64_t bytes; } ok[] = {
        {"1048576", 1048576},      {"\"64MB\"", 64ull << 20}, {"\"1.5 GB\"", 3ull << 29},
        {"\"512k\"", 512ull << 10}, {"\"2GiB\"", 2ull << 30},  {"0", 0},
    };
    char json[256];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        snprintf(json, sizeof json,
                 "{" BASE "\"readConnector\": {\"manifest\": \"a\", \"splitSize\": %s}}",
                 ok[i].text);
        config *c = parse_ok(json);
        ck_assert_uint_eq(c->split_size, ok[i].bytes);
        config_free(c);
    }
    static const char *const bad[] = {"-1", "1.5", "\"lots\"", "\"12 parsecs\"", "true"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(json, sizeof json,
                 "{" BASE "\"readConnector\": {\"manifest\": \"a\", \"splitSize\": %s}}", bad[i]);
        parse_fails(json, "readConnector.splitSize: expected", NULL);
    }
}
END_TEST

/* ---- validation messages ---- */

START_TEST(test_type_and_value_errors)
{
    static const struct { const char *json, *n1, *n2; } cases[] = {
        {"{" BASE INPUT ", \"writeConnector\": {\"format\": \"xml\"}}",
         "writeConnector.format: expected one of json, jsonl, csv, got the string 'xml'", NULL},
        {"{" BASE "\"readConnector\": {\"manifest\": \"a\", \"format\": \"parquet\"}}",
         "readConnector.format: expected one of lines, csv, tsv, jsonl, warc", "'parquet'"},
        {"{" BASE INPUT ", \"compute\": {\"concurrency\": 0}}",
         "compute.concurrency: expected an integer from 1", "got the number 0"},
        {"{" BASE INPUT ", \"compute\": {\"concurrency\": \"4\"}}",
         "compute.concurrency: expected an integer", "got the string '4'"},
        {"{" BASE INPUT ", \"compute\": {\"concurrency\": 2.5}}",
         "compute.concurrency: expected an integer", NULL},
        {"{" BASE INPUT ", \"compute\": {\"maxAttempts\": 0}}", "compute.maxAttempts", NULL},
        {"{" BASE INPUT ", \"compute\": {\"reducers\": -3}}", "compute.reducers", NULL},
        {"{" BASE INPUT ", \"compute\": {\"memoryMB\": \"1GB\"}}", "compute.memoryMB", NULL},
        {"{" BASE INPUT ", \"compute\": {\"taskTimeoutSeconds\": -1}}",
         "compute.taskTimeoutSeconds: expected a number of seconds", NULL},
        {"{" BASE INPUT ", \"compute\": {\"executor\": \"lambda\"}}",
         "compute.function: required when compute.executor is lambda", NULL},
        {"{" BASE INPUT ", \"compute\": {\"executor\": \"k8s\"}}",
         "compute.executor: expected one of local, lambda", NULL},
        {"{" BASE INPUT ", \"compute\": []}", "compute: expected an object, got an array", NULL},
        {"{" BASE INPUT ", \"intermediate\": {\"compressionLevel\": 10}}",
         "intermediate.compressionLevel: expected an integer from 0 to 9", NULL},
        {"{" BASE INPUT ", \"writeConnector\": {\"gzip\": \"yes\"}}",
         "writeConnector.gzip: expected true or false", NULL},
        {"{" BASE INPUT ", \"writeConnector\": {\"location\": \"\"}}",
         "writeConnector.location: expected a non-empty string", NULL},
        {"{" BASE INPUT ", \"errorConnector\": {\"maxBadRecords\": -2}}",
         "errorConnector.maxBadRecords: expected an integer from -1", NULL},
        {"{" BASE INPUT ", \"errorConnector\": {\"skipFailingRecords\": 1}}",
         "errorConnector.skipFailingRecords: expected true or false", NULL},
        {"{\"script\": \"a.lua\", " INPUT "}", "name: required", NULL},
        {"{\"name\": \"my job\", \"script\": \"a.lua\", " INPUT "}", "name: expected letters", NULL},
        {"{\"name\": \"j\", " INPUT "}", "script: required", NULL},
        {"{\"name\": 5, \"script\": \"a.lua\", " INPUT "}", "name: expected a string, got the number 5",
         NULL},
        {"{" BASE "\"readConnector\": {\"manifest\": [\"a\", 7]}}",
         "readConnector.manifest[1]: expected a non-empty path string, got the number 7", NULL},
        {"{" BASE "\"readConnector\": {\"manifest\": {}}}",
         "readConnector.manifest: expected a path or an array", NULL},
        {"{" BASE "\"readConnector\": {\"manifest\": \"a\", \"csv\": {\"header\": true}}}",
         "readConnector.csv: only applies to format csv or tsv", NULL},
        {"{" BASE "\"readConnector\": {\"manifest\": \"a\", \"format\": \"csv\", "
         "\"csv\": {\"delimiter\": \",,\"}}}",
         "readConnector.csv.delimiter: expected a single-character string", NULL},
        {"{" BASE "\"readConnector\": {\"manifest\": \"a\", \"columns\": "
         "[{\"name\": \"a\", \"type\": \"int64\"}, {\"name\": \"b\", \"type\": \"varchar\"}]}}",
         "readConnector.columns[1].type: expected one of int64, float64, bool, string",
         "'varchar'"},
        {"{" BASE "\"readConnector\": {\"manifest\": \"a\", \"columns\": "
         "[{\"name\": \"a\", \"type\": \"int64\"}, {\"name\": \"a\", \"type\": \"bool\"}]}}",
         "readConnector.columns[1]: column 'a' is listed twice", NULL},
        {"{" BASE "\"readConnector\": {\"manifest\": \"a\", \"columns\": [{\"name\": \"a\"}]}}",
         "readConnector.columns[0]: missing \"type\"", NULL},
        {"{" BASE INPUT ", \"compute\": {\"reducers\": 2, \"reducers\": 3}}",
         "compute.reducers: field given twice", NULL},
        {"[1, 2]", "expected a JSON object at the top level", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        parse_fails(cases[i].json, cases[i].n1, cases[i].n2);
}
END_TEST

START_TEST(test_unknown_fields)
{
    parse_fails("{" BASE INPUT ", \"compute\": {\"concurency\": 4}}",
                "compute.concurency: unknown field (did you mean 'concurrency'?)", NULL);
    parse_fails("{" BASE "\"readConector\": {\"manifest\": \"a\"}}",
                "readConector: unknown field (did you mean 'readConnector'?)", NULL);
    parse_fails("{" BASE INPUT ", \"taskmode\": \"MAPPER_ONLY\"}",
                "taskmode: unknown field (did you mean 'taskMode'?)", NULL);
    parse_fails("{" BASE "\"readConnector\": {\"manifest\": \"a\", \"format\": \"csv\", "
                "\"csv\": {\"delimeter\": \";\"}}}",
                "readConnector.csv.delimeter: unknown field (did you mean 'delimiter'?)", NULL);
    parse_fails("{" BASE INPUT ", \"writeConnector\": {\"compression\": \"gzip\"}}",
                "writeConnector.compression: unknown field (known fields here: location, "
                "format, gzip)", NULL);
    parse_fails("{" BASE INPUT ", \"spark.executor.memory\": \"4g\"}",
                "spark.executor.memory: unknown field (known fields here: name,", NULL);
    parse_fails("{" BASE "\"readConnector\": {\"manifest\": \"a\", \"columns\": "
                "[{\"name\": \"a\", \"typ\": \"int64\"}]}}",
                "readConnector.columns[0].typ: unknown field (did you mean 'type'?)", NULL);
}
END_TEST

START_TEST(test_syntax_errors)
{
    mr_err e = {0};
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/syntax-error.json", configs_dir());
    ck_assert_ptr_null(config_load(path, &e));
    ck_assert_int_eq(e.code, MR_EINVAL);
    ck_assert_msg(strstr(e.msg, path) && strstr(e.msg, "line 3") && strstr(e.msg, "invalid JSON"),
                  "%s", e.msg);
    parse_fails("{\"name\": \"j\"", "line 1", "invalid JSON");
    parse_fails("{\"name\": \"j\"} trailing", "invalid JSON", NULL);
    parse_fails("", "invalid JSON", NULL);

    snprintf(path, sizeof path, "%s/typo.json", configs_dir());
    ck_assert_ptr_null(config_load(path, &e));
    ck_assert_msg(strstr(e.msg, "did you mean 'concurrency'"), "%s", e.msg);
    snprintf(path, sizeof path, "%s/no-such-config.json", configs_dir());
    ck_assert_ptr_null(config_load(path, &e));
    ck_assert_int_eq(e.code, MR_ENOTFOUND);
    config_free(NULL);
}
END_TEST

/* ---- canonical JSON ---- */

START_TEST(test_to_json_round_trip)
{
    mr_err e = {0};
    static const char *const files[] = {"full.json", "minimal.json", "reducer-only.json"};
    for (size_t i = 0; i < 3; i++) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/%s", configs_dir(), files[i]);
        config *c = config_load(path, &e);
        ck_assert_msg(c != NULL, "%s", e.msg);
        char *json = config_to_json(c);
        ck_assert_ptr_nonnull(json);
        /* Resolved and defaulted: the output names absolute paths and every section. */
        ck_assert_ptr_nonnull(strstr(json, c->dir));
        ck_assert_ptr_nonnull(strstr(json, "\"compute\""));
        ck_assert_ptr_nonnull(strstr(json, "\"errorConnector\""));
        /* Parsing the output again (from another folder) gives the same config. */
        config *again = config_parse(json, "again.json", "/elsewhere", &e);
        ck_assert_msg(again != NULL, "%s\n%s", e.msg, json);
        char *json2 = config_to_json(again);
        ck_assert_str_eq(json, json2);
        ck_assert_str_eq(again->script, c->script);
        ck_assert_uint_eq(again->memory_budget, c->memory_budget);
        ck_assert_int_eq(again->mode, c->mode);
        free(json);
        free(json2);
        config_free(again);
        config_free(c);
    }
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("fields");
    tcase_add_test(tc, test_full_config_file);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_split_default);
    tcase_add_test(tc, test_modes);
    tcase_add_test(tc, test_paths);
    tcase_add_test(tc, test_split_size_units);
    suite_add_tcase(s, tc);
    tc = tcase_create("validation");
    tcase_add_test(tc, test_type_and_value_errors);
    tcase_add_test(tc, test_unknown_fields);
    tcase_add_test(tc, test_syntax_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("json");
    tcase_add_test(tc, test_to_json_round_trip);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
