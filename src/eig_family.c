/* The shared-basis Davidson solver of eig.h for the families
 * A(γ, β) = Σ_c γ_c·diag(d_c) + β·N. */
#include "sgdstab/eig.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hugealloc.h"
#include "parallel.h"
#include "symeig.h"

/* Besides V and W = N V, the basis keeps every projection the Rayleigh–Ritz
 * step and the residual norm need, so that a member (γ, β) is solved in
 * O(m²) work whenever the basis already holds its eigenvector:
 *   PN = Vᵀ W,  WW = Wᵀ W,  PD_c = Vᵀ D_c V,  PDD_cc' = Vᵀ D_c D_c' V,
 *   Q_c = Vᵀ D_c W  (D_c = diag(d_c); Q_c is not symmetric).
 * With E = Σ γ_c D_c, the Ritz pair (θ, y) has R = (E − θ)Vy + β W y and
 *   ‖R‖² = yᵀ [ Σ γ_cγ_c' PDD_cc' − 2θ Σ γ_c PD_c + θ² I
 *              + β Σ γ_c (Q_c + Q_cᵀ) − 2βθ PN + β² WW ] y,
 * which loses accuracy to cancellation only below about √(m·ε)·scale; the
 * explicit residual is formed whenever this one does not show convergence
 * (and then it is needed anyway, to expand the basis).
 *
 * The vectors are long (r(r+1)/2) and the basis holds dozens of them, so
 * besides N the cost is memory traffic over V and W.  A step makes two
 * passes, each by blocks of FAMILY_ROWS rows doing all it can while a block
 * is in cache:
 *   1. the explicit residual R, the correction t and h = Vᵀt, ‖t‖²;
 *   2. after w_t = N t: the new pair v = (t − V h)/ν, w = (w_t − W h)/ν
 *      (classical Gram–Schmidt; N is linear, so N needs no orthogonalized
 *      input) and every projection it brings.
 * ν² = ‖t‖² − ‖h‖² is accurate while t keeps at least half its norm; a
 * correction that loses more is orthogonalized explicitly, twice if
 * needed ("twice is enough"), before N is applied.
 *
 * Every pass runs on FAMILY_PARTS fixed ranges of blocks (parallel.h), each
 * with its own partial sums, added in order: results do not depend on the
 * number of threads.  BLAS is held at one thread for the whole solve,
 * including N, which splits its own work the same way (moments.c).
 */
#define FAMILY_MAX_DIAGS 4
enum { FAMILY_ROWS = 2048, FAMILY_PARTS = 8 };

struct sgdstab_family {
    size_t dim, nd, npair, nx, mmax, m;
    double *diag;       /* nd × dim */
    double dmax[FAMILY_MAX_DIAGS];  /* max |d_c| */
    sgdstab_matvec_fn N;
    void *ctx;
    double *V, *W;      /* dim × mmax each, column j at + j·dim */
    double *PN, *WW;    /* mmax × mmax, row-major */
    double *PD, *PDD, *Q;  /* nd, npair, nd matrices of mmax × mmax */
    double *h;          /* mmax: Vᵀt of the correction */
    /* Per part (FAMILY_PARTS of each): */
    double *X;          /* FAMILY_ROWS × nx: [w, D_c v, D_c D_c' v, D_c w]
                           of the new pair, one row block */
    double *G, *G2;     /* mmax × nx, mmax × (1 + nd): its projections */
    double *rows;       /* FAMILY_ROWS × max(mmax, 2): pass work */
    double *hp;         /* mmax: partial Vᵀt */
    double sums[FAMILY_PARTS][1 + FAMILY_MAX_DIAGS];  /* partial sums */
    /* The last vector N was applied to (before orthogonalization), for
     * neumann_estimate: ‖t‖², tᵀNt, tᵀD_c t, and whether it was a
     * Davidson correction. */
    struct {
        double tt, tnt, tdt[FAMILY_MAX_DIAGS];
        int davidson;
    } last;
    double *S, *Y, *w, *y;  /* small work: mmax², mmax², mmax, mmax */
    size_t matvecs;
};

