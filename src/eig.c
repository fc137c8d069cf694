#include "sgdstab/eig.h"

#include <arpack/arpack.h>
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Fixed, reproducible start when the caller gives none (a simple LCG is
 * enough: only a generic direction is needed). */
static void default_start(size_t dim, double *x)
{
    unsigned long long s = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < dim; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (double)(s >> 11) / 9007199254740992.0 - 0.5;
    }
}

/* ‖A v − θ v‖ and the count of that application. */
static double residual(size_t dim, sgdstab_matvec_fn matvec, void *ctx,
                       const double *v, double theta, double *work)
{
    matvec(ctx, v, work);
    cblas_daxpy((int)dim, -theta, v, 1, work, 1);
    return cblas_dnrm2((int)dim, work, 1);
}

static int eig_dense(size_t dim, sgdstab_matvec_fn matvec, void *ctx,
                     sgdstab_eig_result *res, double *vec, sgdstab_error *err)
{
    double *A = malloc(dim * dim * sizeof *A);
    double *e = calloc(dim, sizeof *e);
    double *col = malloc(dim * sizeof *col);
    double *v = malloc(dim * sizeof *v);
    lapack_int *isuppz = malloc(2 * sizeof *isuppz);
    int st = SGDSTAB_OK;
    if (!A || !e || !col || !v || !isuppz) {
        st = sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory (dense eigensolver, "
                          "dim %zu)", dim);
        goto done;
    }
    for (size_t j = 0; j < dim; j++) {
        e[j] = 1;
        matvec(ctx, e, col);
        e[j] = 0;
        for (size_t i = 0; i < dim; i++)
            A[i * dim + j] = col[i];
    }
    /* Symmetrize away rounding before the symmetric solver reads one half. */
    for (size_t i = 0; i < dim; i++)
        for (size_t j = i + 1; j < dim; j++)
            A[i * dim + j] = A[j * dim + i] =
                0.5 * (A[i * dim + j] + A[j * dim + i]);
    lapack_int m;
    double w[1];
    lapack_int info = LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'V', 'I', 'U',
                                     (lapack_int)dim, A, (lapack_int)dim, 0, 0,
                                     (lapack_int)dim, (lapack_int)dim, 0.0, &m,
                                     w, v, 1, isuppz);
    if (info != 0 || m != 1) {
        st = sgdstab_fail(err, SGDSTAB_ENUMERIC,
                          "dense eigensolver failed (LAPACK dsyevr info = %d)",
                          (int)info);
        goto done;
    }
    res->value = w[0];
    res->residual = residual(dim, matvec, ctx, v, w[0], col);
    res->error_estimate = res->residual;
    res->matvecs = dim + 1;
    res->converged = 1;
    if (vec)
        memcpy(vec, v, dim * sizeof *v);
done:
    free(A);
    free(e);
    free(col);
    free(v);
    free(isuppz);
    return st;
}

