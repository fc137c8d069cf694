/* Synthetic minima (synth.h).
 *
 * Every family is one chain of weight matrices on an input map (layers
 * numbered from 0 here: W_l maps h_l to h_{l+1}):
 *
 *   h_0 = x (rfm: φ(x) = σ(F x)/√m),   z_{l+1} = W_l h_l,
 *   h_{l+1} = relu(z_{l+1}) between the layers of two-layer, z_{l+1} else,
 *   f(x) = z_L.
 *
 * linear and rfm are one layer, two-layer is two, deep-linear L.  The chain
 * rule gives every Jacobian one form: the block of W_l in J_i is
 * B_l ⊗ h_lᵀ with B_l = ∂f/∂z_{l+1} ∈ R^{k×dim h_{l+1}}, B_{L−1} = I_k and
 * B_{l−1} = B_l W_l diag(act'(z_l)). */
#include "sgdstab/synth.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <lapacke.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sgdstab/npy.h"
#include "sgdstab/rng.h"

/* ----------------------------------------------------------------- names */

static const char *const FAMILY_NAMES[] = {"linear", "rfm", "deep-linear",
                                           "two-layer"};
static const char *const ACTIVATION_NAMES[] = {"relu", "tanh"};
#define COUNT(a) ((int)(sizeof a / sizeof a[0]))

/* Index of text among names, or −1. */
static int lookup(const char *text, const char *const *names, int count)
{
    for (int i = 0; i < count; i++)
        if (!strcmp(text, names[i]))
            return i;
    return -1;
}

const char *sgdstab_synth_family_name(sgdstab_synth_family f)
{
    return (int)f >= 0 && (int)f < COUNT(FAMILY_NAMES) ? FAMILY_NAMES[f]
                                                       : "unknown";
}

int sgdstab_synth_family_parse(const char *text, sgdstab_synth_family *f)
{
    int i = lookup(text, FAMILY_NAMES, COUNT(FAMILY_NAMES));
    if (i < 0)
        return -1;
    *f = (sgdstab_synth_family)i;
    return 0;
}

const char *sgdstab_activation_name(sgdstab_activation a)
{
    return (int)a >= 0 && (int)a < COUNT(ACTIVATION_NAMES)
               ? ACTIVATION_NAMES[a] : "unknown";
}

int sgdstab_activation_parse(const char *text, sgdstab_activation *a)
{
    int i = lookup(text, ACTIVATION_NAMES, COUNT(ACTIVATION_NAMES));
    if (i < 0)
        return -1;
    *a = (sgdstab_activation)i;
    return 0;
}

int sgdstab_synth_spectrum_parse(const char *text, double *alpha)
{
    if (!strcmp(text, "iso")) {
        *alpha = 0;
        return 0;
    }
    if (strncmp(text, "power:", 6) != 0)
        return -1;
    const char *num = text + 6;
    char *end;
    errno = 0;
    double a = strtod(num, &end);
    if (end == num || *end != '\0' || errno == ERANGE || !isfinite(a) ||
        a < 0)
        return -1;
    *alpha = a;
    return 0;
}

unsigned sgdstab_synth_uses(sgdstab_synth_family f)
{
    switch (f) {
    case SGDSTAB_SYNTH_RFM:
        return SGDSTAB_SYNTH_USES_WIDTH | SGDSTAB_SYNTH_USES_ACTIVATION;
    case SGDSTAB_SYNTH_DEEP_LINEAR:
        return SGDSTAB_SYNTH_USES_WIDTH | SGDSTAB_SYNTH_USES_DEPTH |
               SGDSTAB_SYNTH_USES_RESCALE;
    case SGDSTAB_SYNTH_TWO_LAYER:
        return SGDSTAB_SYNTH_USES_WIDTH | SGDSTAB_SYNTH_USES_RESCALE |
               SGDSTAB_SYNTH_USES_EXTRA;
    default:
        return 0;
    }
}

void sgdstab_synth_params_init(sgdstab_synth_params *par)
{
    memset(par, 0, sizeof *par);
    par->family = SGDSTAB_SYNTH_LINEAR;
    par->samples = 200;
    par->inputs = 20;
    par->outputs = 1;
    par->width = 64;
    par->depth = 3;
    par->activation = SGDSTAB_ACTIVATION_RELU;
    par->rescale = 1;
}

/* ----------------------------------------------------------------- chain */

