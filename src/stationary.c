#include "sgdstab/stationary.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sgdstab/optimizer.h"
#include "sgdstab/param_space.h"
#include "sgdstab/plan.h"

enum { DEFAULT_MAX_ITERATIONS = 2000 };

/* g_i = Φ_iᵀ r_i (n×r), their mean and C's sample part. */
static void sample_gradients(const sgdstab_reduced *red, const double *R,
                             double *g, double *mean)
{
    const size_t n = red->n, k = red->k, r = red->r;
    memset(mean, 0, r * sizeof *mean);
    for (size_t i = 0; i < n; i++) {
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)k, (int)r, 1.0,
                    red->phi + i * k * r, (int)r, R + i * k, 1, 0.0,
                    g + i * r, 1);
        cblas_daxpy((int)r, 1.0 / (double)n, g + i * r, 1, mean, 1);
    }
}

int sgdstab_gradient_noise(const sgdstab_reduced *red,
                           const sgdstab_problem *prob,
                           const sgdstab_config *cfg, double sigma, double *C,
                           sgdstab_gradient_stats *stats, sgdstab_error *err)
{
    const size_t n = red->n, r = red->r;
    double a, b;
    if (!(sigma >= 0) || !isfinite(sigma))
        return sgdstab_fail(err, SGDSTAB_EINVAL, "the label noise must be a "
                            "finite number >= 0, not %g", sigma);
    int st = sgdstab_config_check(cfg, red, SGDSTAB_USES_BATCH, err);
    if (st || (st = sgdstab_batch_coefficients(cfg->sampling, n, cfg->batch,
                                               &a, &b, err)))
        return st;
    memset(C, 0, r * r * sizeof *C);
    sgdstab_gradient_stats s = {0, 0, 1};
    if (prob->R && r > 0) {
        double *g = malloc(n * r * sizeof *g), *mean = malloc(r * sizeof *mean);
        if (!g || !mean) {
            free(g);
            free(mean);
            return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory for "
                                "the per-sample gradients", red->source);
        }
        sample_gradients(red, prob->R, g, mean);
        /* C = b·(1/n) gᵀg − (1 − a)·ḡḡᵀ, both triangles. */
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)r, (int)n,
                    b / (double)n, g, (int)r, 0.0, C, (int)r);
        cblas_dsyr(CblasRowMajor, CblasUpper, (int)r, -(1 - a), mean, 1, C,
                   (int)r);
        for (size_t j = 0; j < r; j++)
            for (size_t l = 0; l < j; l++)
                C[j * r + l] = C[l * r + j];
        double m2 = cblas_ddot((int)(n * r), g, 1, g, 1) / (double)n;
        double mm = cblas_ddot((int)r, mean, 1, mean, 1);
        s.mean_norm = cfg->loss_scale * sqrt(mm);
        s.spread = cfg->loss_scale * sqrt(fmax(m2 - mm, 0));
        s.stationary_point =
            s.mean_norm <= SGDSTAB_STATIONARY_MEAN_RTOL * s.spread;
        free(g);
        free(mean);
    }
    /* Label noise: (σ²/B)·G. */
    double w = sigma * sigma / (double)cfg->batch;
    for (size_t j = 0; j < r && w > 0; j++)
        for (size_t l = 0; l < r; l++)
            C[j * r + l] += w * (red->G ? red->G[j * r + l]
                                        : (j == l ? red->lambda[j] : 0));
    if (stats)
        *stats = s;
    return SGDSTAB_OK;
}

int sgdstab_null_space_drift(const sgdstab_problem *prob,
                             const sgdstab_reduced *red,
                             const sgdstab_config *cfg, const double *C,
                             sgdstab_null_drift *out, sgdstab_error *err)
{
    memset(out, 0, sizeof *out);
    out->directions = sgdstab_undamped_directions(red, cfg);
    if (!out->directions || !C)
        return SGDSTAB_OK;
    sgdstab_param_space ps;
    int st = sgdstab_param_space_make(prob, red, cfg, &ps, err);
    if (st)
        return st;
    const size_t r = red->r;
    double trace = 0;
    for (size_t j = 0; j < r; j++)
        for (size_t l = 0; l < r; l++)
            if (red->lambda[j] == 0 && red->lambda[l] == 0)
                trace += (ps.W ? ps.W[j * r + l] : (j == l)) * C[l * r + j];
    sgdstab_step_map map;
    sgdstab_step_map_init(&cfg->optimizer, cfg->lr, cfg->loss_scale, &map);
    const double gain = map.step / (1 - map.beta);
    out->rate = gain * gain * trace;
    sgdstab_param_space_free(&ps);
    return SGDSTAB_OK;
}

