/* Internal: the dense symmetric eigenproblems of the library, by LAPACK,
 * under one contract.
 *
 * A is n×n, row-major, with rows lda ≥ n apart; only its upper triangle is
 * read.  A is overwritten: by the eigenvectors when they are asked for,
 * with unspecified values otherwise (a caller that needs A copies it
 * first).  Eigenvalues come out in ascending order; eigenvectors have unit
 * norm and are the columns of the output (vector j is out[i·ld + j],
 * i = 0..n−1).
 *
 * On failure the functions return an sgdstab status, fill err (which may
 * be NULL) with one line "WHAT: ..." where `what` (a printf format) names
 * the matrix, and set every eigenvalue asked for to NaN.
 *
 * The LAPACK driver is part of each caller's result, not a detail: dsyev
 * (QR iteration), dsyevd (divide and conquer) and dsyevr (relatively
 * robust representations, for a selection) round differently, so every
 * caller names the driver its results are established with. */
#ifndef SGDSTAB_SYMEIG_H
#define SGDSTAB_SYMEIG_H

#include <stddef.h>

#include "sgdstab/status.h"

typedef enum {
    SYMEIG_DSYEV,   /* QR iteration: little workspace, for small blocks */
    SYMEIG_DSYEVD   /* divide and conquer: faster for large n with
                       vectors, and reliable on tight clusters */
} symeig_driver;

/* All n eigenvalues into w (length n) and, if vectors, the eigenvectors
 * into the columns of A. */
int symeig_all(symeig_driver driver, size_t n, double *A, size_t lda,
               double *w, int vectors, sgdstab_error *err,
               const char *what, ...)
    __attribute__((format(printf, 8, 9)));

/* Eigenvalues lo..hi only (0-based positions in ascending order, so n − 1
 * is the largest; lo ≤ hi < n) into w (hi − lo + 1 values), by dsyevr and,
 * if Z is not NULL, their eigenvectors into the columns of Z (n rows of
 * hi − lo + 1). */
int symeig_range(size_t n, double *A, size_t lda, size_t lo, size_t hi,
                 double *w, double *Z, sgdstab_error *err, const char *what,
                 ...)
    __attribute__((format(printf, 9, 10)));

/* All n eigenpairs of the n×n A (lda = n) by dsyevr, without the
 * transposed copies LAPACKE's row-major interface makes: eigenvector j is
 * the ROW j of Z (Z[j·n + i], i = 0..n−1), n×n. */
int symeig_rows(size_t n, double *A, double *w, double *Z, sgdstab_error *err,
                const char *what, ...)
    __attribute__((format(printf, 6, 7)));

#endif
