/* mr_error: the one error enum and message buffer every luamr module reports through.
 * Depends on nothing. A failing call fills an mr_err (code + human message naming the
 * file, record and field where it knows them) and returns the code, so callers can
 * early-return with MR_TRY / MR_CHECK instead of nesting ifs. */
#ifndef LUAMR_MR_ERROR_H
#define LUAMR_MR_ERROR_H

#include <stdarg.h>

typedef enum mr_code {
    MR_OK = 0,
    MR_EINVAL,    /* misuse or a bad argument/config value */
    MR_ENOMEM,
    MR_EIO,       /* file system or stream failure */
    MR_EFORMAT,   /* malformed input data (bad record, bad JSON, ...) */
    MR_ECORRUPT,  /* checksum/magic mismatch in data we wrote ourselves */
    MR_ENOTFOUND,
    MR_ESCRIPT,   /* the user's Lua raised an error */
    MR_ELIMIT,    /* a configured limit was exceeded (bad-record budget, memory, size) */
    MR_ENET,      /* network/transport failure */
    MR_EAUTH,     /* credentials rejected */
    MR_ETIMEOUT
} mr_code;

#define MR_ERR_MSG_MAX 2048

typedef struct mr_err {
    mr_code code;
    char msg[MR_ERR_MSG_MAX];
} mr_err;

/* Sets e (when not NULL) and returns code; printf-style message. */
mr_code mr_fail(mr_err *e, mr_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
mr_code mr_vfail(mr_err *e, mr_code code, const char *fmt, va_list ap);
/* Prefixes an existing message with more context ("reading x.csv: " + old msg). */
mr_code mr_wrap(mr_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mr_err_clear(mr_err *e);
const char *mr_code_name(mr_code code);

#define MR_TRY(expr)                              \
    do {                                          \
        mr_code mr_try_rc_ = (expr);              \
        if (mr_try_rc_ != MR_OK) return mr_try_rc_; \
    } while (0)

#define MR_CHECK(cond, e, code, ...)                          \
    do {                                                      \
        if (!(cond)) return mr_fail((e), (code), __VA_ARGS__); \
    } while (0)

/* For functions that return a pointer: NULL on failure. */
#define MR_CHECK_NULL(cond, e, code, ...)                    \
    do {                                                     \
        if (!(cond)) { mr_fail((e), (code), __VA_ARGS__); return NULL; } \
    } while (0)

#endif
