#include "upload.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../connectors/s3.h"
#include "../connectors/storage.h"
#include "../engine/config.h"

#define UPLOAD_MAX_CONFIG (4u << 20)

static const char *upload_basename(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Appends "field 'value' -> prefix/value" to the notes, or fails for an absolute path. */
static mr_code upload_check_path(const char *field, const char *value, const char *config_path,
                                 const char *prefix, char **notes, mr_err *e)
{
    if (strstr(value, "://")) return MR_OK;
    MR_CHECK(value[0] != '/', e, MR_EINVAL,
             "%s: %s is the local path '%s', which a Lambda function cannot read; use an s3:// "
             "location (or a path relative to the config, which resolves under %s)",
             config_path, field, value, prefix);
    char *target = storage_join(prefix, value);
    size_t old = *notes ? strlen(*notes) : 0;
    size_t add = strlen(field) + strlen(value) + (target ? strlen(target) : 0) + 16;
    char *p = realloc(*notes, old + add);
    if (!p || !target) {
        free(target);
        return mr_fail(e, MR_ENOMEM, "out of memory");
    }
    snprintf(p + old, add, "  %s '%s' -> %s\n", field, value, target);
    *notes = p;
    free(target);
    return MR_OK;
}

static mr_code upload_check_field(const cJSON *root, const char *section, const char *key,
                                  const char *config_path, const char *prefix, char **notes, mr_err *e)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, section);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    char field[96];
    snprintf(field, sizeof field, "%s.%s", section, key);
    if (cJSON_IsString(v)) return upload_check_path(field, v->valuestring, config_path, prefix, notes, e);
    if (!cJSON_IsArray(v)) return MR_OK;
    const cJSON *item;
    int i = 0;
    cJSON_ArrayForEach(item, v) {
        snprintf(field, sizeof field, "%s.%s[%d]", section, key, i++);
        if (cJSON_IsString(item))
            MR_TRY(upload_check_path(field, item->valuestring, config_path, prefix, notes, e));
    }
    return MR_OK;
}

char *lambda_upload_rewrite(const char *config_text, const char *config_path,
                            const char *script_name, const char *prefix, char **notes, mr_err *e)
{
    *notes = NULL;
    cJSON *root = cJSON_Parse(config_text);
    MR_CHECK_NULL(cJSON_IsObject(root), (cJSON_Delete(root), e), MR_EFORMAT,
                  "%s: not a JSON object", config_path);
    static const char *const fields[][2] = {
        {"readConnector", "manifest"}, {"readConnector", "manifestFile"},
        {"intermediate", "location"}, {"writeConnector", "location"}, {"errorConnector", "location"},
    };
    mr_code code = MR_OK;
    for (size_t i = 0; code == MR_OK && i < sizeof fields / sizeof fields[0]; i++)
        code = upload_check_field(root, fields[i][0], fields[i][1], config_path, prefix, notes, e);
    char *text = NULL;
    if (code == MR_OK) {
        cJSON_ReplaceItemInObjectCaseSensitive(root, "script", cJSON_CreateString(script_name));
        text = cJSON_Print(root);
        if (!text) mr_fail(e, MR_ENOMEM, "out of memory");
    }
    cJSON_Delete(root);
    if (!text) {
        free(*notes);
        *notes = NULL;
    }
    return text;
}

