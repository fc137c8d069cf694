/* sgdstab — the theory's quantities beside the exact answer (README, The
 * mathematics: The theory checks).
 *
 * For an interpolating minimum (H = G), in the reduced coordinates of
 * reduce.h where G = Λ = diag(λ) and A_i = Φ_iᵀΦ_i:
 *
 *   sharpness λmax(H), ‖H‖_F, tr H;
 *   non-uniformity (Wu, Ma, E 2018)  s² = λmax((1/n) Σ A_i² − G²),
 *       with (1/n) Σ A_i² = Σ(I) (moments.h);
 *   alignment (Wu, Wang, Su 2022)   μ(S) = tr(G(Σ(S) − GSG)) / (tr(GS)‖G‖_F²),
 *       μ_min = λmin(Λ^{-1/2} M Λ^{-1/2}) / ‖G‖_F²,  M = Σ(Λ) − Λ³;
 *   the Mulayoff–Michaeli bounds, which are the exact ratio
 *       η* ≤ ⟨S, 𝒜₁S⟩ / ⟨S, 𝒜₂S⟩  (README, η*(B))
 *   at the test matrices S = vvᵀ (v a top eigenvector of H) and S = I:
 *       η* ≤ 2λmax / [a λmax² + (b/n) Σ (vᵀA_iv)²],
 *       η* ≤ 2 tr H / [a ‖H‖_F² + (b/n) Σ ‖A_i‖_F²],
 *   which for a = 1 − b (sampling `without`, `with`) are their published
 *   forms 2λmax / [λmax² + (b/n) Σ (vᵀA_iv − λmax)²] and
 *   2 tr H / [(1 − b)‖H‖_F² + (b/n) Σ ‖A_i‖_F²], and tighter for
 *   `bernoulli` (a = 1).
 *
 * Since ½tr(G𝒯(S)) ≥ η²b·½tr(G(Σ(S) − GSG)) ≥ η² b μ_min ‖G‖_F² · ½tr(GS)
 * for every S ⪰ 0, the top eigenmatrix gives ρ⊥ ≥ η² b μ_min ‖G‖_F²
 * (escape rate ≥ ln of it), and stability (ρ⊥ ≤ 1) forces
 * ‖H‖_F ≤ 1/(η√(b μ_min)); at η = η*, η* ≤ 1/(‖H‖_F √(b μ_min)).
 *
 * Every quantity is in the user's loss convention (A_i → c·A_i); μ is
 * invariant under it. */
#ifndef SGDSTAB_THEORY_H
#define SGDSTAB_THEORY_H

#include <stddef.h>
#include "sgdstab/config.h"
#include "sgdstab/reduce.h"
#include "sgdstab/stability.h"
#include "sgdstab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What depends on the problem only, not on (η, B). */
typedef struct {
    double loss_scale;
    double sharpness, hessian_frobenius, hessian_trace;
    double nonuniformity;      /* s */
    double alignment_min;      /* μ_min */
    double top_moment;         /* (1/n) Σ (vᵀA_iv)², v = top eigenvector */
    double frobenius_moment;   /* (1/n) Σ ‖A_i‖_F² = tr Σ(I) */
} sgdstab_theory;

/* Compute the above for cfg's loss scale (the rest of cfg is not used).
 * Needs H = G (no separate H: the theorems assume an
 * interpolating minimum, where the Hessian is the Gauss–Newton matrix). */
int sgdstab_theory_compute(const sgdstab_reduced *red,
                           const sgdstab_config *cfg, sgdstab_theory *out,
                           sgdstab_error *err);

/* The learning-rate limits that need no eigensolver, for batch
 * coefficients (a, b) (moments.h): the two Mulayoff–Michaeli upper bounds on
 * η*, 1/(‖H‖_F √(b μ_min)) (+∞ when b = 0), and Wu–Ma–E's non-uniformity
 * condition η ≤ 1/(s√b) (+∞ when b = 0 or s = 0), which is no bound on η*
 * (README, The theory checks: neither necessary nor sufficient). */
typedef struct {
    double mean;                    /* 2/λmax(H) */
    double mulayoff_michaeli_top, mulayoff_michaeli_trace;
    double wu_wang_su;
    double wu_ma_e;                 /* 1/(s√b) */
} sgdstab_lr_bounds;

void sgdstab_theory_lr_bounds(const sgdstab_theory *th, double a, double b,
                              sgdstab_lr_bounds *out);

/* μ(S) for an r×r second moment S in reduced coordinates (NaN when
 * tr(GS) = 0). */
double sgdstab_alignment(const sgdstab_reduced *red, const double *S);

/* One inequality: value ≤ bound (upper) or value ≥ bound (lower). */
typedef struct {
    const char *name;
    const char *description;
    double value, bound;
    int upper;          /* 1: value ≤ bound must hold; 0: value ≥ bound */
    int theorem;        /* 1: it must hold on this input (failure = a bug);
                           0: a condition reported without judgement */
    int holds;
    double ratio;       /* tightness: value/bound (upper) or bound/value
                           (lower); ≤ 1 when it holds, 1 = tight */
} sgdstab_check;

#define SGDSTAB_MAX_CHECKS 10

typedef struct {
    sgdstab_analysis analysis;     /* the exact answer at (η, B) */
    sgdstab_theory theory;
    double alignment_top;          /* μ at the top eigenmatrix of 𝒯 */
    double frobenius_bound;        /* 1/(η√(b μ_min)) (+∞ if b = 0) */
    double growth_bound;           /* η² b μ_min ‖G‖_F² ≤ ρ⊥ */
    size_t nchecks;
    sgdstab_check checks[SGDSTAB_MAX_CHECKS];
    size_t theorems_failed;        /* checks with theorem && !holds */
} sgdstab_verification;

/* Everything `sgdstab verify` reports at cfg.  th from
 * sgdstab_theory_compute on the problem s was made for, with the same loss
 * scale (SGDSTAB_EINVAL otherwise).  One analysis (sgdstab_analyze): η*(B)
 * and ρ⊥ are solved once, the top eigenmatrix with ρ⊥. */
int sgdstab_verify(sgdstab_stability *s, const sgdstab_theory *th,
                   const sgdstab_config *cfg, sgdstab_verification *out,
                   sgdstab_error *err);

#ifdef __cplusplus
}
#endif

#endif
