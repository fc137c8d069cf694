#include "sgdstab/status.h"

#include <stdarg.h>
#include <stdio.h>

int sgdstab_fail(sgdstab_error *err, int status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
        /* Messages are one line by contract: fold any stray newline. */
        for (char *c = err->msg; *c; c++)
            if (*c == '\n' || *c == '\r')
                *c = ' ';
    }
    return status;
}

const char *sgdstab_strstatus(int status)
{
    switch (status) {
    case SGDSTAB_OK: return "success";
    case SGDSTAB_EIO: return "I/O error";
    case SGDSTAB_EFORMAT: return "format error";
    case SGDSTAB_ESHAPE: return "shape mismatch";
    case SGDSTAB_EVALUE: return "invalid value";
    case SGDSTAB_EINVAL: return "invalid argument";
    case SGDSTAB_ENOMEM: return "out of memory";
    case SGDSTAB_ENUMERIC: return "numerical failure";
    case SGDSTAB_ECANCELED: return "canceled";
    default: return "unknown status";
    }
}
