/* The general eigensolver of eig.h: ARPACK-ng's Lanczos method, and a dense
 * LAPACK solve for operators small enough to assemble. */
#include "sgdstab/eig.h"

#include <arpack/arpack.h>
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"
#include "symeig.h"

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

/* The result of a solve with the unit vector v and its Rayleigh quotient
 * theta, after `matvecs` applications: the residual (one more) is the error
 * estimate, and v is copied to vec when asked for. */
static void finish(size_t dim, sgdstab_matvec_fn matvec, void *ctx,
                   const double *v, double theta, size_t matvecs, double *work,
                   sgdstab_eig_result *res, double *vec)
{
    res->value = theta;
    res->residual = residual(dim, matvec, ctx, v, theta, work);
    res->error_estimate = res->residual;
    res->matvecs = matvecs + 1;
    if (vec)
        memcpy(vec, v, dim * sizeof *v);
}

static int eig_dense(size_t dim, sgdstab_matvec_fn matvec, void *ctx,
                     sgdstab_eig_result *res, double *vec, sgdstab_error *err)
{
    double *A = malloc(dim * dim * sizeof *A);
    double *e = calloc(dim, sizeof *e);
    double *col = malloc(dim * sizeof *col);
    double *v = malloc(dim * sizeof *v);
    int st = SGDSTAB_OK;
    if (!A || !e || !col || !v) {
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
    double top;
    if ((st = symeig_range(dim, A, dim, dim - 1, dim - 1, &top, v, err,
                           "the assembled operator (dimension %zu)", dim)))
        goto done;
    finish(dim, matvec, ctx, v, top, dim, col, res, vec);
    res->converged = 1;
done:
    free(A);
    free(e);
    free(col);
    free(v);
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
    if (opt && opt->vector_tol > 0)
        tol = fmin(tol, opt->vector_tol);
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
    finish(dim, matvec, ctx, z, d[0], matvecs, workd, res, vec);
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
    /* BLAS at one thread, as in the families below (parallel.h). */
    int saved = par_blas_serial();
    int st = eig_arpack(dim, matvec, ctx, opt, res, vec, err);
    par_blas_restore(saved);
    return st;
}
