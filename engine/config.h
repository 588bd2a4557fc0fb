/* config: the dataset config (JSON, in the spirit of LetsData's dataset config) parsed and
 * validated into a plain struct. Depends on mr_error, frame (column types) and cJSON.
 * Relative paths resolve against the config file's folder; s3:// URIs are kept as they
 * are. Every validation error names the config file and the field path
 * ("job.json: writeConnector.format: expected one of json, jsonl, csv, got the string
 * 'xml'"); unknown fields are errors naming the closest known field. Documented field by
 * field in docs/config.md.
 *
 * Defaults filled by config_parse: intermediate "<dir>/.luamr/<name>", writeConnector
 * location "<dir>/output/" (a trailing '/' marks a folder), errorConnector location
 * "_errors" inside the output folder (or beside the output file), concurrency = online CPUs,
 * maxAttempts 1 (local) or 3 (lambda), memoryMB 3/4 of RAM / concurrency (local) or 1024
 * (lambda; inside the function 3/4 of AWS_LAMBDA_FUNCTION_MEMORY_SIZE), splitSize min(128 MB, memoryMB / 8). MAPPER_* modes need a manifest or manifestFile; REDUCER_ONLY needs neither;
 * executor lambda needs "function". */
#ifndef LUAMR_CONFIG_H
#define LUAMR_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "mr_error.h"

/* split_size while parsing, before the memory budget that sets it is known */
#define CONFIG_SPLIT_AUTO UINT64_MAX

typedef enum config_mode {
    CONFIG_MAPPER_AND_REDUCER = 0,
    CONFIG_MAPPER_ONLY,
    CONFIG_REDUCER_ONLY
} config_mode;

typedef struct config_column {
    char *name;
    frame_type type;
} config_column;

typedef struct config {
    char *path;              /* the config file itself ("-" or NULL for inline) */
    char *dir;               /* folder relative paths resolve against */
    char *name;              /* "name": the job name (required) */
    char *script;            /* "script": path or s3:// URI, resolved (required) */
    config_mode mode;        /* "taskMode" (default MAPPER_AND_REDUCER) */

    /* "readConnector" */
    char **manifest;         /* "manifest": entries (files, folders, globs, s3 prefixes), resolved */
    size_t nmanifest;
    char *manifest_file;     /* "manifestFile": one entry per line (.gz allowed), resolved */
    char *read_format;       /* "format": lines|csv|tsv|jsonl|warc (default lines) */
    char delimiter;          /* "csv.delimiter" (default ',') */
    int header;              /* "csv.header" (default true) */
    config_column *columns;  /* "columns": [{"name","type"}] optional schema */
    size_t ncolumns;
    uint64_t split_size;     /* "splitSize" bytes; 0 = one task per file; default
                                min(128 MB, memoryMB / 8) */

    /* "intermediate" */
    char *intermediate;      /* "location": folder/prefix (default "<dir>/.luamr/<name>") */
    int intermediate_level;  /* "compressionLevel" 0-9 (default 1) */

    /* "writeConnector" */
    char *write_location;    /* "location": a file, or a folder when output has parts */
    char *write_format;      /* "format": json|jsonl|csv (default json) */
    int write_gzip;          /* "gzip" (default false) */

    /* "errorConnector" */
    char *error_location;    /* "location": folder for bad-record JSON lines
                                (default "<write folder>/_errors") */
    int64_t max_bad_records; /* "maxBadRecords": tolerated per task (default 0; -1 = no limit) */
    int skip_bad_map_records;/* "skipFailingRecords": map errors on a record are recorded
                                and skipped (default false) */

    /* "compute" */
    char *executor;          /* "executor": local|lambda (default local) */
    int concurrency;         /* "concurrency" (default: number of cores) */
    int max_attempts;        /* "maxAttempts" per task (default 1 local, 3 lambda) */
    int reducers;            /* "reducers" (default 1) */
    uint64_t memory_budget;  /* "memoryMB" per task in bytes (default: share of RAM) */
    double task_timeout;     /* "taskTimeoutSeconds" (default 0 = none) */
    char *function;          /* "function": Lambda function name/ARN (required for lambda) */
    char *region;            /* "region" (default from AWS_REGION, then AWS_DEFAULT_REGION) */

    char *description;       /* "description": free text for people, optional */
} config;

/* Reads and validates a config from a local path or s3:// URI is the runner's job; this
 * parses text. dir may be NULL (current folder). */
config *config_parse(const char *json_text, const char *path, const char *dir, mr_err *e);
/* Reads a local file and parses it. */
config *config_load(const char *path, mr_err *e);
void config_free(config *c);   /* accepts NULL */
const char *config_mode_name(config_mode m);
/* Job names and run ids name folders: letters, digits, '-', '_' and '.'. Returns the first
 * character outside that set, or NULL when there is none. */
const char *config_bad_name_char(const char *name);
/* The config as canonical JSON (resolved paths, defaults filled). Caller frees. */
char *config_to_json(const config *c);

#endif