/* Saturating size arithmetic: SIZE_MAX stands for "overflows". */
static size_t add_sat(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static size_t mul_sat(size_t a, size_t b)
{
    return a && b > SIZE_MAX / a ? SIZE_MAX : a * b;
}

static size_t chain_layers(const sgdstab_synth_params *par)
{
    return par->family == SGDSTAB_SYNTH_DEEP_LINEAR ? par->depth
           : par->family == SGDSTAB_SYNTH_TWO_LAYER ? 2 : 1;
}

/* Length of h_l, l = 0..L. */
static size_t chain_dim(const sgdstab_synth_params *par, size_t l)
{
    if (l == chain_layers(par))
        return par->outputs;
    if (l > 0)
        return par->family == SGDSTAB_SYNTH_TWO_LAYER
                   ? add_sat(par->width, par->extra) : par->width;
    return par->family == SGDSTAB_SYNTH_RFM ? par->width : par->inputs;
}

/* p = Σ_l dim h_{l+1} · dim h_l, or some value above
 * SGDSTAB_SYNTH_MAX_VALUES as soon as the sum passes it (the depth may be
 * absurd). */
static size_t chain_params(const sgdstab_synth_params *par)
{
    size_t p = 0;
    for (size_t l = 0; l < chain_layers(par) && p <= SGDSTAB_SYNTH_MAX_VALUES;
         l++)
        p = add_sat(p, mul_sat(chain_dim(par, l + 1), chain_dim(par, l)));
    return p;
}

/* Σ_l dim h_l over l = 0..L: the forward values of one input. */
static size_t chain_values(const sgdstab_synth_params *par)
{
    size_t v = 0;
    for (size_t l = 0; l <= chain_layers(par); l++)
        v += chain_dim(par, l);
    return v;
}

static size_t chain_max_dim(const sgdstab_synth_params *par)
{
    size_t m = 0;
    for (size_t l = 0; l <= chain_layers(par); l++)
        if (chain_dim(par, l) > m)
            m = chain_dim(par, l);
    return m;
}

static void relu_in_place(double *v, size_t count)
{
    for (size_t j = 0; j < count; j++)
        v[j] = v[j] > 0 ? v[j] : 0;
}

/* h = φ(x) = σ(F x)/√m, rfm's fixed random features. */
static void features(const sgdstab_synth_params *par, const double *F,
                     const double *x, double *h)
{
    size_t m = par->width, d = par->inputs;
    cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)m, (int)d, 1.0, F, (int)d,
                x, 1, 0.0, h, 1);
    double scale = 1 / sqrt((double)m);
    for (size_t a = 0; a < m; a++)
        h[a] = scale * (par->activation == SGDSTAB_ACTIVATION_TANH
                            ? tanh(h[a]) : fmax(h[a], 0));
}

/* h_0, …, h_L of one input x, one after the other in h. */
static void forward(const sgdstab_synth_params *par, const double *F,
                    const double *theta, const double *x, double *h)
{
    size_t L = chain_layers(par);
    if (par->family == SGDSTAB_SYNTH_RFM)
        features(par, F, x, h);
    else
        memcpy(h, x, par->inputs * sizeof *h);
    for (size_t l = 0; l < L; l++) {
        size_t rows = chain_dim(par, l + 1), cols = chain_dim(par, l);
        double *next = h + cols;
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)rows, (int)cols, 1.0,
                    theta, (int)cols, h, 1, 0.0, next, 1);
        if (par->family == SGDSTAB_SYNTH_TWO_LAYER && l + 1 < L)
            relu_in_place(next, rows);
        theta += rows * cols;
        h = next;
    }
}

/* The k rows of J_i (row stride p) from the forward values h of x_i, top
 * layer first: block of W_l = B_l ⊗ h_lᵀ, then
 * B_{l−1} = B_l W_l diag(act'(z_l)), act' = 1[z > 0] = 1[h > 0] for relu.
 * B and B_next hold k × (largest dim h_l) values. */
