/* sgdstab — reduced coordinates (README, The mathematics).
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
 * J moves an eigenvector u of H when ‖J u‖ exceeds both the rank threshold
 * of J and σ_max·tol_H/gap, what rounding can put there (u is computed to
 * an angle of about tol_H/gap from the true one, gap the distance to the
 * other eigenvalues: Davis–Kahan).
 *
 * Flat curvature.  An exported Hessian carries curvature at the level of its
 * training residual (H − G = (1/n) Σ r_i·∇²f_i) and of rounding, of either
 * sign.  A negative eigenvalue μ with |μ| ≤ flat_rtol · λmax(H) is flat:
 * its sign is below what H resolves, so it does not make H "not a minimum".
 * A flat direction J never moves is left out with the directions that
 * never move; one that J moves is kept
 * with the curvature |μ|, as the same eigenvalue of the other sign would be
 * (0 would leave its batch noise undamped, every η unstable, on the sign of
 * rounding).  The default flat_rtol = 1e-6 lies ten times above a residual
 * at 1e-7 of λmax and far below curvature that matters: at any η that can
 * be stable (η ≤ 2/λmax), curvature −flat_rtol·λmax needs at least
 * 1/(2·flat_rtol) = 500 000 steps to grow the RMS distance by a factor e.
 * flat_rtol = 0 is strict: every negative eigenvalue counts.
 *
 * Either way 𝒜₁(Z) = HZ + ZH acts entry-wise: (𝒜₁Z)_jl = (h_j + h_l) Z_jl.
 *
 * The Gram route.  Without H, J's factorization may instead come from the
 * smaller Gram matrix, A = J Jᵀ (n·k ≤ p) or JᵀJ, formed by DSYRK and
 * eigendecomposed by dsyevr: μ_j = σ_j², and Φ = U_r diag(σ_r) or J V_r.
 * A holds σ² with an absolute error of about ε·σmax², so it resolves σ_j
 * to a relative ε·κ (κ = σmax²/σ_j²) and loses singular values below about
 * √ε·σmax altogether.  It is used where that costs nothing: when A's
 * condition number is at most 1e4 (full rank, every σ_j to about 1e-12);
 * otherwise dgesdd decides (the Gram matrix then was formed in vain).
 *
 * K input.  A Gram matrix K = J Jᵀ is factorized the same way.  Its
 * eigenvalues below −(RTOL·σmax)² are an error (not positive
 * semidefinite), those above it rounding; RTOL, relative on σ = √μ, is by
 * default √(n·k·ε_K), ε_K the epsilon of K's stored precision: what K's
 * own rounding, ε_K·λmax(K), allows. */
#ifndef SGDSTAB_REDUCE_H
#define SGDSTAB_REDUCE_H

#include <stddef.h>
#include "sgdstab/problem.h"
#include "sgdstab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char *source;      /* the problem's file, for messages */
    size_t n, k, p;    /* p = 0: not known (a Gram matrix, problem.h) */
    int from_gram;     /* made from K: no J behind it, so nothing that
                          needs parameter space (basis rows, a p×p start) */
    int gram_route;    /* factorized by the Gram route (below) */
    size_t nsv;        /* min(n·k, p): number of singular values of J;
                          n·k for K */
    size_t rank_J;     /* numerical rank of J */
    double *sigma;     /* nsv singular values of J, descending */
    double rank_rtol;  /* relative tolerance used for the rank */
    double rank_tol;   /* absolute threshold rank_rtol · σ_max */
    double trace_G;    /* tr G = ‖J‖_F² / n */

    size_t r;          /* dimension of the reduced space (= rank_J if no H) */
    double *phi;       /* (n·k)×r row-major Φ = J·basis */
    double *lambda;    /* r diagonal entries of H in the basis: without H the
                          eigenvalues of G on its range, descending; with H
                          its non-zero, non-flat eigenvalues descending,
                          then |μ| of the flat ones J moves, then zeros for
                          the null(H) directions J moves */
    double *G;         /* r×r G in the basis when H is supplied, else NULL
                          (G = diag(lambda)) */
    double hessian_min;  /* smallest eigenvalue of H on the reduced space */
    double flat_rtol;    /* the relative tolerance in force (it acts only
                            on a supplied H) */
    double flat_tol;     /* absolute flat_rtol · λmax(H) (0: none) */
    size_t flat_negative;   /* flat negative eigenvalues of H */
    double flat_min;        /* the most negative of them (0 if none) */
    size_t flat_moved;      /* of them, those J moves (kept with |μ|) */
    /* What sgdstab_reduce_for applied for an optimizer (plan.h); all 0
     * for sgdstab_reduce. */
    int preconditioned;      /* J·P^{-1/2}, P = diag(√v̂ + ε) */
    double precond_eps;      /* its ε */
    double precond_logsum;   /* Σ ln v̂: tells one v̂ from another */
    double curvature_shift;  /* λ/c added to H by coupled weight decay */
    double *basis;     /* p×r orthonormal basis when H is supplied, else NULL
                          (then basis = Jᵀ Φ diag(σ_r)^{-2}, never formed) */
} sgdstab_reduced;

/* The curvatures sgdstab computes with: λmax(G), max|eigenvalue| of H and
 * their multiples by the loss scale within [SGDSTAB_CURVATURE_MIN,
 * SGDSTAB_CURVATURE_MAX].  The eigensolvers form squares of the noise
 * operator, fourth powers of the curvature, which must neither overflow nor
 * underflow; sgdstab_reduce refuses J or H beyond (scale J by a power of
 * ten and learning rates by its inverse square). */
#define SGDSTAB_CURVATURE_MIN 1e-60
#define SGDSTAB_CURVATURE_MAX 1e60

/* The default relative tolerance of flat negative curvature (above). */
#define SGDSTAB_FLAT_RTOL_DEFAULT 1e-6

typedef struct {
    double rank_rtol;  /* ≤ 0: the default above */
    double flat_rtol;  /* < 0: SGDSTAB_FLAT_RTOL_DEFAULT; 0: strict */
    int svd_only;      /* 1: J by dgesdd even where the Gram route is safe
                          (for comparisons) */
} sgdstab_reduce_options;

/* Both tolerances at their defaults. */
void sgdstab_reduce_options_init(sgdstab_reduce_options *opt);

/* Factorize prob (opt NULL: the defaults). */
int sgdstab_reduce(const sgdstab_problem *prob,
                   const sgdstab_reduce_options *opt, sgdstab_reduced **out,
                   sgdstab_error *err);

/* rows = Qᵀ (r×p, row-major), the reduced basis as rows: the reduced
 * coordinates of δ are rows·δ.  prob must be the problem red was made
 * from. */
void sgdstab_reduce_basis_rows(const sgdstab_reduced *red,
                               const sgdstab_problem *prob, double *rows);

/* λmax(H) and tr H (H = G without a supplied H), unscaled: the diagonal
 * of H in the reduced basis (flat eigenvalues as taken above), and
 * curvature 0 in the directions projected out (r < p). */
double sgdstab_reduced_hessian_max(const sgdstab_reduced *red);
double sgdstab_reduced_hessian_trace(const sgdstab_reduced *red);

/* The default relative rank tolerance for prob (see above). */
double sgdstab_default_rank_rtol(const sgdstab_problem *prob);

void sgdstab_reduced_free(sgdstab_reduced *red);

#ifdef __cplusplus
}
#endif

#endif
