#include "sgdstab/param_space.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sgdstab/moments.h"
#include "sgdstab/plan.h"

/* Room for len doubles (at least one, so that empty is not NULL). */
static double *doubles(size_t len)
{
    return malloc((len > 0 ? len : 1) * sizeof(double));
}

void sgdstab_param_space_free(sgdstab_param_space *ps)
{
    free(ps->rows);
    free(ps->root);
    free(ps->W);
    memset(ps, 0, sizeof *ps);
}

int sgdstab_param_space_make(const sgdstab_problem *prob,
                             const sgdstab_reduced *red,
                             const sgdstab_config *cfg,
                             sgdstab_param_space *ps, sgdstab_error *err)
{
    memset(ps, 0, sizeof *ps);
    const sgdstab_optimizer *o = &cfg->optimizer;
    const size_t r = red->r, p = red->p;
    int st = sgdstab_view_check(red, cfg, err);
    if (st)
        return st;
    ps->r = r;
    ps->p = p;
    if (!prob->J)  /* a Gram matrix: Q is not known, only that QᵀQ = I */
        return red->preconditioned
                   ? sgdstab_fail(err, SGDSTAB_EINVAL, "%s: E|delta|^2 with "
                                  "a preconditioner weighs each parameter "
                                  "by P^-1, which needs J, not its Gram "
                                  "matrix", red->source)
                   : SGDSTAB_OK;
    ps->rows = doubles(r * p);
    int bad = !ps->rows;
    if (o->second_moment) {
        bad |= !(ps->root = malloc(p * sizeof *ps->root));
        bad |= !(ps->W = doubles(r * r));
    }
    if (bad) {
        sgdstab_param_space_free(ps);
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory for the "
                            "reduced basis (%zu x %zu)", red->source, r, p);
    }
    sgdstab_reduce_basis_rows(red, prob, ps->rows);
    if (!ps->root)
        return SGDSTAB_OK;
    for (size_t i = 0; i < p; i++)
        ps->root[i] = sqrt(sgdstab_optimizer_precond(o, i));
    /* Without H the basis is Σ⁻²Φᵀ J̃ with J̃ = J P^{-1/2}, and prob holds
     * J; with H it is H̃'s eigenvectors, already in y. */
    if (!red->basis)
        for (size_t j = 0; j < r; j++)
            for (size_t i = 0; i < p; i++)
                ps->rows[j * p + i] /= ps->root[i];
    double *work = doubles(r * p);
    if (!work) {
        sgdstab_param_space_free(ps);
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory for the "
                            "reduced basis (%zu x %zu)", red->source, r, p);
    }
    sgdstab_param_space_gram(ps, -1, ps->W, work);
    free(work);
    return SGDSTAB_OK;
}

/* dst = rows·diag(root^e) (rows itself without a preconditioner). */
static void scaled_rows(const sgdstab_param_space *ps, int e, double *dst)
{
    const size_t r = ps->r, p = ps->p;
    for (size_t j = 0; j < r; j++)
        for (size_t i = 0; i < p; i++) {
            double f = !ps->root ? 1 : e > 0 ? ps->root[i] : 1 / ps->root[i];
            dst[j * p + i] = ps->rows[j * p + i] * f;
        }
}

void sgdstab_param_space_gram(const sgdstab_param_space *ps, int exponent,
                              double *out, double *work)
{
    const size_t r = ps->r, p = ps->p;
    if (!ps->rows) {
        for (size_t i = 0; i < r * r; i++)
            out[i] = i % (r + 1) == 0;
        return;
    }
    scaled_rows(ps, exponent, work);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)r, (int)r,
                (int)p, 1.0, work, (int)p, work, (int)p, 0.0, out, (int)r);
}