static void jacobian_rows(const sgdstab_synth_params *par, const double *theta,
                          size_t p, const double *h, double *Ji, double *B,
                          double *B_next)
{
    size_t k = par->outputs, off = p, h_off = chain_values(par) - k;
    for (size_t o = 0; o < k; o++)
        for (size_t a = 0; a < k; a++)
            B[o * k + a] = o == a;
    for (size_t l = chain_layers(par); l-- > 0;) {
        size_t rows = chain_dim(par, l + 1), cols = chain_dim(par, l);
        off -= rows * cols;
        h_off -= cols;
        const double *hl = h + h_off;
        for (size_t o = 0; o < k; o++)
            for (size_t a = 0; a < rows; a++) {
                double b = B[o * rows + a];
                double *row = Ji + o * p + off + a * cols;
                for (size_t c = 0; c < cols; c++)
                    row[c] = b * hl[c];
            }
        if (l == 0)
            break;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)k,
                    (int)cols, (int)rows, 1.0, B, (int)rows, theta + off,
                    (int)cols, 0.0, B_next, (int)cols);
        if (par->family == SGDSTAB_SYNTH_TWO_LAYER)
            for (size_t c = 0; c < cols; c++)
                if (!(hl[c] > 0))
                    for (size_t o = 0; o < k; o++)
                        B_next[o * cols + c] = 0;
        double *t = B;
        B = B_next;
        B_next = t;
    }
}

static int out_of_memory(const sgdstab_synth_params *par, sgdstab_error *err)
{
    return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory",
                        sgdstab_synth_family_name(par->family));
}

/* out (count×k) = f(X; θ) for the chain of par. */
static int predict(const sgdstab_synth_params *par, const double *F,
                   const double *theta, const double *X, size_t count,
                   double *out, sgdstab_error *err)
{
    size_t values = chain_values(par), k = par->outputs, d = par->inputs;
    double *h = malloc(values * sizeof *h);
    if (!h)
        return out_of_memory(par, err);
    for (size_t j = 0; j < count; j++) {
        forward(par, F, theta, X + j * d, h);
        memcpy(out + j * k, h + values - k, k * sizeof *out);
    }
    free(h);
    return SGDSTAB_OK;
}

/* ------------------------------------------------------------ parameters */

static int check_sizes(const sgdstab_synth_params *par, sgdstab_error *err)
{
    const char *fam = sgdstab_synth_family_name(par->family);
    size_t n = par->samples, k = par->outputs, d = par->inputs;
    size_t p = chain_params(par), cap = SGDSTAB_SYNTH_MAX_VALUES;
    if (p > cap)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "%s: theta would hold more "
                            "than %zu values, the limit (2 GiB)", fam, cap);
    if (mul_sat(mul_sat(n, k), p) > cap)
        return sgdstab_fail(err, SGDSTAB_EINVAL,
                            "%s: J would hold n*k*p = %zu*%zu*%zu values, more "
                            "than the limit of %zu (2 GiB)", fam, n, k, p, cap);
    if (mul_sat(n, d) > cap)
        return sgdstab_fail(err, SGDSTAB_EINVAL,
                            "%s: X would hold n*d = %zu*%zu values, more than "
                            "the limit of %zu (2 GiB)", fam, n, d, cap);
    if (par->family == SGDSTAB_SYNTH_RFM && mul_sat(par->width, d) > cap)
        return sgdstab_fail(err, SGDSTAB_EINVAL,
                            "rfm: F would hold width*inputs = %zu*%zu values, "
                            "more than the limit of %zu (2 GiB)", par->width,
                            d, cap);
    return SGDSTAB_OK;
}

