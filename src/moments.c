#include "sgdstab/moments.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "hugealloc.h"
#include "parallel.h"
#include "symeig.h"

/* ------------------------------------------------------------- sampling */

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
        return sgdstab_fail(err, SGDSTAB_EINVAL, "sampling '%s' has no "
                            "per-step batch coefficients",
                            sgdstab_sampling_name(s));
    }
    return SGDSTAB_OK;
}

/* ------------------------------------------------------ symmetric packing */

static const double SQRT2 = 1.41421356237309504880;

size_t sgdstab_sym_dim(size_t r)
{
    return r * (r + 1) / 2;
}

size_t sgdstab_sym_diag_index(size_t r, size_t j)
{
    return j * r - j * (j - 1) / 2;
}

void sgdstab_sym_unpack(size_t r, const double *x, double *Z)
{
    for (size_t j = 0; j < r; j++) {
        Z[j * r + j] = *x++;
        for (size_t l = j + 1; l < r; l++)
            Z[j * r + l] = Z[l * r + j] = (*x++) / SQRT2;
    }
}

void sgdstab_sym_pack(size_t r, const double *Z, double *x)
{
    for (size_t j = 0; j < r; j++) {
        *x++ = Z[j * r + j];
        for (size_t l = j + 1; l < r; l++)
            *x++ = SQRT2 * 0.5 * (Z[j * r + l] + Z[l * r + j]);
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
    size_t *dest;   /* rows: the row of Y that holds ψ (SIZE_MAX for ω = 0) */
    size_t npos, nneg;  /* rows ψ with ω > 0 (top of Y), ω < 0 (bottom) */
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
    free(m->dest);
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
    m->Y = sgdstab_huge_malloc(m->rows * r, sizeof *m->Y);
    m->T = sgdstab_huge_malloc(r * r, sizeof *m->T);
    m->U = sgdstab_huge_malloc(r * r, sizeof *m->U);
    m->omega = malloc(m->rows * sizeof *m->omega);
    m->dest = malloc((m->rows ? m->rows : 1) * sizeof *m->dest);
    m->alpha = malloc(r * sizeof *m->alpha);
    if (!m->Y || !m->T || !m->U || !m->omega || !m->dest || !m->alpha)
        goto oom;
    if (m->k > 1 &&
        !(m->blk = sgdstab_huge_malloc(m->n * m->k * m->k, sizeof *m->blk)))
        goto oom;
    if (red->G && !(m->tmp = sgdstab_huge_malloc(3 * r * r, sizeof *m->tmp)))
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

/* Parts of the parallel Σ(Z) (parallel.h): fixed, so that results do not
 * depend on the number of threads. */
enum { SIGMA_PARTS = 8 };

/* First row of part p when the upper triangle of an r×r matrix (row j holds
 * r − j entries) is cut into SIGMA_PARTS ranges of rows with about equal
 * numbers of entries: rows 0..j hold the fraction 1 − (1 − j/r)². */
static size_t triangle_first_row(size_t r, size_t p)
{
    if (p >= SIGMA_PARTS)
        return r;
    double f = 1 - sqrt(1 - (double)p / SIGMA_PARTS);
    size_t j = (size_t)(f * (double)r);
    return j < r ? j : r;
}

/* The upper triangle of Z with its diagonal halved, so that Z = T + Tᵀ:
 * from a full symmetric Z ... */
static void triangle_from_full(size_t r, const double *Z, double *T)
{
    for (size_t j = 0; j < r; j++) {
        T[j * r + j] = 0.5 * Z[j * r + j];
        memcpy(T + j * r + j + 1, Z + j * r + j + 1, (r - j - 1) * sizeof *T);
    }
}

/* ... and from its packed form (moments.h), times the packed diagonal
 * `scale` when it is not NULL; rows j0..j1−1 of T. */
typedef struct {
    sgdstab_moments *m;
    const double *x, *scale;  /* triangle: packed input */
    double factor;            /* Σ: the scale of the sum */
    double *out;              /* Σ: upper triangle; noise: packed output */
    int subtract_gzg;         /* noise */
    const double *GZG;        /* noise, full G: r×r, else NULL */
} sigma_job;

static void triangle_part(void *arg, size_t part)
{
    const sigma_job *c = arg;
    size_t r = c->m->r, j1 = triangle_first_row(r, part + 1);
    double *T = c->m->T;
    for (size_t j = triangle_first_row(r, part); j < j1; j++) {
        size_t a = sgdstab_sym_diag_index(r, j);
        const double *x = c->x + a, *sc = c->scale ? c->scale + a : NULL;
        T[j * r + j] = 0.5 * (sc ? sc[0] * x[0] : x[0]);
        for (size_t l = j + 1; l < r; l++)
            T[j * r + l] = (sc ? sc[l - j] * x[l - j] : x[l - j]) / SQRT2;
    }
}

/* Σ(Z) in three parallel steps.  Z = T + Tᵀ is given by its triangle T
 * (m->T); Φ_i Z Φ_iᵀ = M_i + M_iᵀ with M_i = (Φ_i T) Φ_iᵀ, and the product
 * ΦT is a triangular TRMM, half the flops of ΦZ.
 * 1. By samples: Y = ΦT and the weights ω of the rank-one rows. */
static void sigma_products(void *arg, size_t part)
{
    const sigma_job *c = arg;
    sgdstab_moments *m = c->m;
    const int r = (int)m->r, k = (int)m->k;
    size_t i0 = par_first(m->n, SIGMA_PARTS, part);
    size_t i1 = par_first(m->n, SIGMA_PARTS, part + 1);
    if (i1 == i0)
        return;
    const double *phi = m->red->phi;
    double *Y = m->Y;
    size_t row0 = i0 * (size_t)k, nrows = (i1 - i0) * (size_t)k;
    memcpy(Y + row0 * (size_t)r, phi + row0 * (size_t)r,
           nrows * (size_t)r * sizeof *Y);
    cblas_dtrmm(CblasRowMajor, CblasRight, CblasUpper, CblasNoTrans,
                CblasNonUnit, (int)nrows, r, 1.0, m->T, r,
                Y + row0 * (size_t)r, r);
    /* Blocks Φ_i Z Φ_iᵀ = Y_i Φ_iᵀ + Φ_i Y_iᵀ and their eigen-decompositions. */
    for (size_t i = i0; i < i1; i++) {
        const double *yi = Y + i * (size_t)(k * r), *pi = phi + i * (size_t)(k * r);
        if (k == 1) {
            m->omega[i] = 2 * cblas_ddot(r, yi, 1, pi, 1);
            continue;
        }
        double *U = m->blk + i * (size_t)(k * k);
        for (int a = 0; a < k; a++)
            for (int b = a; b < k; b++) {
                double s = cblas_ddot(r, yi + a * r, 1, pi + b * r, 1) +
                           cblas_ddot(r, yi + b * r, 1, pi + a * r, 1);
                U[a * k + b] = U[b * k + a] = s;
            }
        /* Σ(Z) has no error path: a block fails only on NaN entries, and
         * its weights are then NaN (symeig.h). */
        (void)symeig_all(SYMEIG_DSYEV, (size_t)k, U, (size_t)k,
                         m->omega + i * k, 1, NULL, "a block of Sigma(Z)");
    }
}

/* 2. By samples: the rows ψ√|ω| into Y at m->dest (ω > 0 from the top,
 * ω < 0 from the bottom; Y is no longer read). */
static void sigma_rows(void *arg, size_t part)
{
    const sigma_job *c = arg;
    sgdstab_moments *m = c->m;
    const int r = (int)m->r, k = (int)m->k;
    const double *phi = m->red->phi;
    for (size_t i = par_first(m->n, SIGMA_PARTS, part);
         i < par_first(m->n, SIGMA_PARTS, part + 1); i++)
        for (int b = 0; b < k; b++) {
            size_t q = i * (size_t)k + (size_t)b;
            if (m->dest[q] == SIZE_MAX)
                continue;
            double *dst = m->Y + m->dest[q] * (size_t)r;
            double s = sqrt(fabs(m->omega[q]));
            const double *pi = phi + i * (size_t)(k * r);
            if (k == 1) {
                for (int j = 0; j < r; j++)
                    dst[j] = s * pi[j];
            } else {
                const double *U = m->blk + i * (size_t)(k * k);
                memset(dst, 0, (size_t)r * sizeof *dst);
                for (int a = 0; a < k; a++)
                    cblas_daxpy(r, s * U[a * k + b], pi + a * r, 1, dst, 1);
            }
        }
}

/* 3. By rows of the output: rows j0..j1−1 of the upper triangle of
 * factor·(Σ₊ψψᵀ − Σ₋ψψᵀ), a SYRK for the diagonal block and a GEMM for
 * the block right of it, per sign. */
static void sigma_syrk(void *arg, size_t part)
{
    const sigma_job *c = arg;
    sgdstab_moments *m = c->m;
    const size_t r = m->r, j0 = triangle_first_row(r, part);
    const size_t j1 = triangle_first_row(r, part + 1), w = j1 - j0;
    if (w == 0)
        return;
    double *out = c->out;
    if (m->npos == 0 && m->nneg == 0)
        for (size_t j = j0; j < j1; j++)
            memset(out + j * r + j, 0, (r - j) * sizeof *out);
    for (int neg = 0; neg < 2; neg++) {
        size_t cnt = neg ? m->nneg : m->npos;
        if (cnt == 0)
            continue;
        const double *A = m->Y + (neg ? m->rows - cnt : 0) * r;
        double alpha = neg ? -c->factor : c->factor;
        double beta = neg && m->npos ? 1.0 : 0.0;
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)w, (int)cnt,
                    alpha, A + j0, (int)r, beta, out + j0 * r + j0, (int)r);
        if (j1 < r)
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)w,
                        (int)(r - j1), (int)cnt, alpha, A + j0, (int)r,
                        A + j1, (int)r, beta, out + j0 * r + j1, (int)r);
    }
}

