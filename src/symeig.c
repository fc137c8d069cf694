#include "symeig.h"

#include <lapacke.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The failure `info` of LAPACK's `driver` as an sgdstab error naming the
 * matrix, and NaN for the count eigenvalues asked for. */
__attribute__((format(printf, 7, 0)))
static int symeig_fail(lapack_int info, const char *driver, size_t n,
                       double *w, size_t count, sgdstab_error *err,
                       const char *what, va_list ap)
{
    for (size_t i = 0; i < count; i++)
        w[i] = NAN;
    char name[SGDSTAB_ERROR_MSG_MAX];
    vsnprintf(name, sizeof name, what, ap);
    if (info == LAPACK_WORK_MEMORY_ERROR ||
        info == LAPACK_TRANSPOSE_MEMORY_ERROR)
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory for its "
                            "eigenvalues (n = %zu)", name, n);
    return sgdstab_fail(err, SGDSTAB_ENUMERIC, "%s: eigendecomposition failed "
                        "(LAPACK %s info = %d)", name, driver, (int)info);
}

int symeig_all(symeig_driver driver, size_t n, double *A, size_t lda,
               double *w, int vectors, sgdstab_error *err,
               const char *what, ...)
{
    char jobz = vectors ? 'V' : 'N';
    lapack_int info =
        driver == SYMEIG_DSYEV
            ? LAPACKE_dsyev(LAPACK_ROW_MAJOR, jobz, 'U', (lapack_int)n, A,
                            (lapack_int)lda, w)
            : LAPACKE_dsyevd(LAPACK_ROW_MAJOR, jobz, 'U', (lapack_int)n, A,
                             (lapack_int)lda, w);
    if (info == 0)
        return SGDSTAB_OK;
    va_list ap;
    va_start(ap, what);
    int st = symeig_fail(info, driver == SYMEIG_DSYEV ? "dsyev" : "dsyevd", n,
                         w, n, err, what, ap);
    va_end(ap);
    return st;
}

int symeig_range(size_t n, double *A, size_t lda, size_t lo, size_t hi,
                 double *w, double *Z, sgdstab_error *err, const char *what,
                 ...)
{
    const size_t count = hi - lo + 1;
    /* dsyevr may use all of its W (n) and ISUPPZ (2n) as workspace,
     * whatever it returns. */
    double *all = malloc(n * sizeof *all);
    lapack_int *isuppz = malloc(2 * n * sizeof *isuppz), found;
    lapack_int info = LAPACK_WORK_MEMORY_ERROR;
    if (all && isuppz)
        info = LAPACKE_dsyevr(LAPACK_ROW_MAJOR, Z ? 'V' : 'N', 'I', 'U',
                              (lapack_int)n, A, (lapack_int)lda, 0.0, 0.0,
                              (lapack_int)(lo + 1), (lapack_int)(hi + 1), 0.0,
                              &found, all, Z, Z ? (lapack_int)count : 1,
                              isuppz);
    /* With RANGE = 'I', a successful dsyevr finds exactly hi − lo + 1. */
    if (info == 0)
        memcpy(w, all, count * sizeof *w);
    free(all);
    free(isuppz);
    if (info == 0)
        return SGDSTAB_OK;
    va_list ap;
    va_start(ap, what);
    int st = symeig_fail(info, "dsyevr", n, w, count, err, what, ap);
    va_end(ap);
    return st;
}

int symeig_rows(size_t n, double *A, double *w, double *Z, sgdstab_error *err,
                const char *what, ...)
{
    /* A symmetric row-major upper triangle is the column-major lower one;
     * column-major eigenvectors are rows when read row-major. */
    lapack_int *isuppz = malloc(2 * (n ? n : 1) * sizeof *isuppz), found;
    lapack_int info = LAPACK_WORK_MEMORY_ERROR;
    if (isuppz)
        info = LAPACKE_dsyevr(LAPACK_COL_MAJOR, 'V', 'A', 'L', (lapack_int)n,
                              A, (lapack_int)n, 0.0, 0.0, 0, 0, 0.0, &found,
                              w, Z, (lapack_int)n, isuppz);
    free(isuppz);
    if (info == 0)
        return SGDSTAB_OK;
    va_list ap;
    va_start(ap, what);
    int st = symeig_fail(info, "dsyevr", n, w, n, err, what, ap);
    va_end(ap);
    return st;
}