int sgdstab_synth_check(const sgdstab_synth_params *par, sgdstab_error *err)
{
    if ((int)par->family < 0 || (int)par->family >= COUNT(FAMILY_NAMES))
        return sgdstab_fail(err, SGDSTAB_EINVAL, "unknown synthetic family %d",
                            (int)par->family);
    const char *fam = sgdstab_synth_family_name(par->family);
    unsigned uses = sgdstab_synth_uses(par->family);
    if (!par->samples || !par->inputs || !par->outputs)
        return sgdstab_fail(err, SGDSTAB_EINVAL,
                            "%s: samples, inputs and outputs must be at least "
                            "1 (not %zu, %zu, %zu)", fam, par->samples,
                            par->inputs, par->outputs);
    if ((uses & SGDSTAB_SYNTH_USES_WIDTH) && !par->width)
        return sgdstab_fail(err, SGDSTAB_EINVAL,
                            "%s: width must be at least 1", fam);
    if ((uses & SGDSTAB_SYNTH_USES_DEPTH) && par->depth < 2)
        return sgdstab_fail(err, SGDSTAB_EINVAL,
                            "%s: depth must be at least 2, not %zu", fam,
                            par->depth);
    if ((uses & SGDSTAB_SYNTH_USES_ACTIVATION) &&
        (int)par->activation != SGDSTAB_ACTIVATION_RELU &&
        (int)par->activation != SGDSTAB_ACTIVATION_TANH)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "%s: unknown activation %d",
                            fam, (int)par->activation);
    if (!(isfinite(par->alpha) && par->alpha >= 0))
        return sgdstab_fail(err, SGDSTAB_EINVAL,
                            "%s: the spectrum exponent alpha must be finite "
                            "and >= 0, not %g", fam, par->alpha);
    if ((uses & SGDSTAB_SYNTH_USES_RESCALE) &&
        !(isfinite(par->rescale) && par->rescale > 0))
        return sgdstab_fail(err, SGDSTAB_EINVAL,
                            "%s: rescale must be finite and positive, not %g",
                            fam, par->rescale);
    size_t q = par->outputs < par->inputs ? par->outputs : par->inputs;
    if (par->family == SGDSTAB_SYNTH_DEEP_LINEAR && par->width < q)
        return sgdstab_fail(err, SGDSTAB_EINVAL,
                            "deep-linear: width %zu is less than min(outputs, "
                            "inputs) = %zu, the rank of the teacher, which "
                            "every layer must carry", par->width, q);
    return check_sizes(par, err);
}

/* ----------------------------------------------------------- generation */

/* x_i ~ N(0, Σ_x), σ_j² = j^(−α) / Σ_l l^(−α), so tr Σ_x = 1. */
static void draw_inputs(sgdstab_rng *rng, const sgdstab_synth_params *par,
                        double *X)
{
    size_t n = par->samples, d = par->inputs;
    double total = 0;
    for (size_t j = 1; j <= d; j++)
        total += pow((double)j, -par->alpha);
    sgdstab_rng_gaussian(rng, 1.0, n * d, X);
    for (size_t j = 0; j < d; j++) {
        double sd = sqrt(pow((double)(j + 1), -par->alpha) / total);
        for (size_t i = 0; i < n; i++)
            X[i * d + j] *= sd;
    }
}

/* linear and rfm: the teacher is the minimum, θ* i.i.d. N(0, 1) (after the
 * fixed features F of rfm), and Y = f(X; θ*). */
static int build_own_teacher(sgdstab_rng *rng, sgdstab_synth *s,
                             sgdstab_error *err)
{
    if (s->F)
        sgdstab_rng_gaussian(rng, 1.0, s->params.width * s->d, s->F);
    sgdstab_rng_gaussian(rng, 1.0, s->p, s->theta);
    return predict(&s->params, s->F, s->theta, s->X, s->n, s->Y, err);
}

/* Q ∈ R^{m×q} (m ≥ q) with orthonormal columns: the Q factor of a Gaussian
 * matrix.  tau holds q values. */
static int random_orthonormal(sgdstab_rng *rng, size_t m, size_t q, double *Q,
                              double *tau)
{
    sgdstab_rng_gaussian(rng, 1.0, m * q, Q);
    return LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, (lapack_int)m, (lapack_int)q, Q,
                          (lapack_int)q, tau) != 0 ||
           LAPACKE_dorgqr(LAPACK_ROW_MAJOR, (lapack_int)m, (lapack_int)q,
                          (lapack_int)q, Q, (lapack_int)q, tau) != 0;
}

/* W (r×c) = Lf diag(g) Rᵀ for Lf ∈ R^{r×q}, R ∈ R^{c×q}. */
static void scaled_product(const double *Lf, size_t r, const double *g,
                           const double *R, size_t c, size_t q, double *W)
{
    for (size_t a = 0; a < r; a++)
        for (size_t b = 0; b < c; b++) {
            double sum = 0;
            for (size_t t = 0; t < q; t++)
                sum += Lf[a * q + t] * g[t] * R[b * q + t];
            W[a * c + b] = sum;
        }
}

/* The balanced factorization of the teacher W* = U S Vᵀ (synth.h):
 * W_l = Left_l S^{1/L} Right_lᵀ with Right_0 = V, Right_l = Left_{l−1},
 * Left_l = Q_{l+1} below the top and U at the top; then the member C. */