/* The upper triangle of factor·n·Σ(Z) into out, for Z = T + Tᵀ given by
 * its triangle T (m->T). */
static void sigma_upper(sgdstab_moments *m, double factor, double *out)
{
    sigma_job c = {.m = m, .factor = factor, .out = out};
    par_run(SIGMA_PARTS, sigma_products, &c);
    size_t top = 0, bottom = m->rows;
    for (size_t q = 0; q < m->rows; q++) {
        double w = m->omega[q];
        m->dest[q] = w > 0 ? top++ : w < 0 ? --bottom : SIZE_MAX;
    }
    m->npos = top;
    m->nneg = m->rows - bottom;
    par_run(SIGMA_PARTS, sigma_rows, &c);
    par_run(SIGMA_PARTS, sigma_syrk, &c);
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

/* Rows of the packed y = S·𝒩(S·x) (S = diag(scale), or I). */
static void noise_pack_part(void *arg, size_t part)
{
    const sigma_job *c = arg;
    const sgdstab_moments *m = c->m;
    const size_t r = m->r, j1 = triangle_first_row(r, part + 1);
    const double *h = m->red->lambda, *U = m->U;
    /* With G = diag(h) the packed GZG is h_j·h_l·(S x)_α. */
    double gdiag = c->subtract_gzg && !m->red->G ? 1.0 : 0.0;
    for (size_t j = triangle_first_row(r, part); j < j1; j++) {
        size_t a0 = sgdstab_sym_diag_index(r, j);
        const double *x = c->x + a0, *sc = c->scale ? c->scale + a0 : NULL;
        double *y = c->out + a0;
        for (size_t l = j; l < r; l++) {
            double s = sc ? sc[l - j] : 1.0;
            double v = U[j * r + l];
            if (c->GZG)
                v -= c->GZG[j * r + l];
            v = (j == l ? v : SQRT2 * v) - gdiag * h[j] * h[l] * s * x[l - j];
            y[l - j] = s * v;
        }
    }
}

void sgdstab_moments_noise(sgdstab_moments *m, int subtract_gzg,
                           const double *scale, const double *x, double *y)
{
    const size_t r = m->r;
    const double *G = m->red->G;
    if (r == 0)
        return;
    sigma_job c = {.m = m, .x = x, .scale = scale, .out = y,
                   .subtract_gzg = subtract_gzg};
    par_run(SIGMA_PARTS, triangle_part, &c);
    sigma_upper(m, 1.0 / (double)m->n, m->U);
    if (subtract_gzg && G) {
        /* Z = T + Tᵀ from the triangle just formed. */
        double *GZ = m->tmp, *Z = m->tmp + 2 * r * r;
        for (size_t j = 0; j < r; j++) {
            Z[j * r + j] = 2 * m->T[j * r + j];
            for (size_t l = j + 1; l < r; l++)
                Z[j * r + l] = Z[l * r + j] = m->T[j * r + l];
        }
        c.GZG = m->tmp + r * r;
        cblas_dsymm(CblasRowMajor, CblasLeft, CblasUpper, (int)r, (int)r, 1.0,
                    G, (int)r, Z, (int)r, 0.0, GZ, (int)r);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)r, (int)r,
                    (int)r, 1.0, GZ, (int)r, G, (int)r, 0.0, m->tmp + r * r,
                    (int)r);
    }
    par_run(SIGMA_PARTS, noise_pack_part, &c);
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

