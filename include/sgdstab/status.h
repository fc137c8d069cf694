/* sgdstab — status codes and error messages shared by every module.
 *
 * Every library function that can fail returns an int status (SGDSTAB_OK on
 * success) and, when given a non-NULL sgdstab_error, fills it with one line
 * of text that names the offending file or argument and the problem, ready
 * to be printed as is. */
#ifndef SGDSTAB_STATUS_H
#define SGDSTAB_STATUS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum sgdstab_status {
    SGDSTAB_OK = 0,
    SGDSTAB_EIO,      /* a file could not be opened, read or written */
    SGDSTAB_EFORMAT,  /* malformed or unsupported file contents */
    SGDSTAB_ESHAPE,   /* array shapes that do not fit together */
    SGDSTAB_EVALUE,   /* NaN/Inf or otherwise invalid values */
    SGDSTAB_EINVAL,   /* an invalid argument or option */
    SGDSTAB_ENOMEM,   /* out of memory, or a size that cannot be allocated */
    SGDSTAB_ENUMERIC, /* a numerical routine failed (e.g. SVD did not converge) */
    SGDSTAB_ECANCELED /* stopped on request (a progress callback said so) */
};

#define SGDSTAB_ERROR_MSG_MAX 512

typedef struct {
    int status;
    char msg[SGDSTAB_ERROR_MSG_MAX];
} sgdstab_error;

/* Record a failure in err (which may be NULL) with a printf-style message and
 * return status, so callers can write `return sgdstab_fail(err, ...);`. */
int sgdstab_fail(sgdstab_error *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Short name of a status code ("I/O error", "format error", ...). */
const char *sgdstab_strstatus(int status);

#ifdef __cplusplus
}
#endif

#endif