void sgdstab_family_free(sgdstab_family *f)
{
    if (!f)
        return;
    double *bufs[] = {f->diag, f->V, f->W, f->PN, f->WW, f->PD, f->PDD, f->Q,
                      f->h, f->X, f->G, f->G2, f->rows, f->hp, f->S, f->Y,
                      f->w, f->y};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    free(f);
}

sgdstab_family *sgdstab_family_alloc(size_t dim, size_t ndiag,
                                     const double *const *diags,
                                     sgdstab_matvec_fn N, void *ctx,
                                     size_t max_basis, sgdstab_error *err)
{
    if (ndiag < 1 || ndiag > FAMILY_MAX_DIAGS) {
        sgdstab_fail(err, SGDSTAB_EINVAL, "eigensolver family: %zu diagonals "
                     "(need 1 to %d)", ndiag, FAMILY_MAX_DIAGS);
        return NULL;
    }
    size_t mmax = max_basis ? max_basis : 48;
    if (mmax > dim)
        mmax = dim;
    size_t npair = ndiag * (ndiag + 1) / 2, nx = 1 + 2 * ndiag + npair;
    size_t mm = mmax * mmax;
    sgdstab_family *f = calloc(1, sizeof *f);
    if (!f)
        goto oom;
    f->dim = dim;
    f->nd = ndiag;
    f->npair = npair;
    f->nx = nx;
    f->mmax = mmax;
    f->N = N;
    f->ctx = ctx;
    f->diag = sgdstab_huge_malloc(ndiag * dim, sizeof *f->diag);
    f->V = sgdstab_huge_malloc(dim * mmax, sizeof *f->V);
    f->W = sgdstab_huge_malloc(dim * mmax, sizeof *f->W);
    f->PN = malloc(mm * sizeof *f->PN);
    f->WW = malloc(mm * sizeof *f->WW);
    f->PD = malloc(ndiag * mm * sizeof *f->PD);
    f->PDD = malloc(npair * mm * sizeof *f->PDD);
    f->Q = malloc(ndiag * mm * sizeof *f->Q);
    f->h = malloc(mmax * sizeof *f->h);
    f->X = malloc(FAMILY_PARTS * FAMILY_ROWS * nx * sizeof *f->X);
    f->G = malloc(FAMILY_PARTS * mmax * nx * sizeof *f->G);
    f->G2 = malloc(FAMILY_PARTS * mmax * (1 + ndiag) * sizeof *f->G2);
    f->rows = malloc(FAMILY_PARTS * FAMILY_ROWS * (mmax > 2 ? mmax : 2) *
                     sizeof *f->rows);
    f->hp = malloc(FAMILY_PARTS * mmax * sizeof *f->hp);
    f->S = malloc(mm * sizeof *f->S);
    f->Y = malloc(mm * sizeof *f->Y);
    f->w = malloc(mmax * sizeof *f->w);
    f->y = malloc(mmax * sizeof *f->y);
    if (!f->diag || !f->V || !f->W || !f->PN || !f->WW || !f->PD || !f->PDD ||
        !f->Q || !f->h || !f->X || !f->G || !f->G2 || !f->rows || !f->hp ||
        !f->S || !f->Y || !f->w || !f->y)
        goto oom;
    for (size_t c = 0; c < ndiag; c++) {
        memcpy(f->diag + c * dim, diags[c], dim * sizeof *f->diag);
        f->dmax[c] = 0;
        for (size_t a = 0; a < dim; a++)
            f->dmax[c] = fmax(f->dmax[c], fabs(diags[c][a]));
    }
    return f;
oom:
    sgdstab_family_free(f);
    sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory for an eigensolver basis "
                 "(%zu vectors of length %zu)", mmax, dim);
    return NULL;
}

size_t sgdstab_family_matvecs(const sgdstab_family *f)
{
    return f->matvecs;
}

/* Rows in the block starting at row a0. */
static size_t block_rows(const sgdstab_family *f, size_t a0)
{
    return f->dim - a0 < FAMILY_ROWS ? f->dim - a0 : FAMILY_ROWS;
}

