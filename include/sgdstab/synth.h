/* sgdstab — synthetic problems: exact interpolating minima of four model
 * families, built analytically from a teacher (no training), with their
 * per-sample output Jacobians and the data they fit (README, The mathematics).
 *
 * Data.  Inputs x_i ~ N(0, Σ_x), i = 1..n, independent, with
 * Σ_x = diag(σ_1², …, σ_d²), σ_j² ∝ j^(−α) (α = 0: isotropic), normalized to
 * tr Σ_x = Σ_j σ_j² = 1, so E‖x‖² = 1 whatever d and α.  Targets
 * y_i = f*(x_i) of the family's teacher f*, so the canonical "half-mean" loss
 * L(θ) = (1/2n) Σ_i ‖f(x_i; θ) − y_i‖² vanishes at the minimum θ* up to
 * rounding (the residual below).
 *
 * Families and the layout of θ: blocks in the order listed, each matrix
 * W ∈ R^{r×c} row-major (W[a][b] at a·c + b); ⊗ is the Kronecker product.
 *
 *   linear       f(x) = W x,  W ∈ R^{k×d};  θ = vec W,  p = k·d.
 *                Teacher W* i.i.d. N(0, 1); θ* = vec W*.  J_i = I_k ⊗ x_iᵀ.
 *   rfm          f(x) = A φ(x), φ(x) = σ(F x)/√m, σ = relu or tanh;
 *                F ∈ R^{m×d} i.i.d. N(0, 1) is fixed (not a parameter; kept
 *                in the result as F), A ∈ R^{k×m};  θ = vec A,  p = k·m.
 *                Teacher A* i.i.d. N(0, 1).  J_i = I_k ⊗ φ(x_i)ᵀ.
 *   deep-linear  f(x) = W_L ⋯ W_1 x,  W_1 ∈ R^{m×d}, W_l ∈ R^{m×m}
 *                (1 < l < L), W_L ∈ R^{k×m};  θ = (vec W_1, …, vec W_L),
 *                p = m·d + (L−2)·m² + k·m.  Teacher W* ∈ R^{k×d} i.i.d.
 *                N(0, 1/d) with thin SVD W* = U S Vᵀ, q = min(k, d) (m ≥ q
 *                is required).  Balanced minimum, with Q_l ∈ R^{m×q} random
 *                with orthonormal columns (QR of a Gaussian matrix):
 *                  W_1 = Q_1 S^{1/L} Vᵀ,  W_l = Q_l S^{1/L} Q_{l−1}ᵀ,
 *                  W_L = U S^{1/L} Q_{L−1}ᵀ,
 *                so W_L⋯W_1 = W* and W_{l+1}ᵀW_{l+1} = W_l W_lᵀ.  Member C
 *                of the rescaling family: W_1 → C·W_1, W_L → W_L/C.
 *                J_i block of W_l: (W_L⋯W_{l+1}) ⊗ (W_{l−1}⋯W_1 x_i)ᵀ.
 *   two-layer    f(x) = Σ_j a_j relu(w_jᵀx) = A relu(W x),  N = M + E
 *                neurons, W ∈ R^{N×d} with rows w_j, A ∈ R^{k×N} with
 *                columns a_j;  θ = (vec W, vec A),  p = N·(d + k).  Teacher:
 *                M neurons, w_j ~ N(0, I_d), a_j ~ N(0, I_k/M).  Student:
 *                the teacher's neurons, then E extra neurons with a_j = 0 and
 *                w_j ~ N(0, I_d).  Member C: (w_j/C, C·a_j) for every j, the
 *                same function (relu is positively homogeneous).
 *                J_i: ∂f/∂a_j = relu(w_jᵀx_i) I_k, ∂f/∂w_j = a_j 1[w_jᵀx_i > 0]
 *                x_iᵀ, i.e. blocks (A diag 1[W x_i > 0]) ⊗ x_iᵀ and
 *                I_k ⊗ relu(W x_i)ᵀ.
 *
 * A seed determines everything (GSL's MT19937 via rng.h; X first, then the
 * family's draws in a fixed order). */
#ifndef SGDSTAB_SYNTH_H
#define SGDSTAB_SYNTH_H

#include <stddef.h>
#include "sgdstab/problem.h"
#include "sgdstab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* No array of a synthetic problem may hold more values than this (J has
 * n·k·p): 2^28 doubles, 2 GiB. */
#define SGDSTAB_SYNTH_MAX_VALUES ((size_t)1 << 28)

typedef enum {
    SGDSTAB_SYNTH_LINEAR = 0,
    SGDSTAB_SYNTH_RFM,
    SGDSTAB_SYNTH_DEEP_LINEAR,
    SGDSTAB_SYNTH_TWO_LAYER
} sgdstab_synth_family;

typedef enum {
    SGDSTAB_ACTIVATION_RELU = 0,
    SGDSTAB_ACTIVATION_TANH
} sgdstab_activation;

/* Names as on the command line: "linear", "rfm", "deep-linear",
 * "two-layer"; "relu", "tanh".  The parsers return 0, or −1 for an unknown
 * name. */