static int eig_arpack(size_t dim, sgdstab_matvec_fn matvec, void *ctx,
                      const sgdstab_eig_options *opt, sgdstab_eig_result *res,
                      double *vec, sgdstab_error *err)
{
    a_int n = (a_int)dim, nev = 1;
    a_int ncv = (a_int)(opt && opt->ncv ? opt->ncv : 24);
    if (ncv > n)
        ncv = n;
    if (ncv < 3)
        ncv = 3;
    double tol = opt && opt->tol > 0 ? opt->tol : 1e-11;
    size_t max_mv = opt && opt->max_matvecs ? opt->max_matvecs
                                            : 20 * (size_t)ncv + 1000;
    a_int lworkl = ncv * (ncv + 8);
    double *resid = malloc(dim * sizeof *resid);
    double *V = malloc(dim * (size_t)ncv * sizeof *V);
    double *workd = malloc(3 * dim * sizeof *workd);
    double *workl = malloc((size_t)lworkl * sizeof *workl);
    double *z = malloc(dim * sizeof *z);
    a_int *select = calloc((size_t)ncv, sizeof *select);
    int st = SGDSTAB_OK;
    if (!resid || !V || !workd || !workl || !z || !select) {
        st = sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory (Lanczos, dim %zu, "
                          "%d vectors)", dim, (int)ncv);
        goto done;
    }
    if (opt && opt->start)
        memcpy(resid, opt->start, dim * sizeof *resid);
    else
        default_start(dim, resid);

    a_int iparam[11] = {0}, ipntr[14] = {0};
    iparam[0] = 1;  /* exact shifts */
    /* Each restart costs ncv − nev applications after the first ncv. */
    iparam[2] = (a_int)(max_mv / (size_t)(ncv - nev) + 1);
    iparam[6] = 1;  /* mode 1: standard problem A x = λ x */
    a_int ido = 0, info = 1;  /* info = 1: start from resid */
    size_t matvecs = 0;
    for (;;) {
        dsaupd_c(&ido, "I", n, "LA", nev, tol, resid, ncv, V, n, iparam, ipntr,
                 workd, workl, lworkl, &info);
        if (ido != -1 && ido != 1)
            break;
        matvec(ctx, workd + ipntr[0] - 1, workd + ipntr[1] - 1);
        matvecs++;
        if (matvecs > max_mv + (size_t)ncv)
            break;  /* safety net; ARPACK's own limit normally stops first */
    }
    if (info < 0 || (info != 0 && info != 1 && info != 3)) {
        st = sgdstab_fail(err, SGDSTAB_ENUMERIC,
                          "Lanczos iteration failed (ARPACK dsaupd info = %d)",
                          (int)info);
        goto done;
    }
    res->converged = info == 0 && iparam[4] >= nev;
    double d[2];
    a_int einfo = 0;
    dseupd_c(1, "A", select, d, z, n, 0.0, "I", n, "LA", nev, tol, resid, ncv,
             V, n, iparam, ipntr, workd, workl, lworkl, &einfo);
    if (einfo != 0) {
        /* Not even one Ritz pair could be extracted (no convergence at all):
         * fall back to the current Lanczos vector's Rayleigh quotient. */
        memcpy(z, V, dim * sizeof *z);
        matvec(ctx, z, workd);
        matvecs++;
        d[0] = cblas_ddot(n, z, 1, workd, 1);
        res->converged = 0;
    }
    double nrm = cblas_dnrm2(n, z, 1);
    cblas_dscal(n, 1 / nrm, z, 1);
    res->value = d[0];
    res->residual = residual(dim, matvec, ctx, z, d[0], workd);
    res->error_estimate = res->residual;
    res->matvecs = matvecs + 1;
    if (vec)
        memcpy(vec, z, dim * sizeof *z);
done:
    free(resid);
    free(V);
    free(workd);
    free(workl);
    free(z);
    free(select);
    return st;
}

int sgdstab_eig_max(size_t dim, sgdstab_matvec_fn matvec, void *ctx,
                    const sgdstab_eig_options *opt, sgdstab_eig_result *res,
                    double *vec, sgdstab_error *err)
{
    memset(res, 0, sizeof *res);
    if (dim == 0)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "eigenproblem of dimension 0");
    if (dim <= SGDSTAB_EIG_DENSE_MAX)
        return eig_dense(dim, matvec, ctx, res, vec, err);
    return eig_arpack(dim, matvec, ctx, opt, res, vec, err);
}

/* ------------------------------------------------------------- families */

struct sgdstab_family {
    size_t dim, ndiag, mmax, m;
    double *diag;       /* ndiag × dim */
    sgdstab_matvec_fn N;
    void *ctx;
    double *V, *W;      /* dim × mmax each, column j at + j·dim; W = N V */
    double *V2;         /* dim × mmax: restart buffer */
    double *PN;         /* mmax × mmax: Vᵀ N V */
    double *PD;         /* ndiag × mmax × mmax: Vᵀ diag(d_c) V */
    double *S, *Y, *w;  /* mmax × mmax, mmax × mmax, mmax: small problem */
    double *e, *u, *R, *t, *h;  /* dim, dim, dim, dim, mmax */
    size_t matvecs;
};

void sgdstab_family_free(sgdstab_family *f)
{
    if (!f)
        return;
    free(f->diag);
    free(f->V);
    free(f->W);
    free(f->V2);
    free(f->PN);
    free(f->PD);
    free(f->S);
    free(f->Y);
    free(f->w);
    free(f->e);
    free(f->u);
    free(f->R);
    free(f->t);
    free(f->h);
    free(f);
}