/* First row of the blocks of part p (the dimension for p = FAMILY_PARTS). */
static size_t part_row(const sgdstab_family *f, size_t p)
{
    size_t blocks = (f->dim + FAMILY_ROWS - 1) / FAMILY_ROWS;
    size_t a = par_first(blocks, FAMILY_PARTS, p) * FAMILY_ROWS;
    return a < f->dim ? a : f->dim;
}

/* Part p's pass work: FAMILY_ROWS × max(mmax, 2). */
static double *part_rows(const sgdstab_family *f, size_t p)
{
    return f->rows + p * FAMILY_ROWS * (f->mmax > 2 ? f->mmax : 2);
}

/* dst[i] (i < len) = Σ_p src[p·stride + i], parts added in order. */
static void sum_parts(const double *src, size_t stride, size_t len,
                      double *dst)
{
    for (size_t i = 0; i < len; i++) {
        double s = 0;
        for (size_t p = 0; p < FAMILY_PARTS; p++)
            s += src[p * stride + i];
        dst[i] = s;
    }
}

static double sum_scalar(const sgdstab_family *f, size_t which)
{
    double s = 0;
    for (size_t p = 0; p < FAMILY_PARTS; p++)
        s += f->sums[p][which];
    return s;
}

/* Index of the pair (c, c'), c ≤ c', among the nd(nd+1)/2 pairs. */
static size_t pair_index(size_t nd, size_t c, size_t c2)
{
    return c * nd - c * (c - 1) / 2 + (c2 - c);
}

/* Set entry (i, j) and (j, i) of a symmetric mmax × mmax matrix. */
static void set_sym(double *P, size_t mm, size_t i, size_t j, double v)
{
    P[i * mm + j] = P[j * mm + i] = v;
}

/* What a pass needs besides the family. */
typedef struct {
    sgdstab_family *f;
    int subtract;                 /* orthogonalize: subtract V h first */
    const double *gamma, *y;      /* residual */
    double beta, theta, floor;
    int davidson;
    double *t;                    /* residual: the correction, or NULL */
    double inv;                   /* expand: 1/ν */
    size_t keep;                  /* restart: vectors kept */
} pass_job;

/* ---------------------------------------------------- growing the basis */

/* For the correction t in column m of V: (if subtract) t ← t − V h, then
 * part p's share of Vᵀt and ‖t‖². */
static void orthogonalize_part(void *arg, size_t p)
{
    const pass_job *j = arg;
    sgdstab_family *f = j->f;
    const size_t dim = f->dim, m = f->m;
    double *t = f->V + m * dim, *hp = f->hp + p * f->mmax, tt = 0;
    if (m > 0)
        memset(hp, 0, m * sizeof *hp);
    for (size_t a0 = part_row(f, p); a0 < part_row(f, p + 1);
         a0 += FAMILY_ROWS) {
        size_t nb = block_rows(f, a0);
        if (m > 0 && j->subtract)
            cblas_dgemv(CblasColMajor, CblasNoTrans, (int)nb, (int)m, -1.0,
                        f->V + a0, (int)dim, f->h, 1, 1.0, t + a0, 1);
        if (m > 0)
            cblas_dgemv(CblasColMajor, CblasTrans, (int)nb, (int)m, 1.0,
                        f->V + a0, (int)dim, t + a0, 1, 1.0, hp, 1);
        tt += cblas_ddot((int)nb, t + a0, 1, t + a0, 1);
    }
    f->sums[p][0] = tt;
}

/* The correction t sits in column m of V: (if subtract) t ← t − V h with
 * the current h, then h = Vᵀt over columns 0..m−1; returns ‖t‖². */
static double project_correction(sgdstab_family *f, int subtract)
{
    pass_job j = {.f = f, .subtract = subtract};
    par_run(FAMILY_PARTS, orthogonalize_part, &j);
    sum_parts(f->hp, f->mmax, f->m, f->h);
    return sum_scalar(f, 0);
}

