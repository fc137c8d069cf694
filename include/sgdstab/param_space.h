/* sgdstab — E‖δ‖² in parameter coordinates from the reduced state.
 *
 * The engine works in the reduced coordinates z of reduce.h.  Without a
 * preconditioner they are orthonormal coordinates of parameter space:
 * δ = Q z + δ⊥ with δ⊥ in the directions J never moves, and
 * ‖δ‖² = ‖z‖² + ‖δ⊥‖².  With a preconditioner P = diag(√v̂ + ε) the
 * reduced problem is that of y = P^{1/2} δ (plan.h), y = Q z + y⊥, so
 *
 *     ‖δ‖² = yᵀ P⁻¹ y = zᵀ W z + 2 zᵀ v + ν,
 *     W = Qᵀ P⁻¹ Q,   v = Qᵀ P⁻¹ y⊥,   ν = y⊥ᵀ P⁻¹ y⊥:
 *
 * the part J never moves is no longer orthogonal to the rest in δ's metric.
 * y⊥ feels only the weight decay, y⊥_t = a_t·y⊥_0 with a_t the mean path
 * at the curvature shift (plan.h), and since E[H_ξ] = H the mean of z_t
 * given the start follows the deterministic map, per reduced coordinate j
 * the path a_t(h_j).  So from δ_0 with second moment S_0
 *
 *     E‖δ_t‖² = tr(W Z_t) + 2·a_t(shift)·Σ_j a_t(h_j)·E[z_0j v_0j]
 *               + a_t(shift)²·E ν_0,
 *
 * Z_t the exact evolution of the second moment of z (moments.h). */
#ifndef SGDSTAB_PARAM_SPACE_H
#define SGDSTAB_PARAM_SPACE_H

#include <stddef.h>
#include "sgdstab/config.h"
#include "sgdstab/problem.h"
#include "sgdstab/reduce.h"
#include "sgdstab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    size_t r, p;
    double *rows;  /* r×p: Qᵀ in the coordinates y (z = rows·y) */
    double *root;  /* p: the diagonal of P^{1/2}; NULL without a
                      preconditioner (y = δ) */
    double *W;     /* r×r: Qᵀ P⁻¹ Q; NULL without a preconditioner (I) */
} sgdstab_param_space;

/* The view of red (made from prob by sgdstab_reduce_for for cfg) from
 * parameter space: r·p + r² + p doubles. */
int sgdstab_param_space_make(const sgdstab_problem *prob,
                             const sgdstab_reduced *red,
                             const sgdstab_config *cfg,
                             sgdstab_param_space *ps, sgdstab_error *err);
void sgdstab_param_space_free(sgdstab_param_space *ps);

/* out = Qᵀ P^{exponent} Q (r×r) for exponent ±1: W for −1, the metric of
 * the gradient's norm for +1; the identity, computed, without a
 * preconditioner.  work holds r·p doubles. */
void sgdstab_param_space_gram(const sgdstab_param_space *ps, int exponent,
                              double *out, double *work);

/* Split one δ (length p) into z (r), v (r) and *nu; work holds 2p
 * doubles. */
void sgdstab_param_space_split(const sgdstab_param_space *ps,
                               const double *delta, double *z, double *v,
                               double *nu, double *work);

/* ‖δ‖² = zᵀWz + 2a·zᵀv + a²ν, a the factor of the part J never moves. */
double sgdstab_param_space_norm2(const sgdstab_param_space *ps,
                                 const double *z, const double *v, double nu,
                                 double a);

/* For δ_0 with second moment S0 (p×p, row-major, symmetric; NULL: I/p):
 * Z0 = E z_0 z_0ᵀ (r×r), cross[j] = E[z_0j v_0j] (r) and *nu0 = E ν_0. */
int sgdstab_param_space_start(const sgdstab_param_space *ps,
                              const double *S0, double *Z0, double *cross,
                              double *nu0, sgdstab_error *err);

/* SGDSTAB_EINVAL naming red's file when a start cannot be had from red:
 * a given S0 (matrix) needs J, the start I/p (isotropic) needs p. */
int sgdstab_start_check(const sgdstab_reduced *red, int matrix,
                        int isotropic, sgdstab_error *err);

/* Where an evolution starts: δ_0 with second moment S (p×p), I/p when S
 * is NULL, or at the minimum itself (δ_0 = 0) when at_minimum. */
typedef struct {
    const double *S;
    int at_minimum;
} sgdstab_start;

/* The exact E‖δ_t‖² (m2) and E L_t = ½·c·E δ_tᵀGδ_t (loss), t = 0..steps,
 * of cfg's optimizer from start (NULL: I/p) and an empty buffer, with the
 * additive gradient noise C of stationary.h (r×r in red's coordinates;
 * NULL: none); red made from prob by sgdstab_reduce_for for cfg. */
int sgdstab_evolve(const sgdstab_problem *prob, const sgdstab_reduced *red,
                   const sgdstab_config *cfg, const sgdstab_start *start,
                   const double *noise, size_t steps, double *m2,
                   double *loss, sgdstab_error *err);

#ifdef __cplusplus
}
#endif

#endif
