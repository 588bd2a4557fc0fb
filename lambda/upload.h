/* upload: `luamr upload CONFIG [--to s3://bucket/prefix/]` — puts the job script and the
 * config on S3, where Lambda invocations read them: the config's "script" becomes the
 * uploaded script's name (relative, so it resolves next to the uploaded config), and every
 * other path is checked: an absolute local path cannot be read from Lambda (an error naming
 * the field), a relative one will resolve under the prefix (printed). Without --to the
 * prefix is "<intermediate.location>/_job" when that is on S3.
 * Depends on engine/config, connectors/storage and connectors/s3, and cJSON. */
#ifndef LUAMR_LAMBDA_UPLOAD_H
#define LUAMR_LAMBDA_UPLOAD_H

#include "../engine/mr_error.h"

/* Rewrites the config text for the upload: script -> script_name; fails on absolute local
 * paths; notes relative ones (one line each, malloc'd text in *notes). Malloc'd JSON. */
char *lambda_upload_rewrite(const char *config_text, const char *config_path,
                            const char *script_name, const char *prefix, char **notes, mr_err *e);

/* Uploads; *config_uri (malloc'd) is where the config went. */
mr_code lambda_upload(const char *config_path, const char *prefix, char **config_uri, mr_err *e);

/* argv[0] is "upload". */
int lambda_upload_main(int argc, char **argv);

#endif