/* Part p of pass 2: the new pair (v, w) and its projections G, G2. */
static void expand_part(void *arg, size_t p)
{
    const pass_job *j = arg;
    sgdstab_family *f = j->f;
    const size_t dim = f->dim, nd = f->nd, np = f->npair, nx = f->nx;
    const size_t m = f->m, mm = f->mmax;
    double *v = f->V + m * dim, *w = f->W + m * dim;
    double *X = f->X + p * FAMILY_ROWS * nx;
    double *G = f->G + p * mm * nx, *G2 = f->G2 + p * mm * (1 + nd);
    const size_t a1 = part_row(f, p + 1);
    for (size_t c = 0; c < nx; c++)
        memset(G + c * mm, 0, (m + 1) * sizeof *G);
    for (size_t c = 0; c <= nd; c++)
        memset(G2 + c * mm, 0, (m + 1) * sizeof *G2);
    double *raw = f->sums[p];  /* tᵀNt, tᵀD_c t of the raw t */
    memset(raw, 0, (1 + nd) * sizeof *raw);
    for (size_t a0 = part_row(f, p); a0 < a1; a0 += FAMILY_ROWS) {
        size_t nb = block_rows(f, a0);
        double *vb = v + a0, *wb = w + a0;
        raw[0] += cblas_ddot((int)nb, vb, 1, wb, 1);
        for (size_t c = 0; c < nd; c++) {
            const double *dc = f->diag + c * dim + a0;
            for (size_t a = 0; a < nb; a++)
                raw[1 + c] += dc[a] * vb[a] * vb[a];
        }
        if (m > 0) {
            cblas_dgemv(CblasColMajor, CblasNoTrans, (int)nb, (int)m, -1.0,
                        f->V + a0, (int)dim, f->h, 1, 1.0, vb, 1);
            cblas_dgemv(CblasColMajor, CblasNoTrans, (int)nb, (int)m, -1.0,
                        f->W + a0, (int)dim, f->h, 1, 1.0, wb, 1);
        }
        for (size_t a = 0; a < nb; a++) {
            vb[a] *= j->inv;
            wb[a] *= j->inv;
        }
        /* X = [w, D_c v, D_c D_c' v, D_c w] of the new pair. */
        memcpy(X, wb, nb * sizeof *X);
        for (size_t c = 0; c < nd; c++) {
            const double *dc = f->diag + c * dim + a0;
            double *xv = X + (1 + c) * nb, *xw = X + (1 + nd + np + c) * nb;
            for (size_t a = 0; a < nb; a++) {
                xv[a] = dc[a] * vb[a];
                xw[a] = dc[a] * wb[a];
            }
            for (size_t c2 = c; c2 < nd; c2++) {
                const double *d2 = f->diag + c2 * dim + a0;
                double *xp = X + (1 + nd + pair_index(nd, c, c2)) * nb;
                for (size_t a = 0; a < nb; a++)
                    xp[a] = xv[a] * d2[a];
            }
        }
        cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)m + 1,
                    (int)nx, (int)nb, 1.0, f->V + a0, (int)dim, X, (int)nb,
                    1.0, G, (int)mm);
        cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)m + 1,
                    (int)(1 + nd), (int)nb, 1.0, f->W + a0, (int)dim, X,
                    (int)nb, 1.0, G2, (int)mm);
    }
}

/* Pass 2 for the correction t in column m of V (h = Vᵀt, tt = ‖t‖²): apply
 * N, form the new pair and add its projections, and record t in f->last
 * (davidson: t is a Davidson correction); returns 0 when t lies in the span
 * (norm below 1e-10 of its own once projected), nothing added. */