static char *upload_slurp(const char *path, mr_err *e)
{
    FILE *f = fopen(path, "rb");
    MR_CHECK_NULL(f, e, MR_EIO, "%s: %s", path, strerror(errno));
    char *buf = malloc(UPLOAD_MAX_CONFIG + 1);
    size_t n = buf ? fread(buf, 1, UPLOAD_MAX_CONFIG + 1, f) : 0;
    fclose(f);
    if (!buf || n > UPLOAD_MAX_CONFIG) {
        free(buf);
        mr_fail(e, buf ? MR_ELIMIT : MR_ENOMEM, "%s: larger than 4 MB", path);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* The rewritten config goes through a scratch file: storage uploads files. */
static mr_code upload_text(const char *text, const char *uri, mr_err *e)
{
    const char *tmp = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/luamr-upload-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    MR_CHECK(fd >= 0, e, MR_EIO, "%s: %s", path, strerror(errno));
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    close(fd);
    mr_code code = w == (ssize_t)len ? storage_put_file(path, uri, e)
                                     : mr_fail(e, MR_EIO, "%s: write failed", path);
    unlink(path);
    return code;
}

mr_code lambda_upload(const char *config_path, const char *prefix, char **config_uri, mr_err *e)
{
    *config_uri = NULL;
    s3_register();   /* idempotent; also makes the link pull the S3 connector in */
    config *c = config_load(config_path, e);
    if (!c) return e->code;
    char *own_prefix = NULL;
    if (!prefix && c->intermediate && storage_is_remote(c->intermediate))
        prefix = own_prefix = storage_join(c->intermediate, "_job");
    mr_code code = MR_OK;
    if (!prefix)
        code = mr_fail(e, MR_EINVAL, "%s: where to? give --to s3://bucket/prefix/ (or make "
                       "intermediate.location an s3:// location)", config_path);
    else if (!storage_is_remote(prefix))
        code = mr_fail(e, MR_EINVAL, "--to %s: a Lambda function reads its config from S3; give an s3:// prefix", prefix);
    char *text = code == MR_OK ? upload_slurp(config_path, e) : NULL;
    if (code == MR_OK && !text) code = e->code;
    char *notes = NULL, *rewritten = NULL;
    const char *script_name = upload_basename(c->script);
    if (code == MR_OK) {
        rewritten = lambda_upload_rewrite(text, config_path, script_name, prefix, &notes, e);
        if (!rewritten) code = e->code;
    }
    char *script_uri = code == MR_OK ? storage_join(prefix, script_name) : NULL;
    char *cfg_uri = code == MR_OK ? storage_join(prefix, upload_basename(config_path)) : NULL;
    if (code == MR_OK && storage_is_remote(c->script)) code = mr_fail(e, MR_EINVAL,
        "%s: the script %s is on S3 already; upload the config alone with another tool, or point "
        "script at the local file", config_path, c->script);
    if (code == MR_OK) code = storage_put_file(c->script, script_uri, e);
    if (code == MR_OK) code = upload_text(rewritten, cfg_uri, e);
    if (code == MR_OK) {
        printf("uploaded %s\n         %s\n", script_uri, cfg_uri);
        if (notes) printf("relative paths will resolve under the prefix:\n%s", notes);
        *config_uri = cfg_uri;
        cfg_uri = NULL;
    }
    free(script_uri);
    free(cfg_uri);
    free(notes);
    free(rewritten);
    free(text);
    free(own_prefix);
    config_free(c);
    return code;
}

int lambda_upload_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"to", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *prefix = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 't') {
            prefix = optarg;
        } else if (c == 'h') {
            printf("usage: luamr upload CONFIG [--to s3://bucket/prefix/]\n\n"
                   "Puts the job script and CONFIG on S3 for the Lambda executor; the uploaded\n"
                   "config names the uploaded script. Run the job with the printed URI:\n"
                   "  luamr run s3://bucket/prefix/job.json --executor lambda --function NAME\n\n"
                   "  --to PREFIX   where the two files go (default: <intermediate.location>/_job\n"
                   "                when that is an s3:// location)\n");
            return 0;
        } else {
            fprintf(stderr, "luamr upload: unknown option '%s' (see 'luamr upload --help')\n", argv[optind - 1]);
            return 2;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "luamr upload: needs one CONFIG file (see 'luamr upload --help')\n");
        return 2;
    }
    mr_err e = {0};
    char *uri = NULL;
    if (lambda_upload(argv[optind], prefix, &uri, &e) != MR_OK) {
        fprintf(stderr, "luamr upload: %s\n", e.msg);
        return 1;
    }
    printf("run it: luamr run %s --executor lambda --function NAME\n", uri);
    free(uri);
    return 0;
}
