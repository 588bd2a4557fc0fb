/* main: the luamr command line — run, dry-run, validate, and (started as `bootstrap` or
 * inside Lambda) the custom-runtime loop. Sees engine, connectors, lua and lambda. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lambda/bootstrap.h"
#include "../lambda/package.h"
#include "../lambda/upload.h"
#include "../connectors/s3.h"
#include "mr_error.h"
#include "runner.h"

#define LUAMR_VERSION "0.1.0"


typedef struct command {
    const char *name;
    const char *usage;
    const char *help;
    int (*fn)(int argc, char **argv);
} command;

static const command *main_find(const char *name);

static int main_usage_error(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "luamr %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see 'luamr %s --help')\n", cmd);
    return 2;
}

static int main_print_help(const char *name)
{
    const command *c = main_find(name);
    printf("usage: luamr %s %s\n\n%s", c->name, c->usage, c->help);
    return 0;
}

enum { OPT_SAMPLE = 256, OPT_OUT, OPT_CONCURRENCY, OPT_EXECUTOR, OPT_FUNCTION, OPT_RUN_ID,
       OPT_RESUME, OPT_FROM_RUN, OPT_QUIET, OPT_HELP };

static const struct option main_run_options[] = {
    {"sample", required_argument, NULL, OPT_SAMPLE},
    {"out", required_argument, NULL, OPT_OUT},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {"executor", required_argument, NULL, OPT_EXECUTOR},
    {"function", required_argument, NULL, OPT_FUNCTION},
    {"run-id", required_argument, NULL, OPT_RUN_ID},
    {"resume", required_argument, NULL, OPT_RESUME},
    {"from-run", required_argument, NULL, OPT_FROM_RUN},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static int main_parse_count(const char *cmd, const char *opt, const char *arg, long long *out)
{
    char *end;
    long long v = strtoll(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || v <= 0) {
        fprintf(stderr, "luamr %s: %s needs a positive whole number, got '%s'\n", cmd, opt, arg);
        return -1;
    }
    *out = v;
    return 0;
}

/* Shared by run and dry-run; dry-run allows --sample and --out. */
static int main_run_like(int argc, char **argv, int dry)
{
    const char *cmd = dry ? "dry-run" : "run";
    runner_opts o = {0};
    long long n;
    int opt;
    optind = 1;
    opterr = 0;
    o.dry_run = dry;
    while ((opt = getopt_long(argc, argv, "o:q", main_run_options, NULL)) != -1) {
        switch (opt) {
        case OPT_HELP: return main_print_help(cmd);
        case OPT_SAMPLE:
            if (!dry) return main_usage_error(cmd, "%s is a dry-run option", "--sample");
            if (main_parse_count(cmd, "--sample", optarg, &n)) return 2;
            o.sample = (uint64_t)n;
            break;
        case 'o':
        case OPT_OUT:
            if (!dry) return main_usage_error(cmd, "%s is a dry-run option", "--out");
            o.out_dir = optarg;
            break;
        case OPT_CONCURRENCY:
            if (main_parse_count(cmd, "--concurrency", optarg, &n)) return 2;
            o.concurrency = (int)n;
            break;
        case OPT_EXECUTOR:
            if (strcmp(optarg, "local") && strcmp(optarg, "lambda"))
                return main_usage_error(cmd, "--executor is local or lambda, not '%s'", optarg);
            o.executor = optarg;
            break;
        case OPT_FUNCTION: o.function = optarg; break;
        case OPT_RUN_ID: o.run_id = optarg; break;
        case OPT_RESUME: o.resume = optarg; break;
        case OPT_FROM_RUN: o.from_run = optarg; break;
        case 'q':
        case OPT_QUIET: o.quiet = 1; break;
        default:
            return main_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return main_usage_error(cmd, "%s", optind >= argc ? "needs one CONFIG file" : "takes one CONFIG file");
    o.config_uri = argv[optind];
    mr_err e = {0};
    mr_code code = runner_run(&o, &e);
    if (code == MR_OK) return 0;
    if (o.quiet || e.msg[0]) fprintf(stderr, "luamr %s: %s\n", cmd, e.msg);
    return 1;
}

static int main_run(int argc, char **argv) { return main_run_like(argc, argv, 0); }
static int main_dry_run(int argc, char **argv) { return main_run_like(argc, argv, 1); }

static int main_validate(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--help") == 0) return main_print_help("validate");
    if (argc != 2) return main_usage_error("validate", "%s", "needs one CONFIG file");
    mr_err e = {0};
    if (runner_validate(argv[1], &e) != MR_OK) {
        fprintf(stderr, "luamr validate: %s\n", e.msg);
        return 1;
    }
    printf("%s: ok\n", argv[1]);
    return 0;
}

static int main_version(int argc, char **argv)
{
    printf("luamr %s\n", LUAMR_VERSION);
    return 0;
}

static const command main_commands[] = {
    {"run", "CONFIG [options]",
     "Runs the dataset CONFIG: one mapper task per manifest entry on a pool of worker\n"
     "processes, then the reducer; publishes the output atomically.\n\n"
     "  --concurrency N     worker processes (default: compute.concurrency, else cores)\n"
     "  --executor E        local or lambda (default: compute.executor)\n"
     "  --function NAME     the Lambda function (executor lambda)\n"
     "  --run-id ID         name this run (default: UTC time and process id)\n"
     "  --resume ID         rerun run ID, skipping map tasks whose intermediates verify\n"
     "  --from-run ID       REDUCER_ONLY: reduce the intermediates of run ID (default: latest)\n"
     "  -q, --quiet         no progress line and no summary on success\n",
     main_run},
    {"dry-run", "CONFIG [--sample N] [--out DIR]",
     "Runs CONFIG locally, reading at most N records per task, writing to DIR\n"
     "(default ./dry-run-out) instead of the configured destinations; prints the head of\n"
     "the result.\n\n"
     "  --sample N          at most N records per map task\n"
     "  -o, --out DIR       where output, intermediates and errors go\n"
     "  --concurrency N     worker processes\n",
     main_dry_run},
    {"validate", "CONFIG",
     "Checks the config (every field) and the job script (syntax, the functions the task\n"
     "mode needs) without running anything. Exit status 0 when both are valid.\n",
     main_validate},
    {"package", "[CONFIG] [-o function.zip]",
     "Builds the Lambda deployment zip (bootstrap + lib/); see 'luamr package --help'.\n",
     lambda_package_main},
    {"upload", "CONFIG [--to s3://bucket/prefix/]",
     "Puts the script and CONFIG on S3 for the Lambda executor; see 'luamr upload --help'.\n",
     lambda_upload_main},
    {"version", "", "Prints the version.\n", main_version},
};

static const command *main_find(const char *name)
{
    for (size_t i = 0; i < sizeof main_commands / sizeof main_commands[0]; i++)
        if (strcmp(main_commands[i].name, name) == 0) return &main_commands[i];
    return NULL;
}

static void main_help(FILE *out)
{
    fprintf(out, "usage: luamr COMMAND [options]\n\n"
                 "luamr runs Lua map/reduce jobs over local files and S3, on a laptop or on AWS Lambda.\n\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof main_commands / sizeof main_commands[0]; i++)
        fprintf(out, "  %-10s %s\n", main_commands[i].name, main_commands[i].usage);
    fprintf(out, "\n'luamr COMMAND --help' describes a command's options.\n");
}

int main(int argc, char **argv)
{
    s3_register();   /* s3:// URIs everywhere a path is taken */
    if (lambda_bootstrap_wanted(argv[0], argc)) return lambda_bootstrap_main();
    if (argc < 2) {
        main_help(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        main_help(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) return main_version(argc, argv);
    const command *c = main_find(argv[1]);
    if (!c) {
        fprintf(stderr, "luamr: unknown command '%s' (see 'luamr --help')\n", argv[1]);
        return 2;
    }
    return c->fn(argc - 1, argv + 1);
}