static int expand(sgdstab_family *f, double tt, int davidson)
{
    const size_t dim = f->dim, nd = f->nd, np = f->npair, nx = f->nx;
    const size_t m = f->m, mm = f->mmax;
    if (!(tt > 0) || !isfinite(tt))
        return 0;
    double tt0 = tt, nu2 = m ? tt - cblas_ddot((int)m, f->h, 1, f->h, 1) : tt;
    for (int pass = 0; pass < 2 && m > 0 && nu2 < 0.25 * tt; pass++) {
        tt = project_correction(f, 1);
        nu2 = tt - cblas_ddot((int)m, f->h, 1, f->h, 1);
    }
    if (!(nu2 > 1e-20 * tt0))
        return 0;
    f->N(f->ctx, f->V + m * dim, f->W + m * dim);
    f->matvecs++;
    pass_job j = {.f = f, .inv = 1 / sqrt(nu2)};
    par_run(FAMILY_PARTS, expand_part, &j);
    f->last.tt = tt;
    f->last.tnt = sum_scalar(f, 0);
    for (size_t c = 0; c < nd; c++)
        f->last.tdt[c] = sum_scalar(f, 1 + c);
    f->last.davidson = davidson;
    /* Add the parts' projections into part 0's. */
    for (size_t c = 0; c < nx; c++)
        sum_parts(f->G + c * mm, mm * nx, m + 1, f->G + c * mm);
    for (size_t c = 0; c <= nd; c++)
        sum_parts(f->G2 + c * mm, mm * (1 + nd), m + 1, f->G2 + c * mm);
    for (size_t i = 0; i <= m; i++) {
        const double *g = f->G + i, *g2 = f->G2 + i;  /* g[col·mm] */
        set_sym(f->PN, mm, i, m, g[0]);
        set_sym(f->WW, mm, i, m, g2[0]);
        for (size_t c = 0; c < nd; c++) {
            set_sym(f->PD + c * mm * mm, mm, i, m, g[(1 + c) * mm]);
            /* Q_c[i][m] = v_iᵀ D_c w_m; Q_c[m][i] = w_iᵀ D_c v_m. */
            f->Q[c * mm * mm + i * mm + m] = g[(1 + nd + np + c) * mm];
            f->Q[c * mm * mm + m * mm + i] = g2[(1 + c) * mm];
        }
        for (size_t p = 0; p < np; p++)
            set_sym(f->PDD + p * mm * mm, mm, i, m, g[(1 + nd + p) * mm]);
    }
    f->m++;
    return 1;
}

int sgdstab_family_add(sgdstab_family *f, const double *x, sgdstab_error *err)
{
    if (f->m == f->dim)
        return SGDSTAB_OK;  /* the basis spans everything already */
    if (f->m == f->mmax)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "eigensolver basis is full");
    memcpy(f->V + f->m * f->dim, x, f->dim * sizeof *x);
    int saved = par_blas_serial();
    expand(f, project_correction(f, 0), 0);
    par_blas_restore(saved);
    return SGDSTAB_OK;
}

/* ------------------------------------------------------ Rayleigh–Ritz */

/* Eigen-decomposition of the projected A(γ, β): ascending eigenvalues in
 * f->w, eigenvectors in the columns of f->Y (row-major m × m, ld mmax). */
static int small_eig(sgdstab_family *f, const double *gamma, double beta,
                     sgdstab_error *err)
{
    size_t m = f->m, mm = f->mmax;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < m; j++) {
            double s = beta * f->PN[i * mm + j];
            for (size_t c = 0; c < f->nd; c++)
                s += gamma[c] * f->PD[c * mm * mm + i * mm + j];
            f->Y[i * mm + j] = s;
        }
    return symeig_all(SYMEIG_DSYEV, m, f->Y, mm, f->w, 1, err,
                      "the projected eigenproblem (basis of %zu)", m);
}

/* yᵀ P y for an m × m block of a row-major matrix with leading size mm. */
static double quad(const double *P, size_t mm, size_t m, const double *y)
{
    double s = 0;
    for (size_t i = 0; i < m; i++) {
        double row = 0;
        for (size_t j = 0; j < m; j++)
            row += P[i * mm + j] * y[j];
        s += y[i] * row;
    }
    return s;
}

/* ‖R‖² of the Ritz pair (θ, y) from the projections (see above). */
static double gram_residual2(const sgdstab_family *f, const double *gamma,
                             double beta, double theta, const double *y)
{
    size_t m = f->m, mm = f->mmax, nd = f->nd;
    double r2 = theta * theta;  /* yᵀ I y, ‖y‖ = 1 */
    for (size_t c = 0; c < nd; c++) {
        r2 -= 2 * theta * gamma[c] * quad(f->PD + c * mm * mm, mm, m, y);
        r2 += 2 * beta * gamma[c] * quad(f->Q + c * mm * mm, mm, m, y);
        for (size_t c2 = c; c2 < nd; c2++)
            r2 += (c == c2 ? 1 : 2) * gamma[c] * gamma[c2] *
                  quad(f->PDD + pair_index(nd, c, c2) * mm * mm, mm, m, y);
    }
    r2 += beta * beta * quad(f->WW, mm, m, y) -
          2 * beta * theta * quad(f->PN, mm, m, y);
    return r2;
}

