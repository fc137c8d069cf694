/* sgdstab — the optimizer of a run: SGD with momentum, dampening, Nesterov
 * and weight decay, RMSprop, Adam and AdamW, as PyTorch's torch.optim.SGD,
 * RMSprop, Adam and AdamW define them (README, Optimizers).
 *
 * Near a minimum every one of them, linearized with its second moment v̂
 * frozen (Adam's exp_avg_sq after bias correction; bias corrections of the
 * first moment taken at convergence, = 1), is heavy-ball momentum on a
 * transformed problem:
 *   - a preconditioner P = diag(√v̂ + ε) (RMSprop, Adam, AdamW) is the change
 *     of variables y = P^{1/2}x: J_i → J_i P^{-1/2}, H → P^{-1/2} H P^{-1/2};
 *   - coupled weight decay λ (SGD, RMSprop, Adam) adds λ to H (λP⁻¹ in the
 *     preconditioned variables); AdamW's decoupled decay multiplies the
 *     parameters by κ = 1 − ηλ each step;
 *   - PyTorch's dampening τ scales the gradient entering the buffer by
 *     1 − τ, and Adam's first moment by 1 − β₁: the step size of the buffer
 *     form is s·η with s = 1 − τ (SGD) or 1 − β₁ (Adam).
 * In one eigen-direction of the transformed H (curvature h) the state
 * z = (x, buffer) moves by the 2×2 matrix
 *     M(h) = [[κ − s·η·h·(1 + νβ), −η·β^{1+ν}], [s·h, β]],  ν = nesterov,
 * and the batch noise enters through c = (−s·η·(1 + νβ), s).
 * With momentum β = 0 all of this is plain SGD on the transformed problem. */
#ifndef SGDSTAB_OPTIMIZER_H
#define SGDSTAB_OPTIMIZER_H

#include <stddef.h>
#include "sgdstab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SGDSTAB_OPTIMIZER_SGD = 0,  /* torch.optim.SGD (RMSprop when v̂ given) */
    SGDSTAB_OPTIMIZER_ADAM,     /* torch.optim.Adam: coupled weight decay */
    SGDSTAB_OPTIMIZER_ADAMW     /* torch.optim.AdamW: decoupled decay */
} sgdstab_optimizer_kind;

/* "sgd", "adam", "adamw" ("?" if out of range). */
const char *sgdstab_optimizer_name(sgdstab_optimizer_kind k);

/* The kind named text; SGDSTAB_EINVAL if there is none. */
int sgdstab_optimizer_parse(const char *text, sgdstab_optimizer_kind *k);

typedef struct {
    sgdstab_optimizer_kind kind;  /* default SGDSTAB_OPTIMIZER_SGD */
    double momentum;      /* β (SGD) or β₁ (Adam), in [0, 1); default 0 */
    double dampening;     /* τ in [0, 1), SGD with β > 0 only; default 0 */
    int nesterov;         /* SGD only; needs β > 0 and τ = 0 (PyTorch) */
    double weight_decay;  /* λ ≥ 0, in the training loss's convention:
                             coupled for SGD and Adam, decoupled (κ = 1 −
                             ηλ) for AdamW; default 0 */
    double beta2;         /* β₂ in [0, 1): only says how v̂ was averaged;
                             default 0.999 */
    double eps;           /* ε > 0 of P = diag(√v̂ + ε); default 1e-8 */
    const double *second_moment;  /* v̂, second_moment_len = p values,
                                     finite and > 0, or NULL: P = I; Adam
                                     and AdamW need it; not owned */
    size_t second_moment_len;
    int precond_in_gram;  /* P was applied when the problem's preconditioned
                             Gram KP was made (problem.h): the problem is
                             one of Gram matrices, v̂ is not needed
                             (second_moment NULL), ε must be KP's */
} sgdstab_optimizer;

/* Plain SGD: the defaults above. */
void sgdstab_optimizer_init(sgdstab_optimizer *opt);