/* D = ℒ₁⁻¹ on the packed coordinates; SGDSTAB_ENUMERIC unless every entry
 * is positive (η beyond the noise-free limit). */
static int inverse_gains(const sgdstab_reduced *red, const sgdstab_config *cfg,
                         double *D, sgdstab_error *err)
{
    sgdstab_step_map map;
    sgdstab_step_map_init(&cfg->optimizer, cfg->lr, cfg->loss_scale, &map);
    const size_t r = red->r;
    for (size_t j = 0, a = 0; j < r; j++)
        for (size_t l = j; l < r; l++, a++) {
            double g = sgdstab_step_map_gain(&map, red->lambda[j],
                                             red->lambda[l], 1);
            D[a] = 1 / g;
            if (!(g > 0) || !isfinite(D[a]))
                return sgdstab_fail(err, SGDSTAB_ENUMERIC, "%s: eta = %g is "
                                    "beyond the noise-free limit: the mean "
                                    "itself diverges, there is no stationary "
                                    "state", red->source, cfg->lr);
        }
    return SGDSTAB_OK;
}

typedef struct {
    sgdstab_moments *m;
    const double *D;
    double b;
    int subtract_gzg;
    int unpreconditioned;
    size_t dim;
} operator_ctx;

/* The preconditioner ℒ₁: x/D (x itself for plain conjugate gradients). */
static double precondition(const operator_ctx *op, size_t a, double x)
{
    return op->unpreconditioned ? x : x / op->D[a];
}

/* y = D∘x − b𝒩(x). */
static void apply(const operator_ctx *op, const double *x, double *y)
{
    sgdstab_moments_noise(op->m, op->subtract_gzg, NULL, x, y);
    for (size_t a = 0; a < op->dim; a++)
        y[a] = op->D[a] * x[a] - op->b * y[a];
}

/* Preconditioned conjugate gradients from x = 0 (work: 3·dim). */
static int conjugate_gradients(const operator_ctx *op, const double *rhs,
                               size_t max_it, double *x, double *work,
                               sgdstab_stationary_info *info,
                               const char *source, sgdstab_error *err)
{
    const size_t dim = op->dim;
    double *res = work, *p = work + dim, *Ap = work + 2 * dim;
    double norm_rhs = cblas_dnrm2((int)dim, rhs, 1), rz = 0;
    memset(x, 0, dim * sizeof *x);
    memcpy(res, rhs, dim * sizeof *res);
    for (size_t a = 0; a < dim; a++) {
        p[a] = precondition(op, a, res[a]);
        rz += res[a] * p[a];
    }
    info->iterations = 0;
    info->converged = norm_rhs == 0;
    while (!info->converged && info->iterations < max_it) {
        apply(op, p, Ap);
        double pAp = cblas_ddot((int)dim, p, 1, Ap, 1);
        if (!(pAp > 0))
            return sgdstab_fail(err, SGDSTAB_ENUMERIC, "%s: the stationary "
                                "system is not positive definite (rho >= 1): "
                                "there is no stationary state", source);
        double alpha = rz / pAp, rz_next = 0;
        cblas_daxpy((int)dim, alpha, p, 1, x, 1);
        cblas_daxpy((int)dim, -alpha, Ap, 1, res, 1);
        info->iterations++;
        info->converged = cblas_dnrm2((int)dim, res, 1) <=
                          SGDSTAB_STATIONARY_RTOL * norm_rhs;
        for (size_t a = 0; a < dim; a++)
            rz_next += res[a] * precondition(op, a, res[a]);
        double beta = rz_next / rz;
        rz = rz_next;
        for (size_t a = 0; a < dim; a++)
            p[a] = precondition(op, a, res[a]) + beta * p[a];
    }
    /* The residual recomputed, not the recurrence's. */
    apply(op, x, Ap);
    cblas_daxpy((int)dim, -1.0, rhs, 1, Ap, 1);
    info->relative_residual =
        norm_rhs > 0 ? cblas_dnrm2((int)dim, Ap, 1) / norm_rhs : 0;
    return SGDSTAB_OK;
}

