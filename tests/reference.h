/* sgdstab tests — the dense reference: the Kronecker formulation of the
 * second-moment map on the basis of symmetric matrices, solved with LAPACK.
 *
 * A code path independent of the fast one (reduce/moments/eig): it finds the
 * range from an eigendecomposition of G + H² (not an SVD of J), forms every
 * A_i = J_iᵀJ_i in that basis explicitly, assembles
 *   T = (I − ηH)⊗(I − ηH) + η² [ (b/n) Σ_i A_i⊗A_i − (1 − a) G⊗G ]
 * restricted to symmetric matrices (orthonormal basis e_je_jᵀ and
 * (e_je_lᵀ + e_le_jᵀ)/√2), and calls dsyevr for ρ⊥ = λmax(T) and dsygvd for
 * the generalized problem 𝒜₂ x = μ 𝒜₁ x, η* = 1/μmax.  Memory and time grow
 * like r⁴: meant for the tests, with r up to about 40. */
#ifndef SGDSTAB_REFERENCE_H
#define SGDSTAB_REFERENCE_H

#include <stddef.h>
#include "sgdstab/moments.h"
#include "sgdstab/problem.h"
#include "sgdstab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sgdstab_reference sgdstab_reference;

/* Range basis and per-sample A_i for prob; loss_scale c as in stability.h. */
sgdstab_reference *sgdstab_reference_alloc(const sgdstab_problem *prob,
                                           double loss_scale,
                                           sgdstab_error *err);
void sgdstab_reference_free(sgdstab_reference *ref);

/* Dimension of the range found (compare with sgdstab_reduced.r). */
size_t sgdstab_reference_dim(const sgdstab_reference *ref);

/* All eigenvalues of T on the range, ascending (sgdstab_sym_dim(r) of
 * them, written to eig if not NULL); returns λmax in *rho. */
int sgdstab_reference_spectrum(sgdstab_reference *ref, double lr,
                               sgdstab_sampling sampling, size_t batch,
                               double *rho, double *eig, sgdstab_error *err);

/* η*(B) from the generalized symmetric-definite eigenproblem; fails with
 * SGDSTAB_EVALUE if H is not positive definite on the range. */
int sgdstab_reference_critical(sgdstab_reference *ref,
                               sgdstab_sampling sampling, size_t batch,
                               double *lr_critical, sgdstab_error *err);

#ifdef __cplusplus
}
#endif

#endif
