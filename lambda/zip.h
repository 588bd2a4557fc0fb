/* zip: writes a zip archive (deflate, Unix permissions kept) — the deployment package
 * Lambda unzips into /var/task. Entries carry a fixed timestamp so the same files give
 * the same archive (and the same CodeSha256). No zip64: entries and the archive stay
 * under 4 GB, far above Lambda's 250 MB unzipped limit. Depends on engine/mr_error and
 * libdeflate. */
#ifndef LUAMR_LAMBDA_ZIP_H
#define LUAMR_LAMBDA_ZIP_H

#include <stddef.h>

#include "../engine/mr_error.h"

typedef struct lambda_zip lambda_zip;

/* Writes to "<path>.tmp", renamed to path by lambda_zip_close. */
lambda_zip *lambda_zip_create(const char *path, mr_err *e);
/* mode: Unix permission bits (0755 for bootstrap). */
mr_code lambda_zip_add_data(lambda_zip *z, const char *name, const void *data, size_t len,
                            unsigned mode, mr_err *e);
mr_code lambda_zip_add_file(lambda_zip *z, const char *name, const char *src_path, unsigned mode,
                            mr_err *e);
/* Writes the central directory and publishes the archive. */
mr_code lambda_zip_close(lambda_zip *z, mr_err *e);
/* Accepts NULL; an archive not closed is removed. */
void lambda_zip_free(lambda_zip *z);
size_t lambda_zip_entries(const lambda_zip *z);

#endif