/* Record tr(WX) (tr X when W is NULL) and tr(GX) at step t;
 * SGDSTAB_ENUMERIC once they overflow. */
static int record(const sgdstab_moments *m, const double *X, const double *W,
                  size_t t, double *trace, double *trace_G,
                  sgdstab_error *err)
{
    const size_t r = m->r;
    double tr = 0;
    if (W)
        for (size_t i = 0; i < r * r; i++)
            tr += W[i] * X[i];
    else
        for (size_t j = 0; j < r; j++)
            tr += X[j * r + j];
    trace[t] = tr;
    trace_G[t] = trace_GZ(m, X);
    if (!isfinite(tr) || !isfinite(trace_G[t]))
        return sgdstab_fail(err, SGDSTAB_ENUMERIC, "%s: E|delta_t|^2 "
                            "overflows a double at step %zu (it grows like "
                            "rho^t): ask for fewer steps", m->red->source, t);
    return SGDSTAB_OK;
}

/* One step of the lifted second moment (optimizer.h): per entry (j, l) the
 * 2×2 block B = [[X, C], [Cᵀ_lj, Y]] becomes M(h_j) B M(h_l)ᵀ + c cᵀ·N_jl,
 * N = b𝒩(X) (E[Δ X Δ] of the batch noise). */
