/* sgdstab — the second-moment map of linearized SGD (README, The mathematics).
 *
 * In the reduced coordinates of reduce.h, with H = diag(h), for learning rate
 * η, batch size B and a sampling rule with coefficients (a, b):
 *
 *   𝒯(Z) = (I − ηH) Z (I − ηH) + η² [ b·Σ(Z) − (1 − a)·G Z G ],
 *   Σ(Z) = (1/n) Σ_i Φ_iᵀ (Φ_i Z Φ_iᵀ) Φ_i,
 *
 * and 𝒯 = I − η𝒜₁ + η²𝒜₂ with 𝒜₁(Z) = HZ + ZH and
 * 𝒜₂(Z) = HZH − (1 − a)·GZG + b·Σ(Z).  For every sampling rule of the table
 * (1 − a = b, or a = 1) this is 𝒜₂ = HZH + b·𝒩(Z) with 𝒩 below: an
 * entry-wise part plus b times one fixed operator.  Σ(Z) is evaluated with
 * BLAS-3 in about 2·n·k·r² flops.  With T the upper triangle of Z and its
 * diagonal halved (Z = T + Tᵀ), Y = ΦT is a triangular TRMM (n·k·r²) and
 * Φ_i Z Φ_iᵀ = Y_iΦ_iᵀ + Φ_iY_iᵀ; each k×k block = Σ_m ω_m u_m u_mᵀ
 * turns Φ_iᵀ(·)Φ_i into a signed sum of rank-one terms ψψᵀ with ψ = Φ_iᵀu_m;
 * the rows ψ with ω ≥ 0 and with ω < 0 go through one SYRK each (n·k·r²
 * together).  The work is spread over the cores in fixed parts (by samples
 * for ΦT, by rows of the output for the SYRKs), so the result does not
 * depend on the number of threads.
 *
 * The loss scale c of a non-canonical loss (A_i → c·A_i, H → c·H) enters
 * only through the product c·η, so callers pass the effective rate c·η. */
#ifndef SGDSTAB_MOMENTS_H
#define SGDSTAB_MOMENTS_H

#include <stddef.h>
#include "sgdstab/config.h"
#include "sgdstab/reduce.h"
#include "sgdstab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* E[G_ξ S G_ξ] = a·GSG + b·Σ(S) for batch size B out of n (the (a, b) table
 * of README, The mathematics).
 * B must satisfy 1 ≤ B ≤ n for `without` and `bernoulli`, B ≥ 1 for `with`;
 * `reshuffle` has no per-step coefficients (SGDSTAB_EINVAL). */
int sgdstab_batch_coefficients(sgdstab_sampling s, size_t n, size_t B,
                               double *a, double *b, sgdstab_error *err);

/* Workspace for applying 𝒯 and 𝒜₂ to r×r symmetric matrices ("plan once,
 * execute many": allocate once per reduced problem). */
typedef struct sgdstab_moments sgdstab_moments;

sgdstab_moments *sgdstab_moments_alloc(const sgdstab_reduced *red,
                                       sgdstab_error *err);
void sgdstab_moments_free(sgdstab_moments *m);

/* out = Σ(Z).  Z and out are r×r, full symmetric storage, distinct. */
void sgdstab_moments_sigma(sgdstab_moments *m, const double *Z, double *out);

/* out = 𝒯(Z) for effective learning rate eta and coefficients (a, b). */
void sgdstab_moments_step(sgdstab_moments *m, double eta, double a, double b,
                          const double *Z, double *out);

/* y = S·𝒩(S·x) on packed symmetric matrices (below; x and y of length
 * r(r+1)/2, distinct), with S = diag(scale) entry-wise on the packed
 * coordinates, or the identity when scale is NULL.  𝒩 is the part of 𝒯 and
 * 𝒜₂ that batch noise adds, per unit of η²·b: Σ(Z) − GZG when subtract_gzg
 * (sampling `without` and `with`, where 1 − a = b), Σ(Z) alone for
 * `bernoulli` (a = 1).  The eigensolvers' operator: packed in and out, no
 * full matrix is formed. */
void sgdstab_moments_noise(sgdstab_moments *m, int subtract_gzg,
                           const double *scale, const double *x, double *y);

/* Evolve S_{t+1} = 𝒯(S_t) (+ η²c²·noise, the additive gradient noise of
 * stationary.h, when noise is not NULL) at cfg (learning rate, batch size,
 * sampling, loss scale, optimizer; checked) from Z0 for `steps` steps;
 * trace[t] =
 * tr(W Z_t) (tr Z_t when W is NULL) and trace_G[t] = tr(G Z_t) for
 * t = 0..steps (arrays of steps + 1).  With an optimizer that lifts the
 * state (optimizer.h) Z_t is the second moment of the parameters' part,
 * from an empty buffer.  E‖δ_t‖² and E L_t in parameter space:
 * sgdstab_evolve (param_space.h). */
int sgdstab_moments_evolve(sgdstab_moments *m, const sgdstab_config *cfg,
                           const double *Z0, const double *noise,
                           const double *W, size_t steps, double *trace,
                           double *trace_G, sgdstab_error *err);

/* Floating-point operations of one application of Σ (for benchmarks). */
double sgdstab_moments_sigma_flops(const sgdstab_moments *m);

/* Symmetric r×r matrices as vectors of length r(r+1)/2 whose Euclidean inner
 * product is the Frobenius one: diagonal entries as they are, each pair of
 * off-diagonal entries as √2·Z_jl (j < l), row by row of the upper triangle. */
size_t sgdstab_sym_dim(size_t r);
/* Index of the diagonal entry (j, j): the first of row j. */
size_t sgdstab_sym_diag_index(size_t r, size_t j);
void sgdstab_sym_unpack(size_t r, const double *x, double *Z);
/* The packed vector of Z (its symmetric part). */
void sgdstab_sym_pack(size_t r, const double *Z, double *x);

#ifdef __cplusplus
}
#endif

#endif