/* Part p of V ← V Y_k and W ← W Y_k (restart below). */
static void restart_part(void *arg, size_t p)
{
    const pass_job *j = arg;
    sgdstab_family *f = j->f;
    const size_t m = f->m, mm = f->mmax, dim = f->dim, keep = j->keep;
    const double *Yk = f->Y + (m - keep);  /* row-major m × keep, ld mm */
    double *rows = part_rows(f, p), *mats[2] = {f->V, f->W};
    for (int which = 0; which < 2; which++)
        for (size_t a0 = part_row(f, p); a0 < part_row(f, p + 1);
             a0 += FAMILY_ROWS) {
            size_t nb = block_rows(f, a0);
            cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)nb,
                        (int)keep, (int)m, 1.0, mats[which] + a0, (int)dim,
                        Yk, (int)mm, 0.0, rows, (int)nb);
            for (size_t k = 0; k < keep; k++)
                memcpy(mats[which] + k * dim + a0, rows + k * nb,
                       nb * sizeof *rows);
        }
}

/* Keep the `keep` best Ritz vectors (columns m−keep..m−1 of Y): V ← V Y_k
 * and W ← W Y_k in place by row blocks, every projection P ← Y_kᵀ P Y_k. */
static void restart(sgdstab_family *f, size_t keep)
{
    size_t m = f->m, mm = f->mmax;
    const double *Yk = f->Y + (m - keep);
    pass_job j = {.f = f, .keep = keep};
    par_run(FAMILY_PARTS, restart_part, &j);
    size_t nproj = 2 + 2 * f->nd + f->npair;
    for (size_t c = 0; c < nproj; c++) {
        double *P = c == 0 ? f->PN : c == 1 ? f->WW
                  : c < 2 + f->nd ? f->PD + (c - 2) * mm * mm
                  : c < 2 + 2 * f->nd ? f->Q + (c - 2 - f->nd) * mm * mm
                                      : f->PDD + (c - 2 - 2 * f->nd) * mm * mm;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m,
                    (int)keep, (int)m, 1.0, P, (int)mm, Yk, (int)mm, 0.0, f->S,
                    (int)mm);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)keep,
                    (int)keep, (int)m, 1.0, Yk, (int)mm, f->S, (int)mm, 0.0, P,
                    (int)mm);
    }
    f->m = keep;
}

/* Σ γ_c d_c at row a. */
static double diagonal_at(const sgdstab_family *f, const double *gamma,
                          size_t a)
{
    double e = 0;
    for (size_t c = 0; c < f->nd; c++)
        e += gamma[c] * f->diag[c * f->dim + a];
    return e;
}

/* Pass 1 for the Ritz pair (θ, y): the explicit residual
 * R = (E − θ)·V y + β·W y (its norm returned), *ed = Rᵀ(θ − E)^{-1}R
 * (infinite unless θ − E is positive definite; see neumann_estimate) and,
 * when the basis has room, the correction t in column m of V with h = Vᵀt
 * and *tt = ‖t‖².  The correction is R itself (Lanczos: from a start
 * overlapping the top eigenvector, the Krylov space finds it) far from
 * convergence, and the Davidson correction (θ − E)^{-1} R close to it,
 * which converges much faster but, alone, can settle on an interior
 * eigenvalue. */
