/* sgdstab — an initial second moment S_0 = E[δ_0 δ_0ᵀ] (p×p), validated
 * and factorized once for every use: the exact evolution projects S itself
 * (reduce.h, sgdstab_reduce_project), the simulation draws δ_0 = L g with g
 * standard Gaussian (simulate.h).
 *
 * A second moment is positive semidefinite.  With λ the eigenvalues of S_0
 * (LAPACK's dsyevd) and U its orthonormal eigenvectors:
 *   - an eigenvalue below −SGDSTAB_SECOND_MOMENT_RTOL·max|λ| is an error
 *     that names it: S_0 is no second moment;
 *   - negative eigenvalues within that tolerance are the rounding of a
 *     singular S_0 and are set to zero in the factor,
 *       L = U·diag(√max(λ, 0)),
 *     so that L Lᵀ equals S_0 up to rounding and to those eigenvalues. */
#ifndef SGDSTAB_SECOND_MOMENT_H
#define SGDSTAB_SECOND_MOMENT_H

#include <stddef.h>
#include "sgdstab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SGDSTAB_SECOND_MOMENT_RTOL 1e-10

typedef struct {
    size_t p;
    double *S;   /* p×p row-major S_0, exactly symmetric */
    double *L;   /* p×p row-major factor, S_0 = L Lᵀ (above) */
} sgdstab_second_moment;

/* S_0 from a .npy file: a (p, p) array with the checks H gets (finite,
 * symmetric within the tolerance, then symmetrized;
 * sgdstab_load_symmetric).  Messages name the file. */
int sgdstab_second_moment_load(const char *path, size_t p,
                               sgdstab_second_moment **out,
                               sgdstab_error *err);

/* S_0 from a p×p row-major matrix in memory, of which the upper triangle is
 * read (and copied to both halves); label names it in messages (NULL:
 * nothing). */
int sgdstab_second_moment_from_matrix(const double *S, size_t p,
                                      const char *label,
                                      sgdstab_second_moment **out,
                                      sgdstab_error *err);

void sgdstab_second_moment_free(sgdstab_second_moment *s);

#ifdef __cplusplus
}
#endif

#endif
