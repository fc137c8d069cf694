/* sgdstab — largest eigenvalues of symmetric operators given by their action
 * on vectors (matrix-vector callbacks), so that the fast moment operator and
 * any other operator share the solvers.
 *
 * Two solvers:
 *
 * sgdstab_eig_max — a general one: ARPACK-ng's implicitly restarted Lanczos
 * method (dsaupd/dseupd, "LA": largest algebraic); small problems (dim ≤
 * SGDSTAB_EIG_DENSE_MAX) assemble the matrix column by column and call
 * LAPACK's dsyevr.
 *
 * sgdstab_family — for the operators sgdstab solves over and over, which
 * are all of the form
 *     A(γ, β) = Σ_c γ_c·diag(d_c) + β·N,
 * a few fixed diagonals d_c (cheap) plus one fixed symmetric N (one
 * expensive application each).  𝒯 for any (η, B) and 𝒜₁^{-1/2}𝒜₂𝒜₁^{-1/2}
 * for any B are members of such a family.  A Davidson method (Rayleigh–Ritz
 * on a growing orthonormal basis V, expanded by the diagonally
 * preconditioned residual) keeps V, NV and the projections of N and of
 * every d_c, so a solve for a new (γ, β) starts from everything learnt so far
 * and often needs no new application of N at all.  The residual of the Ritz
 * pair is computed from the stored NV, exactly.
 *
 * Either way the accuracy reported is the residual ‖A v − θ v‖ of the unit
 * vector v returned, which bounds the distance from θ to the spectrum of A
 * (a symmetric matrix has an eigenvalue within ‖A v − θ v‖ of any Rayleigh
 * quotient θ). */
#ifndef SGDSTAB_EIG_H
#define SGDSTAB_EIG_H

#include <stddef.h>
#include "sgdstab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SGDSTAB_EIG_DENSE_MAX 300

/* y = A x for vectors of length dim. */
typedef void (*sgdstab_matvec_fn)(void *ctx, const double *x, double *y);

typedef struct {
    double tol;         /* ARPACK: stop when ‖A v − θ v‖ ≤ tol·|θ|; ≤ 0: 1e-11 */
    size_t max_matvecs; /* 0: 20·ncv + 1000 */
    size_t ncv;         /* Lanczos basis size; 0: min(dim, 24) */
    const double *start;/* starting vector (length dim), or NULL for a fixed
                           pseudo-random one; for an operator that preserves
                           the PSD cone, start from a positive definite
                           matrix to be sure to overlap the top eigenvector */
    double vector_tol;  /* also require ‖A v − θ v‖ ≤ vector_tol·|θ|, for
                           callers that use the eigenvector (its error is
                           about ‖A v − θ v‖/gap); ≤ 0: √tol (family) or
                           tol (ARPACK) */
    int arpack;         /* stability.h: solve each member with ARPACK
                           (sgdstab_eig_max) instead of the shared-basis
                           Davidson method, as a cross-check */
    int neumann_estimate; /* family: also estimate the error from the
                           diagonal part, 2·Rᵀ(θ − E)^{-1}R/(1 − q)
                           (eig_family.c, neumann_estimate), and take the
                           smaller; for families whose top eigenvalue stays
                           above the diagonal */
} sgdstab_eig_options;

typedef struct {
    double value;       /* largest eigenvalue (Ritz value) */
    double residual;    /* ‖A v − θ v‖ with ‖v‖ = 1: a rigorous bound */
    double error_estimate; /* min(‖R‖, ‖R‖²/gap), gap to the next Ritz value:
                           the usual a-posteriori estimate of |θ − λmax|
                           (and the Neumann estimate if asked for) */
    size_t matvecs;     /* applications of A, the residual check included */
    int converged;      /* ARPACK reached tol (always 1 on the dense path) */
} sgdstab_eig_result;

/* Largest algebraic eigenvalue of A and, if vec != NULL, a unit eigenvector. */
int sgdstab_eig_max(size_t dim, sgdstab_matvec_fn matvec, void *ctx,
                    const sgdstab_eig_options *opt, sgdstab_eig_result *res,
                    double *vec, sgdstab_error *err);

/* ------------------------------------------------------------ families */

typedef struct sgdstab_family sgdstab_family;

/* A family with ndiag diagonals d_c (each of length dim; copied) and the
 * operator N; the basis holds at most max_basis vectors (0: 48) before it is
 * restarted with the best Ritz vectors of the current member. */
sgdstab_family *sgdstab_family_alloc(size_t dim, size_t ndiag,
                                     const double *const *diags,
                                     sgdstab_matvec_fn N, void *ctx,
                                     size_t max_basis, sgdstab_error *err);
void sgdstab_family_free(sgdstab_family *f);

/* Add a vector to the basis (orthogonalized; ignored if already in its
 * span).  Solves need at least one: for a PSD-cone-preserving family a
 * positive definite matrix guarantees overlap with the top eigenvector. */
int sgdstab_family_add(sgdstab_family *f, const double *x, sgdstab_error *err);

/* Largest eigenvalue of A(γ, β).  Converged when ‖R‖ ≤ √tol·|θ| (or
 * opt->vector_tol·|θ| if smaller) and
 * error_estimate ≤ tol·|θ| (opt->tol, default 1e-11); at most
 * opt->max_matvecs new applications of N (default 400); opt->start is
 * ignored (the basis is the start).  vec may be NULL.
 * Far from convergence the basis grows by the residual (Lanczos: from a
 * start overlapping the top eigenvector, the Krylov space finds it); close
 * to it, by the Davidson correction (θ − e)^{-1}R, which converges much
 * faster but, alone, can settle on an interior eigenvalue. */
int sgdstab_family_solve(sgdstab_family *f, const double *gamma, double beta,
                         const sgdstab_eig_options *opt,
                         sgdstab_eig_result *res, double *vec,
                         sgdstab_error *err);

/* Applications of N so far (all solves together). */
size_t sgdstab_family_matvecs(const sgdstab_family *f);

#ifdef __cplusplus
}
#endif

#endif