static void residual_part(void *arg, size_t p)
{
    const pass_job *j = arg;
    sgdstab_family *f = j->f;
    const size_t dim = f->dim, m = f->m;
    double *t = j->t, *u = part_rows(f, p), *wy = u + FAMILY_ROWS;
    double *hp = f->hp + p * f->mmax, rr = 0, ts = 0, ed = 0;
    if (t)
        memset(hp, 0, m * sizeof *hp);
    for (size_t a0 = part_row(f, p); a0 < part_row(f, p + 1);
         a0 += FAMILY_ROWS) {
        size_t nb = block_rows(f, a0);
        cblas_dgemv(CblasColMajor, CblasNoTrans, (int)nb, (int)m, 1.0,
                    f->V + a0, (int)dim, j->y, 1, 0.0, u, 1);
        cblas_dgemv(CblasColMajor, CblasNoTrans, (int)nb, (int)m, 1.0,
                    f->W + a0, (int)dim, j->y, 1, 0.0, wy, 1);
        for (size_t a = 0; a < nb; a++) {
            double d = j->theta - diagonal_at(f, j->gamma, a0 + a);
            double r = j->beta * wy[a] - d * u[a];
            rr += r * r;
            ed += d > 0 ? r * r / d : INFINITY;
            if (!t)
                continue;
            if (j->davidson && fabs(d) < j->floor)
                d = d < 0 ? -j->floor : j->floor;
            double ta = j->davidson ? r / d : r;
            t[a0 + a] = ta;
            ts += ta * ta;
        }
        if (t)
            cblas_dgemv(CblasColMajor, CblasTrans, (int)nb, (int)m, 1.0,
                        f->V + a0, (int)dim, t + a0, 1, 1.0, hp, 1);
    }
    f->sums[p][0] = rr;
    f->sums[p][1] = ts;
    f->sums[p][2] = ed;
}

static double residual_pass(sgdstab_family *f, const double *gamma,
                            double beta, double theta, const double *y,
                            int davidson, double floor, double *tt,
                            double *ed)
{
    pass_job j = {.f = f, .gamma = gamma, .y = y, .beta = beta,
                  .theta = theta, .floor = floor, .davidson = davidson,
                  .t = f->m < f->mmax ? f->V + f->m * f->dim : NULL};
    par_run(FAMILY_PARTS, residual_part, &j);
    if (j.t)
        sum_parts(f->hp, f->mmax, f->m, f->h);
    *tt = sum_scalar(f, 1);
    *ed = sum_scalar(f, 2);
    return sqrt(sum_scalar(f, 0));
}

/* A second estimate of λ − θ for the Ritz pair (θ, x = Vy) of the member
 * (γ, β), given ed from its explicit residual pass.  With R the residual
 * and K⊥ the member restricted to x⊥, the top eigenvector is x + s with
 * s = (λ − K⊥)^{-1}R, and exactly
 *     λ − θ = Rᵀ(λ − K⊥)^{-1}R.
 * Where θ − E ≻ 0 (so λ − E ≻ 0, λ ≥ θ), take E as the diagonal part of
 * K⊥: λ − K⊥ ≈ (λ − E)^{1/2}(I − M)(λ − E)^{1/2} with
 * M = β(λ − E)^{-1/2}N(λ − E)^{-1/2}, and the error is uᵀ(I − M)^{-1}u for
 * u = (λ − E)^{-1/2}R.  Its Neumann series starts with uᵀu ≤ ed =
 * Rᵀ(θ − E)^{-1}R; the rest is extrapolated geometrically with the ratio
 * uᵀMu/uᵀu, measured on the last Davidson correction t ≈ (θ − E)^{-1}R
 * (the current one's would cost an application of N):
 *     q = β·tᵀNt / tᵀ(θ − E)t,   λ − θ ≈ ed/(1 − q).
 * It is an estimate, not a bound: at the exact u, 1/(1 − μ) being convex,
 * ed/(1 − q) is below the true error by as much as the spectrum of M that
 * u sees spreads towards 1 — where the gap above the next eigenvalue is
 * small.  Hence the factor 2, and q < 1/2.  Returns +∞ where it does not
 * apply. */
static double neumann_estimate(const sgdstab_family *f, const double *gamma,
                               double beta, double theta, double ed)
{
    if (!f->last.davidson || !isfinite(ed))
        return INFINITY;
    double den = theta * f->last.tt;
    for (size_t c = 0; c < f->nd; c++)
        den -= gamma[c] * f->last.tdt[c];
    if (!(den > 0))
        return INFINITY;
    double q = fmax(beta * f->last.tnt / den, 0);
    return q < 0.5 ? 2 * ed / (1 - q) : INFINITY;
}