void sgdstab_param_space_split(const sgdstab_param_space *ps,
                               const double *delta, double *z, double *v,
                               double *nu, double *work)
{
    const size_t r = ps->r, p = ps->p;
    double *y = work, *u = work + p;
    for (size_t i = 0; i < p; i++)
        y[i] = ps->root ? ps->root[i] * delta[i] : delta[i];
    if (r) {
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)r, (int)p, 1.0,
                    ps->rows, (int)p, y, 1, 0.0, z, 1);
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)r, (int)p, -1.0,
                    ps->rows, (int)p, z, 1, 1.0, y, 1);  /* y⊥ */
    }
    double s = 0;
    for (size_t i = 0; i < p; i++) {
        u[i] = ps->root ? y[i] / (ps->root[i] * ps->root[i]) : y[i];
        s += y[i] * u[i];
    }
    *nu = r == p ? 0 : s;
    if (ps->root && r && r < p)
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)r, (int)p, 1.0,
                    ps->rows, (int)p, u, 1, 0.0, v, 1);
    else
        memset(v, 0, r * sizeof *v);  /* Q z ⊥ y⊥ in δ's own metric */
}

double sgdstab_param_space_norm2(const sgdstab_param_space *ps,
                                 const double *z, const double *v, double nu,
                                 double a)
{
    const size_t r = ps->r;
    double q = 0, c = 0;
    for (size_t j = 0; j < r; j++) {
        double wz = z[j];
        if (ps->W)
            wz = cblas_ddot((int)r, ps->W + j * r, 1, z, 1);
        q += z[j] * wz;
        c += z[j] * v[j];
    }
    return q + 2 * a * c + a * a * nu;
}

/* A = rows · S' with S' = P^{1/2} S0 P^{1/2} the second moment of y_0
 * (S0 = I/p when NULL), and tr S0. */
static double start_rows(const sgdstab_param_space *ps, const double *S0,
                         double *A, double *scaled)
{
    const size_t r = ps->r, p = ps->p;
    double trace = 0;
    scaled_rows(ps, 1, scaled);
    if (S0) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)r, (int)p,
                    (int)p, 1.0, scaled, (int)p, S0, (int)p, 0.0, A, (int)p);
        for (size_t i = 0; i < p; i++)
            trace += S0[i * p + i];
    } else {
        memcpy(A, scaled, r * p * sizeof *A);
        cblas_dscal((int)(r * p), 1.0 / (double)p, A, 1);
        trace = 1;
    }
    for (size_t j = 0; j < r; j++)
        for (size_t i = 0; i < p; i++)
            A[j * p + i] *= ps->root ? ps->root[i] : 1;
    return trace;
}

/* The moments from A = rows·S': Z0 = A rowsᵀ, B = A P⁻¹ rowsᵀ
 * (= E z_0 (Qᵀ P⁻¹ y_0)ᵀ), cross = diag(B − Z0 W) and
 * E ν_0 = tr S0 − 2 tr B + tr(W Z0). */
static void start_moments(const sgdstab_param_space *ps, double trace_S,
                          const double *A, double *Z0, double *cross,
                          double *nu0)
{
    const size_t r = ps->r, p = ps->p;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)r, (int)r,
                (int)p, 1.0, A, (int)p, ps->rows, (int)p, 0.0, Z0, (int)r);
    for (size_t j = 0; j < r; j++)
        for (size_t l = j + 1; l < r; l++)
            Z0[j * r + l] = Z0[l * r + j] =
                0.5 * (Z0[j * r + l] + Z0[l * r + j]);
    double tr_B = 0, tr_WZ = 0;
    for (size_t j = 0; j < r; j++) {
        double b = 0, zw = 0;
        for (size_t i = 0; i < p; i++) {
            double P = ps->root ? ps->root[i] * ps->root[i] : 1;
            b += A[j * p + i] * ps->rows[j * p + i] / P;
        }
        for (size_t l = 0; l < r; l++)
            zw += Z0[j * r + l] * (ps->W ? ps->W[l * r + j] : l == j);
        cross[j] = ps->W ? b - zw : 0;
        tr_B += b;
        tr_WZ += zw;
    }
    /* Exactly 0 without null directions (the difference would leave
     * rounding noise that dominates once the moving part has decayed). */
    *nu0 = r == p ? 0 : fmax(trace_S - 2 * tr_B + tr_WZ, 0);
    if (r == p)
        memset(cross, 0, r * sizeof *cross);
}

int sgdstab_start_check(const sgdstab_reduced *red, int matrix,
                        int isotropic, sgdstab_error *err)
{
    if (matrix && red->from_gram)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "%s: a start S0 (p x p) "
                            "needs J: the Gram matrix does not see the "
                            "parameters", red->source);
    if (isotropic && !red->p)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "%s: the start S0 = I/p "
                            "needs the parameter count p, which this Gram "
                            "matrix's meta.json does not give (pass --params "
                            "P, or start at the minimum)", red->source);
    return SGDSTAB_OK;
}