static void lifted_step(sgdstab_moments *m, const sgdstab_step_map *map,
                        double a, double b, const double *noise, double *X,
                        double *C, double *Y, double *N, double *work)
{
    const size_t r = m->r;
    const double *h = m->red->lambda;
    memset(m->alpha, 0, r * sizeof *m->alpha);
    apply_form(m, -(1 - a), b, X, N);
    if (noise)  /* additive gradient noise enters as the batch noise does */
        cblas_daxpy((int)(r * r), 1.0, noise, 1, N, 1);
    double *Xn = work, *Cn = work + r * r, *Yn = work + 2 * r * r;
    for (size_t j = 0; j < r; j++) {
        double Mj[4];
        sgdstab_step_map_matrix(map, h[j], Mj);
        for (size_t l = 0; l < r; l++) {
            double Ml[4], B[4], T[4];
            sgdstab_step_map_matrix(map, h[l], Ml);
            B[0] = X[j * r + l];
            B[1] = C[j * r + l];
            B[2] = C[l * r + j];
            B[3] = Y[j * r + l];
            for (int u = 0; u < 2; u++)  /* T = Mj B */
                for (int v = 0; v < 2; v++)
                    T[2 * u + v] = Mj[2 * u] * B[v] + Mj[2 * u + 1] * B[2 + v];
            double n = N[j * r + l];
            Xn[j * r + l] = T[0] * Ml[0] + T[1] * Ml[1] +
                            map->c[0] * map->c[0] * n;
            Cn[j * r + l] = T[0] * Ml[2] + T[1] * Ml[3] +
                            map->c[0] * map->c[1] * n;
            Yn[j * r + l] = T[2] * Ml[2] + T[3] * Ml[3] +
                            map->c[1] * map->c[1] * n;
        }
    }
    memcpy(X, Xn, r * r * sizeof *X);
    memcpy(C, Cn, r * r * sizeof *C);
    memcpy(Y, Yn, r * r * sizeof *Y);
}

