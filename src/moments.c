#include "sgdstab/moments.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- sampling */

static const char *const SAMPLING_NAMES[] = {"without", "with", "bernoulli"};

const char *sgdstab_sampling_name(sgdstab_sampling s)
{
    return (unsigned)s < 3 ? SAMPLING_NAMES[s] : "?";
}

int sgdstab_sampling_parse(const char *text, sgdstab_sampling *s)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(text, SAMPLING_NAMES[i])) {
            *s = (sgdstab_sampling)i;
            return SGDSTAB_OK;
        }
    return SGDSTAB_EINVAL;
}

int sgdstab_batch_coefficients(sgdstab_sampling s, size_t n, size_t B,
                               double *a, double *b, sgdstab_error *err)
{
    if (B < 1 || (s != SGDSTAB_SAMPLING_WITH && B > n))
        return sgdstab_fail(err, SGDSTAB_EINVAL,
                            "batch size %zu out of range (need 1 <= B <= n = "
                            "%zu for sampling '%s')", B, n,
                            sgdstab_sampling_name(s));
    double Bd = (double)B, nd = (double)n;
    switch (s) {
    case SGDSTAB_SAMPLING_WITHOUT:
        /* n = 1 forces B = 1 = n: full batch, no noise. */
        *b = n > 1 ? (nd - Bd) / (Bd * (nd - 1)) : 0.0;
        *a = 1 - *b;
        break;
    case SGDSTAB_SAMPLING_WITH:
        *b = 1 / Bd;
        *a = 1 - *b;
        break;
    case SGDSTAB_SAMPLING_BERNOULLI:
        *b = 1 / Bd - 1 / nd;
        *a = 1;
        break;
    default:
        return sgdstab_fail(err, SGDSTAB_EINVAL, "unknown sampling rule");
    }
    return SGDSTAB_OK;
}

/* ------------------------------------------------------ symmetric packing */

static const double SQRT2 = 1.41421356237309504880;

size_t sgdstab_sym_dim(size_t r)
{
    return r * (r + 1) / 2;
}

void sgdstab_sym_unpack(size_t r, const double *x, double *Z)
{
    for (size_t j = 0; j < r; j++) {
        Z[j * r + j] = *x++;
        for (size_t l = j + 1; l < r; l++)
            Z[j * r + l] = Z[l * r + j] = (*x++) / SQRT2;
    }
}

/* -------------------------------------------------------------- workspace */

struct sgdstab_moments {
    const sgdstab_reduced *red;
    size_t n, k, r, rows;
    double *Y;      /* rows × r: ΦT, then the signed rank-one rows ψ */
    double *T;      /* r × r: the upper triangle of Z, diagonal halved */
    double *U;      /* r × r: Σ(Z) of a packed Z */
    double *blk;    /* n × k × k: eigenvectors of Φ_i Z Φ_iᵀ (k > 1) */
    double *omega;  /* rows: eigenvalues of the blocks (weights of ψ) */
    double *alpha;  /* r */
    double *tmp;    /* 3 × r × r: GZ, GZG and Z when G is a full matrix */
};

void sgdstab_moments_free(sgdstab_moments *m)
{
    if (!m)
        return;
    free(m->Y);
    free(m->T);
    free(m->U);
    free(m->blk);
    free(m->omega);
    free(m->alpha);
    free(m->tmp);
    free(m);
}

sgdstab_moments *sgdstab_moments_alloc(const sgdstab_reduced *red,
                                       sgdstab_error *err)
{
    sgdstab_moments *m = calloc(1, sizeof *m);
    if (!m)
        goto oom;
    m->red = red;
    m->n = red->n;
    m->k = red->k;
    m->r = red->r;
    m->rows = red->n * red->k;
    size_t r = m->r ? m->r : 1;
    m->Y = malloc(m->rows * r * sizeof *m->Y);
    m->T = malloc(r * r * sizeof *m->T);
    m->U = malloc(r * r * sizeof *m->U);
    m->omega = malloc(m->rows * sizeof *m->omega);
    m->alpha = malloc(r * sizeof *m->alpha);
    if (!m->Y || !m->T || !m->U || !m->omega || !m->alpha)
        goto oom;
    if (m->k > 1 && !(m->blk = malloc(m->n * m->k * m->k * sizeof *m->blk)))
        goto oom;
    if (red->G && !(m->tmp = malloc(3 * r * r * sizeof *m->tmp)))
        goto oom;
    return m;
oom:
    sgdstab_moments_free(m);
    sgdstab_fail(err, SGDSTAB_ENOMEM,
                 "out of memory for the moment workspace (%zu x %zu)",
                 red->n * red->k, red->r);
    return NULL;
}

