/* awsconf: where AWS credentials, region and the S3 endpoint come from, discovered the way
 * the AWS CLI does it. Depends on engine/mr_error only (reads the environment and the
 * shared INI files; no network, so no instance-metadata or SSO credentials).
 *
 * Credentials: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN) win; else
 *   the profile (AWS_PROFILE, default "default") in the shared credentials file
 *   (AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials), then in the config file
 *   (AWS_CONFIG_FILE, default ~/.aws/config, section "[profile NAME]" or "[default]").
 * Region: AWS_REGION, AWS_DEFAULT_REGION, the profile's "region", else us-east-1.
 * Endpoint: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the profile's "s3 = endpoint_url" or
 *   "endpoint_url" (all ignored when AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true); none means
 *   real AWS. Path-style addressing with an endpoint, with "s3 = addressing_style = path"
 *   or LUAMR_S3_PATH_STYLE=1; virtual-hosted style otherwise.
 *
 * Secrets are kept here and handed to the signer only; nothing in this unit prints them. */
#ifndef LUAMR_AWSCONF_H
#define LUAMR_AWSCONF_H

#include "../engine/mr_error.h"

typedef struct awsconf awsconf;

/* Reads the environment and the shared files. Missing credentials are not an error here
 * (awsconf_has_credentials says so); an unreadable file that was named explicitly, or a
 * profile named by AWS_PROFILE that exists in neither file, is. */
awsconf *awsconf_load(mr_err *e);
void awsconf_free(awsconf *c);   /* accepts NULL; wipes the secrets */

int awsconf_has_credentials(const awsconf *c);
const char *awsconf_access_key(const awsconf *c);
const char *awsconf_secret_key(const awsconf *c);
const char *awsconf_session_token(const awsconf *c);  /* NULL without one */
const char *awsconf_region(const awsconf *c);
/* "http://127.0.0.1:4569" without a trailing '/', or NULL for real AWS. */
const char *awsconf_endpoint(const awsconf *c);
int awsconf_path_style(const awsconf *c);
const char *awsconf_profile(const awsconf *c);
/* Where the credentials came from, for error messages: "environment (AWS_ACCESS_KEY_ID)",
 * "/root/.aws/credentials [default]", "none". Never a secret. */
const char *awsconf_source(const awsconf *c);

/* One value from an AWS-style INI file: section as written between the brackets
 * ("default", "profile dev"); key "region", or "s3.endpoint_url" for a nested block.
 * Returns 1 and a malloc'd *value when found, 0 when not (or no such file), -1 when the
 * file exists but cannot be read. */
int awsconf_ini_get(const char *path, const char *section, const char *key, char **value,
                    mr_err *e);

#endif
