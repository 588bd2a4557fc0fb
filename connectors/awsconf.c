#include "awsconf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct awsconf {
    char *access_key, *secret_key, *session_token;
    char *region, *endpoint, *profile;
    char source[512];
    int path_style;
};

static char *awsconf_trim(char *s)
{
    while (*s && isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

int awsconf_ini_get(const char *path, const char *section, const char *key, char **value,
                    mr_err *e)
{
    *value = NULL;
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR) return 0;
        mr_fail(e, MR_EIO, "cannot read AWS config file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[4096], parent[256] = "";
    int in_section = 0, found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        int indented = line[0] == ' ' || line[0] == '\t';
        char *s = awsconf_trim(line);
        if (!*s || *s == '#' || *s == ';') continue;
        if (*s == '[') {
            char *end = strchr(s, ']');
            if (end) *end = '\0';
            in_section = strcmp(awsconf_trim(s + 1), section) == 0;
            parent[0] = '\0';
            continue;
        }
        if (!in_section) continue;
        char *eq = strchr(s, '=');
        if (!eq) continue;
        *eq = '\0';
        char *k = awsconf_trim(s), *v = awsconf_trim(eq + 1);
        char full[600];
        if (indented && parent[0]) {
            snprintf(full, sizeof full, "%s.%s", parent, k);
        } else {
            /* "s3 =" with nothing after it opens a nested block of indented keys. */
            snprintf(parent, sizeof parent, "%s", *v ? "" : k);
            snprintf(full, sizeof full, "%s", k);
        }
        if (strcmp(full, key) == 0 && *v) {
            *value = strdup(v);
            found = 1;
        }
    }
    fclose(f);
    if (found && !*value) {
        mr_fail(e, MR_ENOMEM, "out of memory reading %s", path);
        return -1;
    }
    return found;
}

static char *awsconf_home_file(const char *env, const char *rel)
{
    const char *p = getenv(env);
    if (p && *p) {
        if (p[0] == '~' && p[1] == '/' && getenv("HOME")) {
            size_t n = strlen(getenv("HOME")) + strlen(p);
            char *out = malloc(n + 1);
            if (out) snprintf(out, n + 1, "%s%s", getenv("HOME"), p + 1);
            return out;
        }
        return strdup(p);
    }
    const char *home = getenv("HOME");
    if (!home) home = "";
    size_t n = strlen(home) + strlen(rel) + 2;
    char *out = malloc(n);
    if (out) snprintf(out, n, "%s/%s", home, rel);
    return out;
}

static const char *awsconf_env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Looks key up in the credentials file's [profile], then the config file's section. */
static int awsconf_lookup(const char *creds_path, const char *config_path, const char *profile,
                          const char *key, char **value, mr_err *e)
{
    if (creds_path) {
        int rc = awsconf_ini_get(creds_path, profile, key, value, e);
        if (rc != 0) return rc;
    }
    char section[300];
    if (strcmp(profile, "default") == 0) snprintf(section, sizeof section, "default");
    else snprintf(section, sizeof section, "profile %s", profile);
    return awsconf_ini_get(config_path, section, key, value, e);
}

static int awsconf_truthy(const char *v)
{
    return v && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0);
}

static mr_code awsconf_load_files(awsconf *c, const char *creds_path, const char *config_path,
                                  mr_err *e)
{
    char *v = NULL;
    int rc;
    if (!c->access_key) {
        rc = awsconf_ini_get(creds_path, c->profile, "aws_access_key_id", &c->access_key, e);
        if (rc < 0) return e ? e->code : MR_EIO;
        if (rc == 1) {
            snprintf(c->source, sizeof c->source, "%s [%s]", creds_path, c->profile);
            if (awsconf_ini_get(creds_path, c->profile, "aws_secret_access_key", &c->secret_key, e) < 0 ||
                awsconf_ini_get(creds_path, c->profile, "aws_session_token", &c->session_token, e) < 0)
                return e ? e->code : MR_EIO;
        } else {
            rc = awsconf_lookup(NULL, config_path, c->profile, "aws_access_key_id", &c->access_key, e);
            if (rc < 0) return e ? e->code : MR_EIO;
            if (rc == 1) {
                snprintf(c->source, sizeof c->source, "%s [%s]", config_path, c->profile);
                if (awsconf_lookup(NULL, config_path, c->profile, "aws_secret_access_key",
                                   &c->secret_key, e) < 0 ||
                    awsconf_lookup(NULL, config_path, c->profile, "aws_session_token",
                                   &c->session_token, e) < 0)
                    return e ? e->code : MR_EIO;
            }
        }
    }
    if (!c->region) {
        rc = awsconf_lookup(NULL, config_path, c->profile, "region", &c->region, e);
        if (rc < 0) return e ? e->code : MR_EIO;
    }
    if (!c->endpoint && !awsconf_truthy(awsconf_env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"))) {
        rc = awsconf_lookup(NULL, config_path, c->profile, "s3.endpoint_url", &c->endpoint, e);
        if (rc == 0) rc = awsconf_lookup(NULL, config_path, c->profile, "endpoint_url", &c->endpoint, e);
        if (rc < 0) return e ? e->code : MR_EIO;
    }
    rc = awsconf_lookup(NULL, config_path, c->profile, "s3.addressing_style", &v, e);
    if (rc < 0) return e ? e->code : MR_EIO;
    if (v && strcmp(v, "path") == 0) c->path_style = 1;
    free(v);
    return MR_OK;
}

/* A profile named explicitly must exist somewhere, as the CLI insists
 * ("The config profile (x) could not be found"). */
static int awsconf_profile_exists(const char *creds_path, const char *config_path,
                                  const char *profile)
{
    const char *paths[2] = {creds_path, config_path};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(paths[i], "r");
        if (!f) continue;
        char line[4096], want[300];
        if (i == 1 && strcmp(profile, "default") != 0) snprintf(want, sizeof want, "profile %s", profile);
        else snprintf(want, sizeof want, "%s", profile);
        int hit = 0;
        while (!hit && fgets(line, sizeof line, f)) {
            char *s = awsconf_trim(line);
            if (*s != '[') continue;
            char *end = strchr(s, ']');
            if (end) *end = '\0';
            hit = strcmp(awsconf_trim(s + 1), want) == 0;
        }
        fclose(f);
        if (hit) return 1;
    }
    return 0;
}