/* The defaults of kind as torch.optim has them: SGD's above; Adam's β₁ =
 * 0.9 (momentum), β₂ = 0.999, ε = 1e-8; AdamW's also weight decay 0.01. */
void sgdstab_optimizer_defaults(sgdstab_optimizer *opt,
                                sgdstab_optimizer_kind kind);

/* Check the optimizer on its own and against p parameters: SGDSTAB_OK or
 * SGDSTAB_EINVAL with one line naming the setting and the rule it breaks
 * (e.g. "nesterov needs zero dampening (PyTorch's rule), not 0.1"). */
int sgdstab_optimizer_check(const sgdstab_optimizer *opt, size_t p,
                            sgdstab_error *err);

/* Its name in a sentence: "SGD", "RMSprop" (SGD with v̂), "Adam",
 * "AdamW". */
const char *sgdstab_optimizer_title(const sgdstab_optimizer *opt);

/* Is the run not plain SGD on the (transformed) problem: a buffer (β > 0)
 * or AdamW's decoupled decay?  Then the lifted map of stability.h
 * decides. */
int sgdstab_optimizer_lifted(const sgdstab_optimizer *opt);

/* AdamW with weight decay λ > 0: every step multiplies the parameters by
 * κ = 1 − ηλ < 1, so even directions of zero curvature contract. */
int sgdstab_optimizer_decoupled_decay(const sgdstab_optimizer *opt);

/* The buffer's gain s: 1 − τ (SGD with momentum), 1 − β₁ (Adam, AdamW
 * with β₁ > 0), 1 without momentum (PyTorch bypasses the buffer). */
double sgdstab_optimizer_buffer_gain(const sgdstab_optimizer *opt);

/* Does the run have a preconditioner: v̂ given, or applied in KP? */
int sgdstab_optimizer_preconditioned(const sgdstab_optimizer *opt);

/* The preconditioner's entry P_jj = √v̂_j + ε (second_moment given). */
double sgdstab_optimizer_precond(const sgdstab_optimizer *opt, size_t j);

/* The optimizer in words, e.g. "SGD with momentum 0.9 and weight decay
 * 0.0005", "Adam (beta1 0.9, eps 1e-08)"; at most size bytes with the
 * NUL. */
void sgdstab_optimizer_describe(const sgdstab_optimizer *opt, char *buf,
                                size_t size);

/* The linearized step of one direction: M(h) = M0 + h·c dᵀ with d = (1, 0)
 * (header comment), for curvatures h of the unscaled problem. */
typedef struct {
    double kappa;   /* 1 − η·λ for AdamW, else 1 */
    double beta;    /* momentum β (β₁) */
    double step;    /* s·c·η: the step of plain SGD this is (β = 0) */
    double c[2];    /* the noise input (−s·c·η·(1 + νβ), s) */
    double m0[4];   /* M0 row-major: [[κ, −c·η·β^{1+ν}], [0, β]] */
    int nesterov;
} sgdstab_step_map;

/* The step map of opt at learning rate lr (PyTorch's) and loss scale
 * loss_scale (c: the curvature c·h is what the run sees). */
void sgdstab_step_map_init(const sgdstab_optimizer *opt, double lr,
                           double loss_scale, sgdstab_step_map *map);

/* M(h) of the map (row-major 2×2). */
void sgdstab_step_map_matrix(const sgdstab_step_map *map, double h,
                             double M[4]);

/* ρ(M(h)), the spectral radius of the noise-free step in a direction of
 * curvature h. */
double sgdstab_step_map_radius(const sgdstab_step_map *map, double h);

/* ℓ(z) = dᵀXd where z·X − M(h_j) X M(h_l)ᵀ = c cᵀ (DESIGN of the lifted
 * map): the gain of the (j, l) entry of the second moment of the
 * parameters from one unit of noise, summed over future steps with weight
 * z^{-t}.  Needs z > ρ(M(h_j))·ρ(M(h_l)); NaN when the equation is
 * singular. */
double sgdstab_step_map_gain(const sgdstab_step_map *map, double hj,
                             double hl, double z);

#ifdef __cplusplus
}
#endif

#endif
