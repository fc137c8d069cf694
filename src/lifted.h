/* The exact engine for optimizers with a buffer (optimizer.h): ρ of the
 * lifted second-moment map and η* where it is not one symmetric
 * eigenproblem, by root finds over symmetric eigenproblems of the size of
 * plain SGD's (README, Optimizers).  Internal to stability.c. */
#ifndef SGDSTAB_LIFTED_H
#define SGDSTAB_LIFTED_H

#include "sgdstab/config.h"
#include "sgdstab/moments.h"
#include "sgdstab/stability.h"

/* ρ of the lifted map at cfg with batch-noise coefficient b (moments.h),
 * and if S is not NULL the parameter block of its top eigenmatrix (r×r,
 * unit Frobenius norm). */
int sgdstab_lifted_radius(sgdstab_moments *m, const sgdstab_reduced *red,
                          const sgdstab_config *cfg, double b,
                          sgdstab_radius *out, double *S, sgdstab_error *err);

/* η*(B) at cfg's batch size (coefficient b) by a bracketed root find of
 * ρ(η) = 1 over (0, the noise-free limit): for Nesterov and AdamW's
 * decoupled decay, whose stability condition is not affine in 1/η. */
int sgdstab_lifted_critical(sgdstab_moments *m, const sgdstab_reduced *red,
                            const sgdstab_config *cfg, double b,
                            sgdstab_critical *out, sgdstab_error *err);

/* The noise-free limit: the largest learning rate (PyTorch's) at which
 * every direction of the reduced space contracts in the mean,
 * max_j ρ(M(h_j)) < 1 (2(1 + β)/(s·c·λmax) for heavy ball); 0 with
 * negative curvature. */
double sgdstab_lifted_mean_limit(const sgdstab_reduced *red,
                                 const sgdstab_config *cfg);

/* ρ(M̄)², the noise-free radius of the lifted map on the reduced space. */
double sgdstab_lifted_floor(const sgdstab_step_map *map,
                            const sgdstab_reduced *red);

/* A root of f over the bracket x_lo < x_hi where f changes sign (f_lo and
 * f_hi its values there), by regula falsi with the Illinois step; both
 * ends move in.  *best is the evaluated x of smallest |f|, *slope
 * |f_hi − f_lo|/(x_hi − x_lo) of the final bracket (an error estimate is
 * |f(best)|/slope). */
typedef int (*sgdstab_root_fn)(void *ctx, double x, double *f,
                               sgdstab_error *err);
int sgdstab_bracketed_root(sgdstab_root_fn eval, void *ctx, double *x_lo,
                           double f_lo, double *x_hi, double f_hi,
                           double *best, double *slope, sgdstab_error *err);

/* ρ = z_floor + e^x at the root of f (> 0 below it, < 0 above; the
 * radius' criterion, ln μ − 0 or θ − 1), from x_lo where f is f_lo > 0.
 * *f_error is f's own error after an evaluation, and *df (df may be NULL)
 * its derivative in x, NaN where the evaluation has none (the last
 * evaluation must be the one at x_lo).  With a derivative: Newton's
 * method in z from x_lo, safeguarded by the bracket, to a step of 1e-12
 * relative to z − z_floor (or what f's error allows).  Without:
 * the bracket grows upward by factors of 4 in z − z_floor, the root is
 * found by regula falsi, and f is evaluated there last (so that the
 * solver's eigenvector is the root's).  Fills out's rho, error_estimate
 * and residual (the bracket, where one is known). */
int sgdstab_lifted_root(sgdstab_root_fn eval, void *ctx,
                        const double *f_error, const double *df,
                        double z_floor, double x_lo, double f_lo,
                        sgdstab_radius *out, sgdstab_error *err);

#endif