double sgdstab_moments_sigma_flops(const sgdstab_moments *m)
{
    double rows = (double)m->rows, r = (double)m->r;
    return 2.0 * rows * r * r;
}

/* ------------------------------------------------------------------ Σ(Z) */

/* The upper triangle of Z with its diagonal halved, so that Z = T + Tᵀ:
 * from a full symmetric Z ... */
static void triangle_from_full(size_t r, const double *Z, double *T)
{
    for (size_t j = 0; j < r; j++) {
        T[j * r + j] = 0.5 * Z[j * r + j];
        memcpy(T + j * r + j + 1, Z + j * r + j + 1, (r - j - 1) * sizeof *T);
    }
}

/* ... and from its packed form (moments.h). */
static void triangle_from_packed(size_t r, const double *x, double *T)
{
    for (size_t j = 0; j < r; j++) {
        T[j * r + j] = 0.5 * *x++;
        for (size_t l = j + 1; l < r; l++)
            T[j * r + l] = (*x++) / SQRT2;
    }
}

/* Accumulate scale·Σ(Z)·n into the upper triangle of out (beta = 0 first),
 * for Z = T + Tᵀ given by its triangle T (m->T).  Φ_i Z Φ_iᵀ = M_i + M_iᵀ
 * with M_i = (Φ_i T) Φ_iᵀ: the product ΦT is a triangular TRMM, half the
 * flops of ΦZ. */
static void sigma_upper(sgdstab_moments *m, double scale, double *out)
{
    const int r = (int)m->r, k = (int)m->k;
    const double *phi = m->red->phi;
    double *Y = m->Y, *T = m->T;
    memcpy(Y, phi, m->rows * (size_t)r * sizeof *Y);
    cblas_dtrmm(CblasRowMajor, CblasRight, CblasUpper, CblasNoTrans,
                CblasNonUnit, (int)m->rows, r, 1.0, T, r, Y, r);
    /* Blocks Φ_i Z Φ_iᵀ = Y_i Φ_iᵀ + Φ_i Y_iᵀ and their eigen-decompositions. */
    for (size_t i = 0; i < m->n; i++) {
        const double *yi = Y + i * (size_t)(k * r), *pi = phi + i * (size_t)(k * r);
        if (k == 1) {
            m->omega[i] = 2 * cblas_ddot(r, yi, 1, pi, 1);
            continue;
        }
        double *U = m->blk + i * (size_t)(k * k);
        for (int a = 0; a < k; a++)
            for (int c = a; c < k; c++) {
                double s = cblas_ddot(r, yi + a * r, 1, pi + c * r, 1) +
                           cblas_ddot(r, yi + c * r, 1, pi + a * r, 1);
                U[a * k + c] = U[c * k + a] = s;
            }
        LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', k, U, k, m->omega + i * k);
    }
    /* Rows ψ√|ω|: ω > 0 packed from the top, ω < 0 from the bottom. */
    size_t top = 0, bottom = m->rows;
    for (size_t i = 0; i < m->n; i++)
        for (int c = 0; c < k; c++) {
            double w = m->omega[i * (size_t)k + (size_t)c];
            if (w == 0)
                continue;
            double *dst = w > 0 ? Y + (top++) * (size_t)r
                                : Y + (--bottom) * (size_t)r;
            double s = sqrt(fabs(w));
            const double *pi = phi + i * (size_t)(k * r);
            if (k == 1) {
                for (int j = 0; j < r; j++)
                    dst[j] = s * pi[j];
            } else {
                const double *U = m->blk + i * (size_t)(k * k);
                memset(dst, 0, (size_t)r * sizeof *dst);
                for (int a = 0; a < k; a++)
                    cblas_daxpy(r, s * U[a * k + c], pi + a * r, 1, dst, 1);
            }
        }
    size_t neg = m->rows - bottom;
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, r, (int)top, scale, Y,
                r, 0.0, out, r);
    if (neg)
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, r, (int)neg, -scale,
                    Y + bottom * (size_t)r, r, 1.0, out, r);
}

static void mirror_upper(size_t r, double *Z)
{
    for (size_t j = 0; j < r; j++)
        for (size_t l = j + 1; l < r; l++)
            Z[l * r + j] = Z[j * r + l];
}

void sgdstab_moments_sigma(sgdstab_moments *m, const double *Z, double *out)
{
    if (m->r == 0)
        return;
    triangle_from_full(m->r, Z, m->T);
    sigma_upper(m, 1.0 / (double)m->n, out);
    mirror_upper(m->r, out);
}