sgdstab_family *sgdstab_family_alloc(size_t dim, size_t ndiag,
                                     const double *const *diags,
                                     sgdstab_matvec_fn N, void *ctx,
                                     size_t max_basis, sgdstab_error *err)
{
    size_t mmax = max_basis ? max_basis : 48;
    if (mmax > dim)
        mmax = dim;
    sgdstab_family *f = calloc(1, sizeof *f);
    if (!f)
        goto oom;
    f->dim = dim;
    f->ndiag = ndiag;
    f->mmax = mmax;
    f->N = N;
    f->ctx = ctx;
    f->diag = malloc((ndiag ? ndiag : 1) * dim * sizeof *f->diag);
    f->V = malloc(dim * mmax * sizeof *f->V);
    f->W = malloc(dim * mmax * sizeof *f->W);
    f->V2 = malloc(dim * mmax * sizeof *f->V2);
    f->PN = malloc(mmax * mmax * sizeof *f->PN);
    f->PD = malloc((ndiag ? ndiag : 1) * mmax * mmax * sizeof *f->PD);
    f->S = malloc(mmax * mmax * sizeof *f->S);
    f->Y = malloc(mmax * mmax * sizeof *f->Y);
    f->w = malloc(mmax * sizeof *f->w);
    f->e = malloc(dim * sizeof *f->e);
    f->u = malloc(dim * sizeof *f->u);
    f->R = malloc(dim * sizeof *f->R);
    f->t = malloc(dim * sizeof *f->t);
    f->h = malloc(mmax * sizeof *f->h);
    if (!f->diag || !f->V || !f->W || !f->V2 || !f->PN || !f->PD || !f->S ||
        !f->Y || !f->w || !f->e || !f->u || !f->R || !f->t || !f->h)
        goto oom;
    for (size_t c = 0; c < ndiag; c++)
        memcpy(f->diag + c * dim, diags[c], dim * sizeof *f->diag);
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

/* Entry (i, j) of the projection of a diagonal: Σ_α V_iα d_α V_jα. */
static double project_diag(const sgdstab_family *f, const double *d, size_t i,
                           size_t j)
{
    const double *vi = f->V + i * f->dim, *vj = f->V + j * f->dim;
    double s = 0;
    for (size_t a = 0; a < f->dim; a++)
        s += vi[a] * d[a] * vj[a];
    return s;
}

/* Orthogonalize t against the basis (classical Gram–Schmidt, twice), append
 * it with N t and extend the projections.  Returns 0 when t lies in the span
 * already (nothing added), 1 when added. */
static int expand(sgdstab_family *f, double *t)
{
    const int dim = (int)f->dim, m = (int)f->m;
    double norm0 = cblas_dnrm2(dim, t, 1);
    if (!(norm0 > 0) || !isfinite(norm0))
        return 0;
    for (int pass = 0; pass < 2 && m > 0; pass++) {
        cblas_dgemv(CblasColMajor, CblasTrans, dim, m, 1.0, f->V, dim, t, 1,
                    0.0, f->h, 1);
        cblas_dgemv(CblasColMajor, CblasNoTrans, dim, m, -1.0, f->V, dim, f->h,
                    1, 1.0, t, 1);
    }
    double norm = cblas_dnrm2(dim, t, 1);
    if (norm <= 1e-10 * norm0)
        return 0;
    double *v = f->V + (size_t)m * f->dim, *w = f->W + (size_t)m * f->dim;
    for (int a = 0; a < dim; a++)
        v[a] = t[a] / norm;
    f->N(f->ctx, v, w);
    f->matvecs++;
    /* New row/column of Vᵀ N V: Vᵀ (N v). */
    cblas_dgemv(CblasColMajor, CblasTrans, dim, m + 1, 1.0, f->V, dim, w, 1,
                0.0, f->h, 1);
    size_t mm = f->mmax;
    for (int i = 0; i <= m; i++)
        f->PN[(size_t)i * mm + (size_t)m] = f->PN[(size_t)m * mm + (size_t)i] =
            f->h[i];
    for (size_t c = 0; c < f->ndiag; c++) {
        double *P = f->PD + c * mm * mm;
        for (int i = 0; i <= m; i++)
            P[(size_t)i * mm + (size_t)m] = P[(size_t)m * mm + (size_t)i] =
                project_diag(f, f->diag + c * f->dim, (size_t)i, (size_t)m);
    }
    f->m++;
    return 1;
}

int sgdstab_family_add(sgdstab_family *f, const double *x, sgdstab_error *err)
{
    if (f->m == f->mmax)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "eigensolver basis is full");
    memcpy(f->t, x, f->dim * sizeof *f->t);
    expand(f, f->t);
    return SGDSTAB_OK;
}

/* Eigen-decomposition of the projected A(γ, β): ascending eigenvalues in
 * f->w, eigenvectors in the columns of f->Y (row-major m × m, ld mmax). */
static int small_eig(sgdstab_family *f, const double *gamma, double beta)
{
    size_t m = f->m, mm = f->mmax;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < m; j++) {
            double s = beta * f->PN[i * mm + j];
            for (size_t c = 0; c < f->ndiag; c++)
                s += gamma[c] * f->PD[c * mm * mm + i * mm + j];
            f->Y[i * mm + j] = s;
        }
    return LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)m, f->Y,
                         (lapack_int)mm, f->w) == 0 ? 0 : -1;
}

/* Keep the `keep` best Ritz vectors (columns m−keep..m−1 of Y): V ← V Y_k,
 * W ← W Y_k, projections ← Y_kᵀ P Y_k. */
