/* s3: an Amazon S3 client over libcurl, and the "s3" scheme for streams (streaming,
 * resumable GET), sinks (PUT or multipart upload, published on commit) and storage
 * (list/stat/remove/put_file/get_file). Depends on engine/mr_error, connectors/sigv4
 * (request signing), connectors/awsconf (credentials, region, endpoint), connectors/stream,
 * sink and storage (the interfaces it registers into), libcurl and OpenSSL.
 *
 * URIs are "s3://bucket/key". Requests reuse keep-alive connections (one shared
 * connection cache per process). Transient failures (500, 503 SlowDown, timeouts, dropped
 * connections) are retried with exponential backoff and full jitter, up to
 * LUAMR_S3_MAX_ATTEMPTS attempts (default 5); a streamed GET that is cut resumes at the
 * byte it reached. A streamed read of more than two chunks (LUAMR_S3_CHUNK, default 8 MiB)
 * runs up to LUAMR_S3_PARALLEL (default 4) ranged GETs at once, in order. Other failures are errors naming the operation, bucket, key, S3's
 * error code, message and request id. Safe to use from several threads. See docs/s3.md. */
#ifndef LUAMR_S3_H
#define LUAMR_S3_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/mr_error.h"
#include "sink.h"
#include "stream.h"

/* Registers "s3" with stream, sink and storage. Call once at start-up (main). */
void s3_register(void);

/* Retries done so far in this process (every kind: 5xx, throttling, transport), for the
 * run summary. */
uint64_t s3_retry_count(void);

/* Forgets the cached credentials/region/endpoint so the next request reads the
 * environment and ~/.aws files again (tests; credential rotation). */
void s3_reload_config(void);

/* Frees the connection cache; later calls start a new one. For tests and exit paths. */
void s3_shutdown(void);

/* Splits "s3://bucket/key" (key may be empty). Both malloc'd. */
mr_code s3_parse_uri(const char *uri, char **bucket, char **key, mr_err *e);

/* The stream opener: a streaming GET from offset. Bytes arrive as the reader asks for
 * them (at most one buffer of 1 MiB is held), never the whole object first; when more
 * than two chunks are left from offset, the rest comes as chunks over up to
 * LUAMR_S3_PARALLEL connections at once (then one chunk buffer each), still in order. */
stream *s3_open_stream(const char *uri, uint64_t offset, mr_err *e);

/* The sink opener: buffers one part (LUAMR_S3_PART_SIZE, default 8 MiB, at least 5 MiB);
 * an object that fits is sent with one PUT on commit, a larger one as a multipart upload
 * (completed on commit, aborted on failure, sink_abort or an uncommitted sink_free). */
sink *s3_open_sink(const char *uri, mr_err *e);

/* HEAD: 1 exists (*size set), 0 no such key, -1 error. */
int s3_stat(const char *uri, uint64_t *size, mr_err *e);
/* GET of a whole (small) object into memory, NUL-terminated; fails past max_bytes. */
mr_code s3_get_object(const char *uri, char **data, size_t *len, size_t max_bytes, mr_err *e);
/* GET of len bytes at offset (fewer at the end of the object) into a malloc'd buffer. */
mr_code s3_get_range(const char *uri, uint64_t offset, uint64_t len, char **data,
                     size_t *got, mr_err *e);
/* PUT of a small object from memory. */
mr_code s3_put_object(const char *uri, const void *data, size_t len, mr_err *e);
/* DELETE; deleting a missing key is not an error (S3 semantics). */
mr_code s3_delete(const char *uri, mr_err *e);
/* ListObjectsV2 with pagination. "s3://b/dir" and "s3://b/dir/" both list the keys under
 * "dir/" (folder semantics, like a local directory); "s3://b" lists the whole bucket.
 * Keys ending in '/' (console folder markers) are skipped. fn gets "s3://b/key". */
mr_code s3_list(const char *prefix_uri,
                mr_code (*fn)(const char *uri, uint64_t size, void *ud), void *ud, mr_err *e);
mr_code s3_put_file(const char *local_path, const char *uri, mr_err *e);
mr_code s3_get_file(const char *uri, const char *local_path, mr_err *e);

#endif