static int family_solve(sgdstab_family *f, const double *gamma, double beta,
                        const sgdstab_eig_options *opt,
                        sgdstab_eig_result *res, double *vec,
                        sgdstab_error *err)
{
    memset(res, 0, sizeof *res);
    if (f->m == 0)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "eigensolver has no start "
                            "vector");
    const double tol = opt && opt->tol > 0 ? opt->tol : 1e-11;
    const size_t max_mv = opt && opt->max_matvecs ? opt->max_matvecs : 400;
    const double rtol = opt && opt->vector_tol > 0 ? fmin(opt->vector_tol,
                                                          sqrt(tol))
                                                   : sqrt(tol);
    const int neumann = opt && opt->neumann_estimate;
    const size_t dim = f->dim, mm = f->mmax;
    double emax = 0;
    for (size_t c = 0; c < f->nd; c++)
        emax += fabs(gamma[c]) * f->dmax[c];
    size_t start_mv = f->matvecs;
    for (;;) {
        int st = small_eig(f, gamma, beta, err);
        if (st)
            return st;
        size_t m = f->m;
        double theta = f->w[m - 1];
        double *y = f->y;
        for (size_t i = 0; i < m; i++)
            y[i] = f->Y[i * mm + (m - 1)];
        /* |θ − λ| ≤ ‖R‖ rigorously; ≈ ‖R‖²/gap once the gap to the next
         * eigenvalue, estimated by the next Ritz value, is resolved. */
        double gap = m > 1 ? theta - f->w[m - 2] : INFINITY;
        double nmax = 0;
        for (size_t i = 0; i < m; i++)
            nmax = fmax(nmax, f->WW[i * mm + i]);
        double scale = fabs(theta) + emax + fabs(beta) * sqrt(nmax);
        double floor2 = 64.0 * (double)m * DBL_EPSILON * scale * scale;
        double rnorm = sqrt(fmax(gram_residual2(f, gamma, beta, theta, y), 0) +
                            floor2);
        int explicit = 0, davidson = 0;
        double tt = 0, ed = INFINITY;
        for (;;) {
            double estimate = fmin(rnorm, rnorm * rnorm / gap);
            if (neumann)
                estimate = fmin(estimate,
                                neumann_estimate(f, gamma, beta, theta, ed));
            res->value = theta;
            res->residual = rnorm;
            res->error_estimate = estimate;
            res->converged = rnorm <= rtol * fabs(theta) &&
                             estimate <= tol * fabs(theta);
            if (res->converged || explicit)
                break;
            davidson = rnorm <= 1e-2 * fabs(theta);
            rnorm = residual_pass(f, gamma, beta, theta, y, davidson,
                                  1e-3 * fmax(fabs(theta), rnorm), &tt, &ed);
            explicit = 1;
        }
        res->matvecs = f->matvecs - start_mv;
        if (res->converged || res->matvecs >= max_mv || m == dim)
            break;
        if (m == mm) {
            /* No room for the correction: keep the best Ritz vectors and
             * take the Ritz pair again on the smaller basis. */
            restart(f, mm / 2 > 1 ? mm / 2 : 1);
            continue;
        }
        if (!expand(f, tt, davidson)) {
            /* The correction lies in the span: expand by R itself. */
            (void)residual_pass(f, gamma, beta, theta, y, 0, 0, &tt, &ed);
            if (!expand(f, tt, 0))
                break;  /* stagnated: the basis cannot grow further */
        }
    }
    if (vec) {
        cblas_dgemv(CblasColMajor, CblasNoTrans, (int)dim, (int)f->m, 1.0,
                    f->V, (int)dim, f->y, 1, 0.0, vec, 1);
        double nrm = cblas_dnrm2((int)dim, vec, 1);
        cblas_dscal((int)dim, 1 / nrm, vec, 1);
    }
    return SGDSTAB_OK;
}

int sgdstab_family_solve(sgdstab_family *f, const double *gamma, double beta,
                         const sgdstab_eig_options *opt,
                         sgdstab_eig_result *res, double *vec,
                         sgdstab_error *err)
{
    int saved = par_blas_serial();
    int st = family_solve(f, gamma, beta, opt, res, vec, err);
    par_blas_restore(saved);
    return st;
}