static int factor_teacher(sgdstab_rng *rng, sgdstab_synth *s, double *Wstar,
                          double *work, sgdstab_error *err)
{
    const sgdstab_synth_params *par = &s->params;
    size_t k = s->k, d = s->d, m = par->width, L = par->depth;
    size_t q = k < d ? k : d;
    double *U = work, *Vt = U + k * q, *V = Vt + q * d;
    double *Q[2] = {V + d * q, V + d * q + m * q};
    double *g = Q[1] + m * q, *tau = g + q, *superb = tau + q;
    if (LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'S', 'S', (lapack_int)k,
                       (lapack_int)d, Wstar, (lapack_int)d, g, U,
                       (lapack_int)q, Vt, (lapack_int)d, superb) != 0)
        return sgdstab_fail(err, SGDSTAB_ENUMERIC,
                            "deep-linear: the SVD of the teacher failed");
    for (size_t t = 0; t < q; t++)
        g[t] = pow(g[t], 1.0 / (double)L);
    for (size_t t = 0; t < q; t++)
        for (size_t b = 0; b < d; b++)
            V[b * q + t] = Vt[t * d + b];
    const double *right = V;
    double *W = s->theta;
    for (size_t l = 0; l < L; l++) {
        size_t rows = chain_dim(par, l + 1), cols = chain_dim(par, l);
        double *left = l + 1 < L ? Q[l % 2] : U;
        if (l + 1 < L && random_orthonormal(rng, m, q, left, tau))
            return sgdstab_fail(err, SGDSTAB_ENUMERIC,
                                "deep-linear: the QR factorization failed");
        scaled_product(left, rows, g, right, cols, q, W);
        right = left;
        W += rows * cols;
    }
    for (size_t j = 0; j < m * d; j++)
        s->theta[j] *= par->rescale;
    for (size_t j = s->p - k * m; j < s->p; j++)
        s->theta[j] /= par->rescale;
    return SGDSTAB_OK;
}

/* deep-linear: teacher W* i.i.d. N(0, 1/d), Y = X W*ᵀ, θ its factorization. */
static int build_deep_linear(sgdstab_rng *rng, sgdstab_synth *s,
                             sgdstab_error *err)
{
    size_t k = s->k, d = s->d, m = s->params.width, q = k < d ? k : d;
    double *Wstar = malloc(k * d * sizeof *Wstar);
    double *work = malloc((k * q + 2 * q * d + 2 * m * q + 3 * q) *
                          sizeof *work);
    int st;
    if (!Wstar || !work) {
        st = out_of_memory(&s->params, err);
    } else {
        sgdstab_rng_gaussian(rng, 1 / sqrt((double)d), k * d, Wstar);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)s->n, (int)k,
                    (int)d, 1.0, s->X, (int)d, Wstar, (int)d, 0.0, s->Y,
                    (int)k);
        st = factor_teacher(rng, s, Wstar, work, err);
    }
    free(Wstar);
    free(work);
    return st;
}

/* two-layer: teacher of M neurons θ_T = (vec W_T, vec A_T), Y = f(X; θ_T);
 * the student appends E neurons (w_j random, a_j = 0), then every neuron
 * becomes (w_j/C, C·a_j). */
static int build_two_layer(sgdstab_rng *rng, sgdstab_synth *s,
                           sgdstab_error *err)
{
    sgdstab_synth_params teacher = s->params;
    teacher.extra = 0;
    size_t M = teacher.width, N = M + s->params.extra, d = s->d, k = s->k;
    double C = s->params.rescale;
    double *tt = malloc(M * (d + k) * sizeof *tt);
    if (!tt)
        return out_of_memory(&s->params, err);
    sgdstab_rng_gaussian(rng, 1.0, M * d, tt);
    sgdstab_rng_gaussian(rng, 1 / sqrt((double)M), k * M, tt + M * d);
    int st = predict(&teacher, NULL, tt, s->X, s->n, s->Y, err);
    if (!st) {
        double *W = s->theta, *A = s->theta + N * d;
        memcpy(W, tt, M * d * sizeof *W);
        sgdstab_rng_gaussian(rng, 1.0, (N - M) * d, W + M * d);
        for (size_t j = 0; j < N * d; j++)
            W[j] /= C;
        for (size_t o = 0; o < k; o++)
            for (size_t j = 0; j < N; j++)
                A[o * N + j] = j < M ? C * tt[M * d + o * M + j] : 0;
    }
    free(tt);
    return st;
}