int sgdstab_stationary_solve(sgdstab_moments *m, const sgdstab_reduced *red,
                             const sgdstab_config *cfg, const double *C,
                             const sgdstab_stationary_options *opt,
                             double *W, sgdstab_stationary_info *info,
                             sgdstab_error *err)
{
    memset(info, 0, sizeof *info);
    double a, b;
    int st = sgdstab_config_check(cfg, red, SGDSTAB_USES_LR |
                                  SGDSTAB_USES_BATCH | SGDSTAB_USES_STEP_MAP,
                                  err);
    if (st || (st = sgdstab_batch_coefficients(cfg->sampling, red->n,
                                               cfg->batch, &a, &b, err)))
        return st;
    size_t undamped = sgdstab_undamped_directions(red, cfg);
    if (undamped)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "%s: H has curvature 0 on "
                            "%zu direction%s J moves: the noise there is not "
                            "damped, and no stationary state exists",
                            red->source, undamped, undamped > 1 ? "s" : "");
    const size_t r = red->r, dim = sgdstab_sym_dim(r);
    double *buf = malloc((dim ? 6 * dim : 1) * sizeof *buf);
    if (!buf)
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory for the "
                            "stationary solve", red->source);
    double *D = buf, *rhs = buf + dim, *x = buf + 2 * dim;
    operator_ctx op = {m, D, b, cfg->sampling != SGDSTAB_SAMPLING_BERNOULLI,
                       opt && opt->unpreconditioned, dim};
    size_t max_it = opt && opt->max_iterations ? opt->max_iterations
                                               : DEFAULT_MAX_ITERATIONS;
    st = inverse_gains(red, cfg, D, err);
    if (!st) {
        sgdstab_sym_pack(r, C, rhs);
        st = conjugate_gradients(&op, rhs, max_it, x, buf + 3 * dim, info,
                                 red->source, err);
    }
    if (!st)
        sgdstab_sym_unpack(r, x, W);
    free(buf);
    return st;
}

/* Ĥ = diag(λ) − shift·QᵀP⁻¹Q (shift·I without a preconditioner): the
 * loss's own curvature on the reduced space, weight decay's taken out. */
static void data_curvature(const sgdstab_reduced *red,
                           const sgdstab_param_space *ps, double *Hd)
{
    const size_t r = red->r;
    for (size_t j = 0; j < r; j++)
        for (size_t l = 0; l < r; l++)
            Hd[j * r + l] = (j == l ? red->lambda[j] : 0) -
                            red->curvature_shift *
                                (ps->W ? ps->W[j * r + l] : (j == l));
}

int sgdstab_stationary_summarize(const sgdstab_problem *prob,
                                 const sgdstab_reduced *red,
                                 const sgdstab_config *cfg, const double *W,
                                 sgdstab_stationary_summary *out,
                                 sgdstab_error *err)
{
    memset(out, 0, sizeof *out);
    const size_t r = red->r, p = red->p, rr = r * r;
    sgdstab_param_space ps;
    int st = sgdstab_param_space_make(prob, red, cfg, &ps, err);
    if (st || r == 0)
        goto done;
    double *buf = malloc((4 * rr + r * p) * sizeof *buf);
    if (!buf) {
        st = sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory for the "
                          "stationary summary", red->source);
        goto done;
    }
    double *Hd = buf, *U = buf + rr, *A = buf + 2 * rr, *B = buf + 3 * rr;
    data_curvature(red, &ps, Hd);
    sgdstab_param_space_gram(&ps, 1, U, buf + 4 * rr);  /* QᵀPQ */
    const double c = cfg->loss_scale;
    for (size_t i = 0; i < rr; i++) {
        out->second_moment += (ps.W ? ps.W[i] : (i % (r + 1) == 0)) * W[i];
        out->excess_loss += 0.5 * c * Hd[i] * W[i];
    }
    /* E‖∇L‖² = c² tr(Ĥ U Ĥ W): A = ĤU, B = AĤ. */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)r, (int)r,
                (int)r, 1.0, Hd, (int)r, U, (int)r, 0.0, A, (int)r);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)r, (int)r,
                (int)r, 1.0, A, (int)r, Hd, (int)r, 0.0, B, (int)r);
    for (size_t i = 0; i < rr; i++)
        out->gradient_norm_sq += c * c * B[i] * W[i];
    free(buf);
done:
    sgdstab_param_space_free(&ps);
    return st;
}