awsconf *awsconf_load(mr_err *e)
{
    awsconf *c = calloc(1, sizeof *c);
    MR_CHECK_NULL(c, e, MR_ENOMEM, "out of memory loading the AWS configuration");
    snprintf(c->source, sizeof c->source, "none");
    const char *profile_env = awsconf_env("AWS_PROFILE");
    if (!profile_env) profile_env = awsconf_env("AWS_DEFAULT_PROFILE");
    c->profile = strdup(profile_env ? profile_env : "default");

    const char *ak = awsconf_env("AWS_ACCESS_KEY_ID"), *sk = awsconf_env("AWS_SECRET_ACCESS_KEY");
    if (ak && sk) {
        c->access_key = strdup(ak);
        c->secret_key = strdup(sk);
        const char *tok = awsconf_env("AWS_SESSION_TOKEN");
        if (!tok) tok = awsconf_env("AWS_SECURITY_TOKEN");
        if (tok) c->session_token = strdup(tok);
        snprintf(c->source, sizeof c->source, "environment (AWS_ACCESS_KEY_ID)");
    }
    const char *region = awsconf_env("AWS_REGION");
    if (!region) region = awsconf_env("AWS_DEFAULT_REGION");
    if (region) c->region = strdup(region);
    const char *ep = awsconf_env("AWS_ENDPOINT_URL_S3");
    if (!ep) ep = awsconf_env("AWS_ENDPOINT_URL");
    if (ep && !awsconf_truthy(awsconf_env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")))
        c->endpoint = strdup(ep);

    char *creds_path = awsconf_home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
    char *config_path = awsconf_home_file("AWS_CONFIG_FILE", ".aws/config");
    mr_code rc = MR_OK;
    if (!c->profile || !creds_path || !config_path) {
        rc = mr_fail(e, MR_ENOMEM, "out of memory loading the AWS configuration");
    } else if (profile_env && !awsconf_profile_exists(creds_path, config_path, c->profile)) {
        rc = mr_fail(e, MR_EINVAL, "AWS profile '%s' (from AWS_PROFILE) is in neither %s nor %s",
                     c->profile, creds_path, config_path);
    } else {
        rc = awsconf_load_files(c, creds_path, config_path, e);
    }
    free(creds_path);
    free(config_path);
    if (rc != MR_OK) { awsconf_free(c); return NULL; }

    if (!c->region) c->region = strdup("us-east-1");
    if (c->endpoint) {
        size_t n = strlen(c->endpoint);
        while (n && c->endpoint[n - 1] == '/') c->endpoint[--n] = '\0';
        c->path_style = 1;
    }
    if (awsconf_truthy(awsconf_env("LUAMR_S3_PATH_STYLE"))) c->path_style = 1;
    if (c->access_key && !c->secret_key) {
        /* Half a key pair is useless; say so rather than send unsigned requests. */
        mr_fail(e, MR_EAUTH, "AWS credentials from %s have an access key id but no "
                "aws_secret_access_key", c->source);
        awsconf_free(c);
        return NULL;
    }
    if (!c->region) { awsconf_free(c); mr_fail(e, MR_ENOMEM, "out of memory"); return NULL; }
    return c;
}

static void awsconf_wipe(char *s)
{
    if (!s) return;
    volatile char *p = s;
    while (*p) *p++ = '\0';
    free(s);
}

void awsconf_free(awsconf *c)
{
    if (!c) return;
    awsconf_wipe(c->access_key);
    awsconf_wipe(c->secret_key);
    awsconf_wipe(c->session_token);
    free(c->region);
    free(c->endpoint);
    free(c->profile);
    free(c);
}

int awsconf_has_credentials(const awsconf *c) { return c && c->access_key && c->secret_key; }
const char *awsconf_access_key(const awsconf *c) { return c->access_key; }
const char *awsconf_secret_key(const awsconf *c) { return c->secret_key; }
const char *awsconf_session_token(const awsconf *c) { return c->session_token; }
const char *awsconf_region(const awsconf *c) { return c->region; }
const char *awsconf_endpoint(const awsconf *c) { return c->endpoint; }
int awsconf_path_style(const awsconf *c) { return c->path_style; }
const char *awsconf_profile(const awsconf *c) { return c->profile; }
const char *awsconf_source(const awsconf *c) { return c->source; }