int sgdstab_param_space_start(const sgdstab_param_space *ps,
                              const double *S0, double *Z0, double *cross,
                              double *nu0, sgdstab_error *err)
{
    const size_t r = ps->r, p = ps->p;
    memset(cross, 0, r * sizeof *cross);
    if (!ps->rows && (S0 || !p))
        return sgdstab_fail(err, SGDSTAB_EINVAL, "no parameter space to "
                            "start in (sgdstab_start_check)");
    if (!S0 && !ps->root) {  /* QᵀQ = I: exactly */
        memset(Z0, 0, r * r * sizeof *Z0);
        for (size_t j = 0; j < r; j++)
            Z0[j * r + j] = 1.0 / (double)p;
        *nu0 = (double)(p - r) / (double)p;
        return SGDSTAB_OK;
    }
    double *A = doubles(r * p);
    double *scaled = doubles(r * p);
    if (!A || !scaled) {
        free(A);
        free(scaled);
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory projecting "
                            "the initial second moment");
    }
    double trace_S = start_rows(ps, S0, A, scaled);
    start_moments(ps, trace_S, A, Z0, cross, nu0);
    free(A);
    free(scaled);
    return SGDSTAB_OK;
}

/* m2[t] += 2·a_t(shift)·Σ_j a_t(h_j)·cross_j + a_t(shift)²·ν0 and the
 * loss in its units (header comment). */
static int add_null_part(const sgdstab_reduced *red,
                         const sgdstab_config *cfg, const double *cross,
                         double nu0, size_t steps, double *m2, double *loss,
                         sgdstab_error *err)
{
    double *a = malloc((steps + 1) * sizeof *a);
    double *c = malloc((steps + 1) * sizeof *c);
    if (!a || !c) {
        free(a);
        free(c);
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory (evolve)");
    }
    const double one = 1;
    sgdstab_mean_path(cfg, &red->curvature_shift, &one, 1, steps, a);
    sgdstab_mean_path(cfg, red->lambda, cross, red->r, steps, c);
    for (size_t t = 0; t <= steps; t++) {
        m2[t] += 2 * a[t] * c[t] + a[t] * a[t] * nu0;
        loss[t] *= 0.5 * cfg->loss_scale;
    }
    free(a);
    free(c);
    return SGDSTAB_OK;
}

int sgdstab_evolve(const sgdstab_problem *prob, const sgdstab_reduced *red,
                   const sgdstab_config *cfg, const sgdstab_start *start,
                   const double *noise, size_t steps, double *m2,
                   double *loss, sgdstab_error *err)
{
    const size_t r = red->r;
    const int at_minimum = start && start->at_minimum;
    int st = sgdstab_start_check(red, !at_minimum && start && start->S,
                                 !at_minimum && !(start && start->S), err);
    if (st)
        return st;
    sgdstab_param_space ps;
    if ((st = sgdstab_param_space_make(prob, red, cfg, &ps, err)))
        return st;
    double *Z0 = doubles(r * r);
    double *cross = doubles(r);
    double nu0 = 0;
    sgdstab_moments *m = NULL;
    if (!Z0 || !cross)
        st = sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory (evolve)");
    if (!st && start && start->at_minimum) {
        memset(Z0, 0, r * r * sizeof *Z0);
        memset(cross, 0, r * sizeof *cross);
    } else if (!st) {
        st = sgdstab_param_space_start(&ps, start ? start->S : NULL, Z0,
                                       cross, &nu0, err);
    }
    if (!st && !(m = sgdstab_moments_alloc(red, err)))
        st = SGDSTAB_ENOMEM;
    if (!st)
        st = sgdstab_moments_evolve(m, cfg, Z0, noise, ps.W, steps, m2, loss,
                                    err);
    if (!st)
        st = add_null_part(red, cfg, cross, nu0, steps, m2, loss, err);
    sgdstab_moments_free(m);
    free(Z0);
    free(cross);
    sgdstab_param_space_free(&ps);
    return st;
}