/* θ* and Y for the family of s. */
static int build(sgdstab_rng *rng, sgdstab_synth *s, sgdstab_error *err)
{
    switch (s->params.family) {
    case SGDSTAB_SYNTH_DEEP_LINEAR:
        return build_deep_linear(rng, s, err);
    case SGDSTAB_SYNTH_TWO_LAYER:
        return build_two_layer(rng, s, err);
    default:
        return build_own_teacher(rng, s, err);
    }
}

/* J at θ*, sample by sample. */
static int jacobian(sgdstab_synth *s, sgdstab_error *err)
{
    const sgdstab_synth_params *par = &s->params;
    size_t kmax = s->k * chain_max_dim(par);
    double *h = malloc(chain_values(par) * sizeof *h);
    double *B = malloc(2 * kmax * sizeof *B);
    if (h && B)
        for (size_t i = 0; i < s->n; i++) {
            forward(par, s->F, s->theta, s->X + i * s->d, h);
            jacobian_rows(par, s->theta, s->p, h, s->J + i * s->k * s->p, B,
                          B + kmax);
        }
    int st = h && B ? SGDSTAB_OK : out_of_memory(par, err);
    free(h);
    free(B);
    return st;
}

/* How well θ* fits the data: residual, residual_rms and target_rms of s
 * (synth.h). */
static int fit(sgdstab_synth *s, sgdstab_error *err)
{
    size_t nk = s->n * s->k;
    double *fx = malloc(nk * sizeof *fx);
    if (!fx)
        return out_of_memory(&s->params, err);
    int st = predict(&s->params, s->F, s->theta, s->X, s->n, fx, err);
    double max = 0, r2 = 0, y2 = 0;
    for (size_t j = 0; j < nk && !st; j++) {
        double r = fx[j] - s->Y[j];
        max = fmax(max, fabs(r));
        r2 += r * r;
        y2 += s->Y[j] * s->Y[j];
    }
    free(fx);
    s->residual = max;
    s->residual_rms = sqrt(r2 / (double)s->n);
    s->target_rms = sqrt(y2 / (double)s->n);
    return st;
}

/* The fit, and every value finite (an extreme rescale could overflow). */
static int finish(sgdstab_synth *s, sgdstab_error *err)
{
    int st = fit(s, err);
    int finite = isfinite(s->residual);
    for (size_t j = 0; j < s->p && finite; j++)
        finite = isfinite(s->theta[j]);
    for (size_t j = 0; j < s->n * s->k * s->p && finite; j++)
        finite = isfinite(s->J[j]);
    if (!st && !finite)
        st = sgdstab_fail(err, SGDSTAB_EVALUE, "%s: non-finite values in the "
                          "problem (rescale %g is too extreme)",
                          sgdstab_synth_family_name(s->params.family),
                          s->params.rescale);
    return st;
}

int sgdstab_synth_generate(const sgdstab_synth_params *par,
                           sgdstab_synth **out, sgdstab_error *err)
{
    *out = NULL;
    int st = sgdstab_synth_check(par, err);
    if (st)
        return st;
    sgdstab_synth *s = calloc(1, sizeof *s);
    if (!s)
        return out_of_memory(par, err);
    s->params = *par;
    s->n = par->samples;
    s->k = par->outputs;
    s->d = par->inputs;
    s->p = chain_params(par);
    s->J = malloc(s->n * s->k * s->p * sizeof *s->J);
    s->X = malloc(s->n * s->d * sizeof *s->X);
    s->Y = malloc(s->n * s->k * sizeof *s->Y);
    s->theta = malloc(s->p * sizeof *s->theta);
    int rfm = par->family == SGDSTAB_SYNTH_RFM;
    if (rfm)
        s->F = malloc(par->width * s->d * sizeof *s->F);
    sgdstab_rng *rng = sgdstab_rng_alloc(par->seed);
    if (!s->J || !s->X || !s->Y || !s->theta || (rfm && !s->F) || !rng) {
        st = sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory for J "
                          "(%zu x %zu x %zu values)",
                          sgdstab_synth_family_name(par->family), s->n, s->k,
                          s->p);
    } else {
        draw_inputs(rng, par, s->X);
        st = build(rng, s, err);
    }
    sgdstab_rng_free(rng);
    if (!st)
        st = jacobian(s, err);
    if (!st)
        st = finish(s, err);
    if (st) {
        sgdstab_synth_free(s);
        return st;
    }
    *out = s;
    return SGDSTAB_OK;
}