const char *sgdstab_synth_family_name(sgdstab_synth_family f);
int sgdstab_synth_family_parse(const char *text, sgdstab_synth_family *f);
const char *sgdstab_activation_name(sgdstab_activation a);
int sgdstab_activation_parse(const char *text, sgdstab_activation *a);

/* Input spectrum "iso" (α = 0) or "power:ALPHA" (α finite, ≥ 0; power:0 is
 * iso); 0, or −1 when text is neither. */
int sgdstab_synth_spectrum_parse(const char *text, double *alpha);

typedef struct {
    sgdstab_synth_family family;
    size_t samples;        /* n ≥ 1 */
    size_t inputs;         /* d ≥ 1 */
    size_t outputs;        /* k ≥ 1 */
    size_t width;          /* m ≥ 1: features (rfm), hidden width
                              (deep-linear), teacher neurons M (two-layer) */
    size_t depth;          /* L ≥ 2 (deep-linear) */
    size_t extra;          /* E: zero-output neurons (two-layer) */
    sgdstab_activation activation;  /* σ (rfm) */
    double alpha;          /* input spectrum σ_j² ∝ j^(−α), α ≥ 0 */
    double rescale;        /* member C > 0 of the rescaling family
                              (deep-linear, two-layer); 1: balanced/teacher */
    unsigned long seed;
} sgdstab_synth_params;

/* The parameters beyond samples, inputs, outputs, spectrum and seed that a
 * family uses, as a bit set; front ends reject the others. */
enum {
    SGDSTAB_SYNTH_USES_WIDTH = 1,
    SGDSTAB_SYNTH_USES_DEPTH = 2,
    SGDSTAB_SYNTH_USES_ACTIVATION = 4,
    SGDSTAB_SYNTH_USES_RESCALE = 8,
    SGDSTAB_SYNTH_USES_EXTRA = 16
};
unsigned sgdstab_synth_uses(sgdstab_synth_family f);

/* Defaults: family linear, 200 samples, 20 inputs, 1 output, width 64,
 * depth 3, extra 0, relu, iso, rescale 1, seed 0. */
void sgdstab_synth_params_init(sgdstab_synth_params *par);

/* Check the parameters the family uses (unused ones are ignored): ranges,
 * m ≥ min(k, d) for deep-linear, and sizes within SGDSTAB_SYNTH_MAX_VALUES.
 * SGDSTAB_EINVAL with a one-line message naming the family and the
 * parameter. */
int sgdstab_synth_check(const sgdstab_synth_params *par, sgdstab_error *err);

typedef struct {
    sgdstab_synth_params params;
    size_t n, k, p, d;
    double *J;        /* (n·k)×p row-major, rows i·k..i·k+k−1 = J_i at θ*
                         (the layout of sgdstab_problem) */
    double *X;        /* n×d inputs */
    double *Y;        /* n×k targets */
    double *theta;    /* p: the minimum θ*, in the layout above */
    double *F;        /* rfm: the fixed m×d first layer; NULL otherwise */
    double residual;  /* max over i, o of |f(x_i; θ*)_o − y_io| */
    double residual_rms;  /* sqrt((1/n) Σ_i ‖f(x_i; θ*) − y_i‖²) */
    double target_rms;    /* sqrt((1/n) Σ_i ‖y_i‖²) */
} sgdstab_synth;

/* Check par, then build the problem it describes. */
int sgdstab_synth_generate(const sgdstab_synth_params *par,
                           sgdstab_synth **out, sgdstab_error *err);

/* The model of s at any θ (p values, the layout above; F of s for rfm):
 * out (count×k) = f(x_j; θ) for the count×d inputs X. */
int sgdstab_synth_predict(const sgdstab_synth *s, const double *theta,
                          const double *X, size_t count, double *out,
                          sgdstab_error *err);

/* A validated problem with a copy of J (H = G), for the analyses. */
int sgdstab_synth_problem(const sgdstab_synth *s, sgdstab_problem **out,
                          sgdstab_error *err);

/* The metadata of s as JSON text (caller frees; NULL if out of memory),
 * one object formatted as cJSON_Print formats it (a member a line, indented
 * with tabs): family, n, k, p, d, the parameters the family uses (width,
 * depth, activation, extra, rescale), spectrum and alpha, seed,
 * loss "half-mean", max_residual, residual_rms and target_rms (the fields
 * above, as provenance.h reads them; target_rms only when positive),
 * theta_blocks (name, rows, cols, offset of each matrix in θ) and the
 * command that regenerates the file; numbers to 17 significant digits.
 * Then, when file is not NULL, "file": the path s was written to (what
 * `sgdstab synth --json` reports; meta.json itself has none). */
char *sgdstab_synth_meta_json(const sgdstab_synth *s, const char *file);

/* Write s as an .npz (atomically): J with shape (n, k, p), or (n, p) when
 * k = 1; X (n, d); Y (n, k); theta (p,); F (m, d) for rfm; and meta.json,
 * the text of sgdstab_synth_meta_json(s, NULL). */
int sgdstab_synth_write(const sgdstab_synth *s, const char *path,
                        sgdstab_error *err);

void sgdstab_synth_free(sgdstab_synth *s);

#ifdef __cplusplus
}
#endif

#endif
