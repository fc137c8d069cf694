/* sgdstab — the reduced problem as an optimizer sees it (optimizer.h).
 *
 * A preconditioner P = diag(√v̂ + ε) changes the problem itself: J_i →
 * J_i P^{-1/2} and H → P^{-1/2} H P^{-1/2}, factorized anew.  Coupled
 * weight decay λ adds λ/c to the curvature (c the loss scale): without a
 * preconditioner on the reduced space only, which keeps its dimension —
 * directions J never moves then decay on their own, deterministically —
 * and with one as λ/c·P⁻¹ on all p coordinates, which makes the reduced
 * space all of parameter space (r = p). */
#ifndef SGDSTAB_PLAN_H
#define SGDSTAB_PLAN_H

#include "sgdstab/config.h"
#include "sgdstab/problem.h"
#include "sgdstab/reduce.h"
#include "sgdstab/status.h"
#include "sgdstab/theory.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The reduced problem of prob for cfg's optimizer and loss scale (ropt as
 * for sgdstab_reduce).  The optimizer is checked first
 * (sgdstab_optimizer_check). */
int sgdstab_reduce_for(const sgdstab_problem *prob,
                       const sgdstab_reduce_options *ropt,
                       const sgdstab_config *cfg, sgdstab_reduced **out,
                       sgdstab_error *err);

/* SGDSTAB_OK if red is what sgdstab_reduce_for makes for cfg (the same
 * preconditioner and curvature shift), else SGDSTAB_EINVAL saying so. */
int sgdstab_view_check(const sgdstab_reduced *red, const sgdstab_config *cfg,
                       sgdstab_error *err);

/* The coupled weight decay's added curvature λ/c of cfg (0 for AdamW,
 * whose decay is decoupled). */
double sgdstab_curvature_shift(const sgdstab_config *cfg);

/* The directions of red (made for cfg by sgdstab_reduce_for) that the
 * noise-free step contracts at no η: curvature 0 (a supplied H singular
 * where J moves), with no coupled decay lifting it and no decoupled decay
 * (AdamW) shrinking the parameters.  Their batch noise is never damped (a
 * degenerate minimum, stability.h) and their gradient noise is a random
 * walk (stationary.h). */
size_t sgdstab_undamped_directions(const sgdstab_reduced *red,
                                   const sgdstab_config *cfg);

/* The theory quantities (theory.h) of red's own H at cfg's loss scale,
 * for red made from prob by sgdstab_reduce_for: of the preconditioned H
 * with a preconditioner, and of H without weight decay's shift (prob is
 * then factorized once more without it). */
int sgdstab_plan_theory(const sgdstab_problem *prob,
                        const sgdstab_reduced *red, const sgdstab_config *cfg,
                        sgdstab_theory *th, sgdstab_error *err);

/* The mean path of cfg's update (the deterministic map M(h) of
 * optimizer.h, which E[H_ξ] = H makes the map of the mean): a_t(h) is the
 * parameter after t steps at curvature h (in H's units, as red->lambda)
 * from 1 and an empty buffer, the first step as PyTorch takes it.
 * out[t] = Σ_i w_i·a_t(h_i) for t = 0..steps.  Directions J never moves
 * (outside the reduced space, when r < p) feel only the weight decay, so
 * they follow a_t(red->curvature_shift): 1 throughout without decay. */
void sgdstab_mean_path(const sgdstab_config *cfg, const double *h,
                       const double *w, size_t m, size_t steps, double *out);

/* The asymptotic rate per step of E‖δ‖² in directions J never moves,
 * 2·ln ρ(M(red->curvature_shift)) (≤ 0; 0 without decay), or NaN when
 * every direction moves (r = p; when p is not known, the rate such
 * directions would have). */
double sgdstab_null_decay_rate(const sgdstab_reduced *red,
                               const sgdstab_config *cfg);

#ifdef __cplusplus
}
#endif

#endif