static void restart(sgdstab_family *f, size_t keep)
{
    size_t m = f->m, mm = f->mmax, dim = f->dim;
    const double *Yk = f->Y + (m - keep);  /* row-major, ld mm */
    double *mats[2] = {f->V, f->W};
    for (int which = 0; which < 2; which++) {
        /* V2 (dim × keep, col-major) = V (dim × m) · Y_k (m × keep) */
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)dim,
                    (int)keep, (int)m, 1.0, mats[which], (int)dim, Yk, (int)mm,
                    0.0, f->V2, (int)dim);
        memcpy(mats[which], f->V2, dim * keep * sizeof *f->V2);
    }
    size_t np = f->ndiag + 1;
    for (size_t c = 0; c < np; c++) {
        double *P = c < f->ndiag ? f->PD + c * mm * mm : f->PN;
        /* S = Pᵀ... P symmetric: S = P Y_k (m × keep), then Y_kᵀ S. */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m,
                    (int)keep, (int)m, 1.0, P, (int)mm, Yk, (int)mm, 0.0, f->S,
                    (int)mm);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)keep,
                    (int)keep, (int)m, 1.0, Yk, (int)mm, f->S, (int)mm, 0.0, P,
                    (int)mm);
    }
    f->m = keep;
}

int sgdstab_family_solve(sgdstab_family *f, const double *gamma, double beta,
                         const sgdstab_eig_options *opt,
                         sgdstab_eig_result *res, double *vec,
                         sgdstab_error *err)
{
    memset(res, 0, sizeof *res);
    if (f->m == 0)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "eigensolver has no start "
                            "vector");
    const double tol = opt && opt->tol > 0 ? opt->tol : 1e-10;
    const size_t max_mv = opt && opt->max_matvecs ? opt->max_matvecs : 400;
    const size_t dim = f->dim, mm = f->mmax;
    /* e = Σ γ_c d_c, the diagonal part of this member. */
    memset(f->e, 0, dim * sizeof *f->e);
    for (size_t c = 0; c < f->ndiag; c++)
        cblas_daxpy((int)dim, gamma[c], f->diag + c * dim, 1, f->e, 1);
    size_t start_mv = f->matvecs;
    for (;;) {
        if (small_eig(f, gamma, beta))
            return sgdstab_fail(err, SGDSTAB_ENUMERIC, "projected eigenproblem "
                                "failed (LAPACK dsyev)");
        size_t m = f->m;
        double theta = f->w[m - 1];
        /* Ritz vector u = V y and residual R = e∘u + β W y − θ u. */
        for (size_t i = 0; i < m; i++)
            f->h[i] = f->Y[i * mm + (m - 1)];
        cblas_dgemv(CblasColMajor, CblasNoTrans, (int)dim, (int)m, 1.0, f->V,
                    (int)dim, f->h, 1, 0.0, f->u, 1);
        cblas_dgemv(CblasColMajor, CblasNoTrans, (int)dim, (int)m, beta, f->W,
                    (int)dim, f->h, 1, 0.0, f->R, 1);
        for (size_t a = 0; a < dim; a++)
            f->R[a] += (f->e[a] - theta) * f->u[a];
        double rnorm = cblas_dnrm2((int)dim, f->R, 1);
        /* |θ − λ| ≤ ‖R‖ rigorously; ≈ ‖R‖²/gap once the gap to the next
         * eigenvalue, estimated by the next Ritz value, is resolved. */
        double gap = m > 1 ? theta - f->w[m - 2] : INFINITY;
        double estimate = fmin(rnorm, rnorm * rnorm / gap);
        res->value = theta;
        res->residual = rnorm;
        res->error_estimate = estimate;
        res->matvecs = f->matvecs - start_mv;
        res->converged = rnorm <= sqrt(tol) * fabs(theta) &&
                         estimate <= tol * fabs(theta);
        if (res->converged || res->matvecs >= max_mv || m == dim)
            break;
        /* Lanczos far from convergence, Davidson close to it. */
        if (rnorm > 1e-2 * fabs(theta)) {
            memcpy(f->t, f->R, dim * sizeof *f->t);
        } else {
            double floor = 1e-3 * fmax(fabs(theta), rnorm);
            for (size_t a = 0; a < dim; a++) {
                double d = theta - f->e[a];
                if (fabs(d) < floor)
                    d = d < 0 ? -floor : floor;
                f->t[a] = f->R[a] / d;
            }
        }
        if (f->m == f->mmax)
            restart(f, f->mmax / 2 > 1 ? f->mmax / 2 : 2);
        if (!expand(f, f->t)) {
            memcpy(f->t, f->R, dim * sizeof *f->t);
            if (!expand(f, f->t))
                break;  /* stagnated: the basis cannot grow further */
        }
    }
    if (vec) {
        double nrm = cblas_dnrm2((int)dim, f->u, 1);
        for (size_t a = 0; a < dim; a++)
            vec[a] = f->u[a] / nrm;
    }
    return SGDSTAB_OK;
}
