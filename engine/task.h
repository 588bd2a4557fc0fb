/* task: runs one task of a job — a mapper over one input, the reducer over the
 * intermediates, or the publishing of one mapper's frame as an output part — the same way
 * whether a local worker process or a Lambda invocation calls it. Part of the runner:
 * depends on config, plan, imf, connectors (reader, writer, sink, storage) and lua/script. */
#ifndef LUAMR_TASK_H
#define LUAMR_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "../lua/script.h"
#include "config.h"
#include "mr_error.h"
#include "plan.h"

typedef enum task_kind { TASK_MAP = 0, TASK_REDUCE, TASK_PUBLISH } task_kind;

typedef struct task_spec {
    task_kind kind;
    int index;                     /* map: input number; reduce: partition; publish: part */
    int ntasks;
    const plan_input *input;       /* map */
    const char *run_id;
    const char *run_dir;           /* intermediates of this run (folder or s3 prefix) */
    const char *const *inputs;     /* reduce/publish: intermediate URIs */
    size_t ninputs;
    const char *output_uri;        /* reduce/publish: where the result goes */
    const char *error_dir;         /* bad records: <error location>/<run id> */
    uint64_t sample;               /* map: at most this many records (dry-run), 0 = all */
    int nparts;                    /* map: reducers to partition the output for (>= 1);
                                      reduce: partition `index` of each input is read */
    int reduce_to_intermediate;    /* reduce: write the result as an intermediate (output_uri
                                      names it) for a final publish to merge */
    const char *scratch_root;      /* local folder for the task's scratch files (spills, io.open);
                                      NULL: $TMPDIR or /tmp */
    double deadline;               /* wall clock seconds, 0 = none */
} task_spec;

#define TASK_COUNTERS_MAX 4096

typedef struct task_result {
    int failed;
    mr_code code;
    uint64_t records_in, records_out, bad_records, bytes_in, bytes_out;
    uint64_t skipped_records;          /* skipFailingRecords: records map failed on, skipped */
    uint64_t storage_retries;          /* S3 requests retried during the task */
    uint64_t spilled_bytes;            /* reduce: bytes spilled to local disk */
    double seconds;
    char output[1024];                 /* URI written */
    char counters[TASK_COUNTERS_MAX];  /* user counters as a JSON object */
    char error[MR_ERR_MSG_MAX];
} task_result;

const char *task_kind_name(task_kind k);
/* "<run_dir>/map-00003.imf". Caller frees. */
char *task_intermediate_uri(const char *run_dir, int map_index);
/* A task result as a JSON object (the Lambda function's response) and back. */
char *task_result_to_json(const task_result *r);
mr_code task_result_from_json(const char *json, task_result *r, mr_err *e);
/* Parses "map" | "reduce" | "publish"; -1 if unknown. */
int task_kind_parse(const char *name, task_kind *out);
/* Runs the task; r is filled whatever happens (r->failed, r->error on failure). */
void task_run(const config *c, script *s, const task_spec *t, task_result *r);

#endif