int sgdstab_synth_predict(const sgdstab_synth *s, const double *theta,
                          const double *X, size_t count, double *out,
                          sgdstab_error *err)
{
    return predict(&s->params, s->F, theta, X, count, out, err);
}

void sgdstab_synth_free(sgdstab_synth *s)
{
    if (!s)
        return;
    free(s->J);
    free(s->X);
    free(s->Y);
    free(s->theta);
    free(s->F);
    free(s);
}

/* ------------------------------------------------------------ exporting */

/* An array header over data owned by s (never freed through it). */
static sgdstab_array view(double *data, int ndim, size_t s0, size_t s1,
                          size_t s2)
{
    sgdstab_array a = {.ndim = ndim, .shape = {s0, s1, s2},
                       .size = s0 * s1 * s2, .data = data};
    snprintf(a.descr, sizeof a.descr, "<f8");
    return a;
}

/* J as (n, p) for k = 1, else (n, k, p). */
static sgdstab_array jacobian_view(const sgdstab_synth *s)
{
    return s->k == 1 ? view(s->J, 2, s->n, s->p, 1)
                     : view(s->J, 3, s->n, s->k, s->p);
}

int sgdstab_synth_problem(const sgdstab_synth *s, sgdstab_problem **out,
                          sgdstab_error *err)
{
    *out = NULL;
    sgdstab_array J = jacobian_view(s);
    char label[96];
    snprintf(label, sizeof label, "synthetic %s (seed %lu)",
             sgdstab_synth_family_name(s->params.family), s->params.seed);
    if (!(J.data = malloc(J.size * sizeof *J.data)))
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory", label);
    memcpy(J.data, s->J, J.size * sizeof *J.data);
    return sgdstab_problem_from_arrays(label, &J, NULL, NULL, out, err);
}

/* Numbers with 17 significant digits (exact), as the command line prints
 * them. */
static void json_number(cJSON *o, const char *key, double v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.17g", v);
    cJSON_AddRawToObject(o, key, isfinite(v) ? buf : "null");
}

static void json_size(cJSON *o, const char *key, size_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%zu", v);
    cJSON_AddRawToObject(o, key, buf);
}

static void block_name(const sgdstab_synth_params *par, size_t l, char *buf,
                       size_t cap)
{
    if (par->family == SGDSTAB_SYNTH_DEEP_LINEAR)
        snprintf(buf, cap, "W%zu", l + 1);
    else
        snprintf(buf, cap, "%s",
                 par->family == SGDSTAB_SYNTH_RFM ||
                         (par->family == SGDSTAB_SYNTH_TWO_LAYER && l == 1)
                     ? "A" : "W");
}

static void add_blocks(cJSON *meta, const sgdstab_synth_params *par)
{
    cJSON *blocks = cJSON_AddArrayToObject(meta, "theta_blocks");
    size_t off = 0;
    for (size_t l = 0; l < chain_layers(par); l++) {
        size_t rows = chain_dim(par, l + 1), cols = chain_dim(par, l);
        char name[32];
        block_name(par, l, name, sizeof name);
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "name", name);
        json_size(b, "rows", rows);
        json_size(b, "cols", cols);
        json_size(b, "offset", off);
        cJSON_AddItemToArray(blocks, b);
        off += rows * cols;
    }
}

