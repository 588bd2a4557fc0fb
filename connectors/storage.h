/* storage: object-store style operations (list, stat, remove, upload/download a file)
 * over local paths and registered schemes (s3). Depends on engine/mr_error. Used for
 * manifests that name folders or prefixes, intermediates and cleanup. */
#ifndef LUAMR_STORAGE_H
#define LUAMR_STORAGE_H

#include <stdint.h>

#include "../engine/mr_error.h"

typedef struct storage_ops {
    /* Calls fn for every object under prefix (a directory or key prefix). */
    mr_code (*list)(const char *prefix_uri, mr_code (*fn)(const char *uri, uint64_t size, void *ud),
                    void *ud, mr_err *e);
    mr_code (*remove)(const char *uri, mr_err *e);
    /* 1 exists (size filled), 0 missing, -1 error */
    int (*stat)(const char *uri, uint64_t *size, mr_err *e);
    /* Copy a local file to uri, e.g. upload an intermediate. */
    mr_code (*put_file)(const char *local_path, const char *uri, mr_err *e);
    mr_code (*get_file)(const char *uri, const char *local_path, mr_err *e);
} storage_ops;
void storage_register_scheme(const char *scheme, const storage_ops *ops);
mr_code storage_list(const char *prefix_uri,
                     mr_code (*fn)(const char *uri, uint64_t size, void *ud), void *ud,
                     mr_err *e);
mr_code storage_remove(const char *uri, mr_err *e);
int storage_stat(const char *uri, uint64_t *size, mr_err *e);
mr_code storage_put_file(const char *local_path, const char *uri, mr_err *e);
mr_code storage_get_file(const char *uri, const char *local_path, mr_err *e);
/* 1 for a "scheme://..." URI other than file://, 0 for local paths. */
int storage_is_remote(const char *uri);
/* Joins a base folder/prefix and a relative name with exactly one '/'. Caller frees. */
char *storage_join(const char *base, const char *name);

#endif