/* out = (ααᵀ)∘Z + c_G·GZG + c_Σ·Σ(Z): the common form of 𝒯 and 𝒜₂. */
static void apply_form(sgdstab_moments *m, double cG, double cS,
                       const double *Z, double *out)
{
    const size_t r = m->r;
    const double *h = m->red->lambda, *alpha = m->alpha;
    if (r == 0)
        return;
    if (cS != 0) {
        triangle_from_full(r, Z, m->T);
        sigma_upper(m, cS / (double)m->n, out);
    } else
        for (size_t j = 0; j < r; j++)
            memset(out + j * r + j, 0, (r - j) * sizeof *out);
    /* With G = diag(h), GZG = (hhᵀ)∘Z folds into the entry-wise term. */
    double gdiag = m->red->G ? 0.0 : cG;
    for (size_t j = 0; j < r; j++)
        for (size_t l = j; l < r; l++)
            out[j * r + l] += (alpha[j] * alpha[l] + gdiag * h[j] * h[l]) *
                              Z[j * r + l];
    if (m->red->G && cG != 0) {
        const double *G = m->red->G;
        double *GZ = m->tmp, *GZG = m->tmp + r * r;
        cblas_dsymm(CblasRowMajor, CblasLeft, CblasUpper, (int)r, (int)r, 1.0,
                    G, (int)r, Z, (int)r, 0.0, GZ, (int)r);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)r, (int)r,
                    (int)r, 1.0, GZ, (int)r, G, (int)r, 0.0, GZG, (int)r);
        for (size_t j = 0; j < r; j++)
            for (size_t l = j; l < r; l++)
                out[j * r + l] += cG * GZG[j * r + l];
    }
    mirror_upper(r, out);
}

void sgdstab_moments_step(sgdstab_moments *m, double eta, double a, double b,
                          const double *Z, double *out)
{
    for (size_t j = 0; j < m->r; j++)
        m->alpha[j] = 1 - eta * m->red->lambda[j];
    apply_form(m, -eta * eta * (1 - a), eta * eta * b, Z, out);
}

void sgdstab_moments_noise(sgdstab_moments *m, int subtract_gzg,
                           const double *x, double *y)
{
    const size_t r = m->r;
    const double *h = m->red->lambda, *G = m->red->G;
    if (r == 0)
        return;
    triangle_from_packed(r, x, m->T);
    sigma_upper(m, 1.0 / (double)m->n, m->U);
    double *GZG = NULL;
    if (subtract_gzg && G) {
        double *GZ = m->tmp, *Z = m->tmp + 2 * r * r;
        GZG = m->tmp + r * r;
        sgdstab_sym_unpack(r, x, Z);
        cblas_dsymm(CblasRowMajor, CblasLeft, CblasUpper, (int)r, (int)r, 1.0,
                    G, (int)r, Z, (int)r, 0.0, GZ, (int)r);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)r, (int)r,
                    (int)r, 1.0, GZ, (int)r, G, (int)r, 0.0, GZG, (int)r);
    }
    /* Packed in place of the upper triangle; with G = diag(h) the packed
     * GZG is h_j·h_l·x_α. */
    double gdiag = subtract_gzg && !G ? 1.0 : 0.0;
    for (size_t j = 0, a = 0; j < r; j++)
        for (size_t l = j; l < r; l++, a++) {
            double v = m->U[j * r + l];
            if (GZG)
                v -= GZG[j * r + l];
            y[a] = (j == l ? v : SQRT2 * v) - gdiag * h[j] * h[l] * x[a];
        }
}

/* tr(G Z) for G = diag(h) or the full G of the reduced problem. */
static double trace_GZ(const sgdstab_moments *m, const double *Z)
{
    size_t r = m->r;
    double t = 0;
    if (m->red->G)
        for (size_t i = 0; i < r * r; i++)
            t += m->red->G[i] * Z[i];
    else
        for (size_t j = 0; j < r; j++)
            t += m->red->lambda[j] * Z[j * r + j];
    return t;
}

int sgdstab_moments_evolve(sgdstab_moments *m, double eta, double a, double b,
                           const double *Z0, size_t steps, double *trace,
                           double *trace_G, sgdstab_error *err)
{
    size_t r = m->r, rr = r * r;
    double *cur = malloc((rr ? rr : 1) * sizeof *cur);
    double *next = malloc((rr ? rr : 1) * sizeof *next);
    if (!cur || !next) {
        free(cur);
        free(next);
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory (evolve)");
    }
    memcpy(cur, Z0, rr * sizeof *cur);
    for (size_t t = 0;; t++) {
        double tr = 0;
        for (size_t j = 0; j < r; j++)
            tr += cur[j * r + j];
        trace[t] = tr;
        trace_G[t] = trace_GZ(m, cur);
        if (t == steps)
            break;
        sgdstab_moments_step(m, eta, a, b, cur, next);
        double *swap = cur;
        cur = next;
        next = swap;
    }
    free(cur);
    free(next);
    return SGDSTAB_OK;
}