/* printf-style text appended at buf + *len (truncated at size). */
static void appendf(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
    if (*len >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, size - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len += (size_t)n;
}

/* "sgdstab synth FAMILY --samples N ... --seed S -o OUT.npz". */
static void add_command(cJSON *meta, const sgdstab_synth_params *par,
                        const char *spectrum)
{
    unsigned uses = sgdstab_synth_uses(par->family);
    char cmd[512];
    size_t len = 0;
    appendf(cmd, sizeof cmd, &len, "sgdstab synth %s --samples %zu --inputs "
            "%zu --outputs %zu", sgdstab_synth_family_name(par->family),
            par->samples, par->inputs, par->outputs);
    if (uses & SGDSTAB_SYNTH_USES_WIDTH)
        appendf(cmd, sizeof cmd, &len, " --width %zu", par->width);
    if (uses & SGDSTAB_SYNTH_USES_DEPTH)
        appendf(cmd, sizeof cmd, &len, " --depth %zu", par->depth);
    if (uses & SGDSTAB_SYNTH_USES_ACTIVATION)
        appendf(cmd, sizeof cmd, &len, " --activation %s",
                sgdstab_activation_name(par->activation));
    if (uses & SGDSTAB_SYNTH_USES_EXTRA)
        appendf(cmd, sizeof cmd, &len, " --extra %zu", par->extra);
    if (uses & SGDSTAB_SYNTH_USES_RESCALE)
        appendf(cmd, sizeof cmd, &len, " --rescale %.17g", par->rescale);
    appendf(cmd, sizeof cmd, &len, " --spectrum %s --seed %lu -o OUT.npz",
            spectrum, par->seed);
    cJSON_AddStringToObject(meta, "command", cmd);
}

/* The members of the metadata, in their order; then "file" when file is
 * not NULL. */
static void add_meta(cJSON *meta, const sgdstab_synth *s, const char *file)
{
    const sgdstab_synth_params *par = &s->params;
    unsigned uses = sgdstab_synth_uses(par->family);
    char spectrum[40], seed[24];
    if (par->alpha == 0)
        snprintf(spectrum, sizeof spectrum, "iso");
    else
        snprintf(spectrum, sizeof spectrum, "power:%.17g", par->alpha);
    snprintf(seed, sizeof seed, "%lu", par->seed);
    cJSON_AddStringToObject(meta, "family",
                            sgdstab_synth_family_name(par->family));
    json_size(meta, "n", s->n);
    json_size(meta, "k", s->k);
    json_size(meta, "p", s->p);
    json_size(meta, "d", s->d);
    if (uses & SGDSTAB_SYNTH_USES_WIDTH)
        json_size(meta, "width", par->width);
    if (uses & SGDSTAB_SYNTH_USES_DEPTH)
        json_size(meta, "depth", par->depth);
    if (uses & SGDSTAB_SYNTH_USES_ACTIVATION)
        cJSON_AddStringToObject(meta, "activation",
                                sgdstab_activation_name(par->activation));
    if (uses & SGDSTAB_SYNTH_USES_EXTRA)
        json_size(meta, "extra", par->extra);
    if (uses & SGDSTAB_SYNTH_USES_RESCALE)
        json_number(meta, "rescale", par->rescale);
    cJSON_AddStringToObject(meta, "spectrum", spectrum);
    json_number(meta, "alpha", par->alpha);
    cJSON_AddRawToObject(meta, "seed", seed);
    cJSON_AddStringToObject(meta, "loss", "half-mean");
    json_number(meta, "max_residual", s->residual);
    json_number(meta, "residual_rms", s->residual_rms);
    if (s->target_rms > 0)  /* all targets 0 (tiny rfm, two-layer): none */
        json_number(meta, "target_rms", s->target_rms);
    add_blocks(meta, par);
    add_command(meta, par, spectrum);
    if (file)
        cJSON_AddStringToObject(meta, "file", file);
}

char *sgdstab_synth_meta_json(const sgdstab_synth *s, const char *file)
{
    cJSON *meta = cJSON_CreateObject();
    if (!meta)
        return NULL;
    add_meta(meta, s, file);
    char *text = cJSON_Print(meta);
    cJSON_Delete(meta);
    return text;
}

int sgdstab_synth_write(const sgdstab_synth *s, const char *path,
                        sgdstab_error *err)
{
    char *text = sgdstab_synth_meta_json(s, NULL);
    if (!text)
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory", path);
    sgdstab_array J = jacobian_view(s), X = view(s->X, 2, s->n, s->d, 1),
                  Y = view(s->Y, 2, s->n, s->k, 1),
                  theta = view(s->theta, 1, s->p, 1, 1),
                  F = view(s->F, 2, s->params.width, s->d, 1);
    sgdstab_npz_member members[6] = {{"J", &J, NULL, 0}, {"X", &X, NULL, 0},
                                     {"Y", &Y, NULL, 0},
                                     {"theta", &theta, NULL, 0}};
    size_t count = 4;
    if (s->F)
        members[count++] = (sgdstab_npz_member){"F", &F, NULL, 0};
    members[count++] = (sgdstab_npz_member){"meta.json", NULL, text,
                                            strlen(text)};
    int st = sgdstab_npz_write(path, members, count, err);
    free(text);
    return st;
}
