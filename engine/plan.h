/* plan: turns a dataset config's read connector into the list of mapper tasks —
 * expanding manifest entries (files, folders, globs, s3:// prefixes) and manifest files
 * (one entry per line, gzip allowed, '#' comments) into concrete input URIs, and splitting
 * large uncompressed files into byte ranges when splitSize is set.
 * Depends on config and connectors/storage, connectors/stream (part of the runner). */
#ifndef LUAMR_PLAN_H
#define LUAMR_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "mr_error.h"

typedef struct plan_input {
    char *uri;
    uint64_t size;                 /* bytes, 0 when unknown */
    uint64_t range_start, range_end; /* split byte range; end 0 = whole input */
} plan_input;

typedef struct plan {
    plan_input *inputs;
    size_t n;
    size_t files;                  /* distinct files before splitting */
} plan;

/* Expands c's manifest into p (p is zeroed first). An entry that matches nothing is an
 * error naming it; a manifest that matches no file at all is an error. */
mr_code plan_build(const config *c, plan *p, mr_err *e);
void plan_clear(plan *p);

#endif
