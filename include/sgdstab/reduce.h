/* sgdstab — reduced coordinates (DESIGN §2.5).
 *
 * One factorization per problem, reused by every analysis and every (η, B).
 *
 * Without a supplied H (H = G): one thin SVD of the (n·k)×p matrix
 * J = U diag(σ) Vᵀ.  The numerical rank counts the singular values above
 *     tol = rtol · σ_max,   rtol = max(n·k, p) · ε   by default,
 * where ε is the machine epsilon of the precision J was stored in (float64,
 * float32 or float16): the rule of numpy.linalg.matrix_rank, made aware that
 * a float32 export cannot resolve more than float32 allows.  The reduced
 * basis is V_r, the reduced Jacobian Φ = J V_r = U_r diag(σ_r) ((n·k)×r, rows
 * grouped per sample like J), and G = diag(λ) with λ_j = σ_j²/n.
 *
 * With a supplied H: the basis is H's eigenvectors with non-zero eigenvalue
 * (|μ| > p · ε_H · max|μ|), completed by the directions of null(H) that some
 * J_i moves, so that only null(H) ∩ null(J) — directions that never move — is
 * projected out.  In this basis H = diag(h) and G is a full r×r matrix.
 *
 * Either way 𝒜₁(Z) = HZ + ZH acts entry-wise: (𝒜₁Z)_jl = (h_j + h_l) Z_jl. */
#ifndef SGDSTAB_REDUCE_H
#define SGDSTAB_REDUCE_H

#include <stddef.h>
#include "sgdstab/problem.h"
#include "sgdstab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    size_t n, k, p;
    size_t nsv;        /* min(n·k, p): number of singular values of J */
    size_t rank_J;     /* numerical rank of J */
    double *sigma;     /* nsv singular values of J, descending */
    double rank_rtol;  /* relative tolerance used for the rank */
    double rank_tol;   /* absolute threshold rank_rtol · σ_max */
    double trace_G;    /* tr G = ‖J‖_F² / n */

    size_t r;          /* dimension of the reduced space (= rank_J if no H) */
    double *phi;       /* (n·k)×r row-major Φ = J·basis */
    double *lambda;    /* r diagonal entries of H in the basis: without H the
                          eigenvalues of G on its range, descending; with H
                          its non-zero eigenvalues descending, then zeros
                          for the null(H) directions J moves */
    double *G;         /* r×r G in the basis when H is supplied, else NULL
                          (G = diag(lambda)) */
    double hessian_min;  /* smallest eigenvalue of H on the reduced space */
    double *basis;     /* p×r orthonormal basis when H is supplied, else NULL
                          (then basis = Jᵀ Φ diag(σ_r)^{-2}, never formed) */
} sgdstab_reduced;

/* Factorize prob.  rank_rtol ≤ 0 selects the default above. */
int sgdstab_reduce(const sgdstab_problem *prob, double rank_rtol,
                   sgdstab_reduced **out, sgdstab_error *err);

/* Project a p×p second moment S of δ onto the reduced space: Z = QᵀSQ
 * (r×r, Q the reduced basis) and *null_trace = tr S − tr Z, the part of
 * E‖δ‖² in directions that never move.  prob must be the problem red was
 * made from. */
int sgdstab_reduce_project(const sgdstab_reduced *red,
                           const sgdstab_problem *prob, const double *S,
                           double *Z, double *null_trace, sgdstab_error *err);

/* out = Qᵀ X (r×m, row-major) for a p×m row-major X: the reduced
 * coordinates of m vectors of parameter space.  prob as above. */
int sgdstab_reduce_coordinates(const sgdstab_reduced *red,
                               const sgdstab_problem *prob, const double *X,
                               size_t m, double *out, sgdstab_error *err);

/* The default relative rank tolerance for prob (see above). */
double sgdstab_default_rank_rtol(const sgdstab_problem *prob);

void sgdstab_reduced_free(sgdstab_reduced *red);

#ifdef __cplusplus
}
#endif

#endif