/* The lifted evolution from (X, C, Y) = (Z0, 0, 0): the buffer starts
 * empty.  PyTorch's SGD fills it with the whole first gradient (buf = g,
 * no dampening), so the first step takes the map without dampening. */
static int evolve_lifted(sgdstab_moments *m, const sgdstab_config *cfg,
                         double a, double b, const double *Z0,
                         const double *noise, const double *W, size_t steps,
                         double *trace, double *trace_G, sgdstab_error *err)
{
    const size_t rr = m->r * m->r;
    double *buf = sgdstab_huge_calloc(7 * rr, sizeof *buf);
    if (!buf)
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory (evolve)");
    double *X = buf, *C = buf + rr, *Y = buf + 2 * rr, *N = buf + 3 * rr;
    memcpy(X, Z0, rr * sizeof *X);
    sgdstab_optimizer first = cfg->optimizer;
    if (first.kind == SGDSTAB_OPTIMIZER_SGD)
        first.dampening = 0;
    sgdstab_step_map map0, map;
    sgdstab_step_map_init(&first, cfg->lr, cfg->loss_scale, &map0);
    sgdstab_step_map_init(&cfg->optimizer, cfg->lr, cfg->loss_scale, &map);
    int st = SGDSTAB_OK;
    for (size_t t = 0; !st; t++) {
        st = record(m, X, W, t, trace, trace_G, err);
        if (st || t == steps)
            break;
        lifted_step(m, t ? &map : &map0, a, b, noise, X, C, Y, N,
                    buf + 4 * rr);
    }
    free(buf);
    return st;
}

int sgdstab_moments_evolve(sgdstab_moments *m, const sgdstab_config *cfg,
                           const double *Z0, const double *noise,
                           const double *W, size_t steps, double *trace,
                           double *trace_G, sgdstab_error *err)
{
    double a, b, eta = cfg->loss_scale * cfg->lr;
    int st = sgdstab_config_check(cfg, m->red, SGDSTAB_USES_LR |
                                  SGDSTAB_USES_BATCH | SGDSTAB_USES_STEP_MAP,
                                  err);
    if (st || (st = sgdstab_batch_coefficients(cfg->sampling, m->red->n,
                                               cfg->batch, &a, &b, err)))
        return st;
    if (sgdstab_optimizer_lifted(&cfg->optimizer))
        return evolve_lifted(m, cfg, a, b, Z0, noise, W, steps, trace,
                             trace_G, err);
    size_t r = m->r, rr = r * r;
    double *cur = sgdstab_huge_malloc(rr, sizeof *cur);
    double *next = sgdstab_huge_malloc(rr, sizeof *next);
    if (!cur || !next) {
        free(cur);
        free(next);
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory (evolve)");
    }
    memcpy(cur, Z0, rr * sizeof *cur);
    for (size_t t = 0; !st; t++) {
        st = record(m, cur, W, t, trace, trace_G, err);
        if (st || t == steps)
            break;
        sgdstab_moments_step(m, eta, a, b, cur, next);
        if (noise)
            cblas_daxpy((int)rr, eta * eta, noise, 1, next, 1);
        double *swap = cur;
        cur = next;
        next = swap;
    }
    free(cur);
    free(next);
    return st;
}
