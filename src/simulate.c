#include "sgdstab/simulate.h"

#include <gsl/gsl_randist.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "minibatch.h"
#include "sgdstab/fit.h"
#include "sgdstab/param_space.h"
#include "sgdstab/plan.h"

const double SGDSTAB_EXIT_QUANTILES[5] = {0.1, 0.25, 0.5, 0.75, 0.9};

/* Per-group accumulators (Welford). */
typedef struct {
    size_t first, count;
    double *n2_mean, *n2_m2, *l_mean, *l_m2;   /* steps + 1 each */
} sim_group;

typedef struct {
    mb_problem pb;
    sgdstab_param_space space;  /* ‖δ‖² from z (param_space.h) */
    double *null_path;    /* steps + 1: w_t/w_0 without noise (plan.h) */
    sgdstab_sim_result *res;
    sim_group group[MB_GROUPS];
    size_t ngroups;
} sim_state;

double sgdstab_sim_work(const sgdstab_reduced *red,
                        const sgdstab_sim_options *o)
{
    /* A step: the batch's Φ_ξ z and Φ_ξᵀ(·) (2·B·k·r each), and the dense
     * H − G part (2r²) when H is supplied. */
    double r = (double)red->r, p = (double)red->p;
    double step = 4.0 * (double)o->config.batch * (double)red->k * r +
                  (red->G ? 2 * r * r : 0) + r;
    /* With a preconditioner ‖δ‖² = zᵀWz + … (2r²) and the start is split
     * in parameter space (6·p·r), as with a given S_0 (2p² more). */
    int split = red->preconditioned || o->init == SGDSTAB_INIT_MATRIX;
    if (red->preconditioned)
        step += 2 * r * r;
    double start = split ? 6 * p * r +
                               (o->init == SGDSTAB_INIT_MATRIX ? 2 * p * p : 0)
                         : r;
    return (double)o->runs * ((double)o->steps * step + start);
}

int sgdstab_work_check(double flops, double max, const char *what,
                       sgdstab_error *err)
{
    if (!(flops > max))
        return SGDSTAB_OK;
    return sgdstab_fail(err, SGDSTAB_EINVAL, "%s would take about %.3g "
                        "floating-point operations, more than the %g "
                        "sgdstab undertakes (%.0f minutes at 1 GFLOP/s)", what,
                        flops, max, max / 1e9 / 60);
}

int sgdstab_sim_check(const sgdstab_reduced *red,
                      const sgdstab_sim_options *o, sgdstab_error *err)
{
    int st = sgdstab_config_check(&o->config, red, SGDSTAB_USES_LR |
                                  SGDSTAB_USES_BATCH, err);
    if (st)
        return st;
    if (o->runs < 2)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "need at least 2 runs");
    if (o->init == SGDSTAB_INIT_MATRIX && !o->init_moment)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "no initial second moment");
    if (o->noise != SGDSTAB_NOISE_NONE && !red->p)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "%s: injected noise in "
                            "every direction needs the parameter count p, "
                            "which this Gram matrix's meta.json does not give "
                            "(pass --params P)", red->source);
    if ((st = sgdstab_start_check(red, o->init == SGDSTAB_INIT_MATRIX, 0,
                                  err)))
        return st;
    if (o->init == SGDSTAB_INIT_MATRIX && o->init_moment->p != red->p)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "the initial second moment "
                            "is %zu x %zu, the problem has p = %zu",
                            o->init_moment->p, o->init_moment->p, red->p);
    if (o->noise != SGDSTAB_NOISE_NONE &&
        (!(o->noise_scale > 0) || !isfinite(o->noise_scale)))
        return sgdstab_fail(err, SGDSTAB_EINVAL, "noise scale must be a "
                            "positive number, not %g", o->noise_scale);
    if (o->noise == SGDSTAB_NOISE_PARETO &&
        (!(o->noise_alpha > 0) || !isfinite(o->noise_alpha)))
        return sgdstab_fail(err, SGDSTAB_EINVAL, "tail index must be a "
                            "positive number, not %g", o->noise_alpha);
    if (!(o->label_noise >= 0) || !isfinite(o->label_noise))
        return sgdstab_fail(err, SGDSTAB_EINVAL, "label noise must be a "
                            "number >= 0, not %g", o->label_noise);
    if (o->clip < 0 || !isfinite(o->clip) || o->radius < 0 ||
        !isfinite(o->radius))
        return sgdstab_fail(err, SGDSTAB_EINVAL, "clip and radius must be "
                            "positive numbers");
    if (o->lyapunov && (o->noise != SGDSTAB_NOISE_NONE || o->clip > 0 ||
                        o->radius > 0 || o->residuals ||
                        o->label_noise > 0 || o->steps < 10 ||
                        o->init == SGDSTAB_INIT_ZERO))
        return sgdstab_fail(err, SGDSTAB_EINVAL, "the Lyapunov exponent is "
                            "that of the linear product: no injected noise, "
                            "residual gradients, label noise, clipping or "
                            "radius, a start off the minimum, and at least "
                            "10 steps");
    const sgdstab_optimizer *op = &o->config.optimizer;
    if ((sgdstab_optimizer_lifted(op) || op->weight_decay > 0 ||
         sgdstab_optimizer_preconditioned(op)) &&
        (o->noise != SGDSTAB_NOISE_NONE || o->clip > 0 || o->radius > 0))
        return sgdstab_fail(err, SGDSTAB_EINVAL, "injected noise, clipping "
                            "and exit radii are for plain SGD without weight "
                            "decay or preconditioner");
    return sgdstab_work_check(sgdstab_sim_work(red, o), SGDSTAB_WORK_MAX,
                              o->radius > 0
                              ? "--runs x --steps (each run until it exits, "
                                "at most --steps)"
                              : "--runs x --steps", err);
}

/* (c/2)·zᵀ G z. */
static double loss_of(const mb_problem *pb, const double *z)
{
    const size_t r = pb->r;
    const double *G = pb->red->G;
    double s = 0;
    for (size_t j = 0; j < r; j++) {
        if (G) {
            double row = 0;
            for (size_t l = 0; l < r; l++)
                row += G[j * r + l] * z[l];
            s += z[j] * row;
        } else {
            s += pb->red->lambda[j] * z[j] * z[j];
        }
    }
    return 0.5 * pb->c * s;
}

/* δ_0 as z, v and ν (param_space.h; v = 0 without a preconditioner, ν
 * the squared norm of the part in directions that never move). */
static void draw_init(const mb_problem *pb, const sgdstab_param_space *ps,
                      mb_work *w, double *z, double *v, double *nu)
{
    const size_t r = pb->r, p = pb->p;
    const sgdstab_sim_options *o = pb->opt;
    memset(v, 0, r * sizeof *v);
    *nu = 0;
    if (o->init == SGDSTAB_INIT_ZERO) {
        memset(z, 0, r * sizeof *z);
        return;
    }
    if (o->init == SGDSTAB_INIT_ISOTROPIC && !ps->root) {
        /* QᵀQ = I: z and the rest are independent, N(0, I/p) each. */
        double sd = 1 / sqrt((double)p);
        for (size_t j = 0; j < r; j++)
            z[j] = gsl_ran_gaussian(w->rng, sd);
        if (pb->nnull)
            *nu = gsl_ran_chisq(w->rng, (double)pb->nnull) / (double)p;
        return;
    }
    double *g = w->gp, *delta = w->gp + 2 * p;  /* split's work: gp, 2p */
    for (size_t i = 0; i < p; i++)
        g[i] = gsl_ran_gaussian(w->rng, 1.0);
    for (size_t i = 0; i < p; i++) {
        double d = 0;
        if (o->init == SGDSTAB_INIT_MATRIX)
            for (size_t j = 0; j < p; j++)
                d += o->init_moment->L[i * p + j] * g[j];
        delta[i] = o->init == SGDSTAB_INIT_MATRIX ? d : g[i] / sqrt((double)p);
    }
    sgdstab_param_space_split(ps, delta, z, v, nu, w->gp);
}

/* One SGD step on (z, |w|).  Noise Z = (Z_range, a along w, the rest of
 * squared norm o2): a uniform direction in R^p split by isotropy. */
static void sgd_step(const mb_problem *pb, mb_work *w, double *z,
                     double *wnorm)
{
    const sgdstab_sim_options *o = pb->opt;
    const size_t r = pb->r;
    double scale, *g = w->g;
    size_t m = mb_draw_batch(pb, w, &scale);
    mb_gradient(pb, w, m, scale, z, g);
    mb_gradient_noise(pb, w, m, scale, g);
    double along = 0, o2 = 0;  /* noise in the null space */
    if (o->noise != SGDSTAB_NOISE_NONE) {
        double norm2 = 0;  /* of a standard Gaussian vector of R^p */
        for (size_t j = 0; j < r; j++) {
            w->gp[j] = gsl_ran_gaussian(w->rng, 1.0);
            norm2 += w->gp[j] * w->gp[j];
        }
        if (pb->nnull) {
            along = gsl_ran_gaussian(w->rng, 1.0);
            o2 = pb->nnull > 1 ? gsl_ran_chisq(w->rng, (double)(pb->nnull - 1))
                               : 0;
            norm2 += along * along + o2;
        }
        double f = o->noise_scale;
        if (o->noise == SGDSTAB_NOISE_PARETO)
            f *= pow(1 - gsl_rng_uniform(w->rng), -1 / o->noise_alpha) /
                 sqrt(norm2);
        for (size_t j = 0; j < r; j++)
            g[j] -= f * w->gp[j];
        along *= f;
        o2 *= f * f;
    }
    /* The step is −η·(g − Z): range part η·g, null part −η·Z_null. */
    double eta = o->config.lr, step2 = 0;
    for (size_t j = 0; j < r; j++)
        step2 += g[j] * g[j];
    step2 = eta * eta * (step2 + along * along + o2);
    double shrink = o->clip > 0 && step2 > o->clip * o->clip
                        ? o->clip / sqrt(step2)
                        : 1;
    double f = eta * shrink;
    for (size_t j = 0; j < r; j++)
        z[j] -= f * g[j];
    if (o->noise != SGDSTAB_NOISE_NONE && pb->nnull) {
        double a = *wnorm + f * along;
        *wnorm = sqrt(a * a + f * f * o2);
    }
}

/* One step of the optimizer with a buffer, as torch.optim takes it, on the
 * (transformed, reduced) problem: g = c·H_ξ z (coupled weight decay is in
 * H), buf ← β·buf + s·g (the whole g on SGD's first step), then
 * z ← κ·z − η·buf, or κ·z − η·(g + β·buf) for Nesterov. */
static void optimizer_step(const mb_problem *pb, mb_work *w, double *z,
                           int first)
{
    const sgdstab_config *cfg = &pb->opt->config;
    const sgdstab_optimizer *op = &cfg->optimizer;
    const size_t r = pb->r;
    const double beta = op->momentum, eta = cfg->lr;
    const double s = first && op->kind == SGDSTAB_OPTIMIZER_SGD
                         ? 1
                         : sgdstab_optimizer_buffer_gain(op);
    const double kappa =
        op->kind == SGDSTAB_OPTIMIZER_ADAMW ? 1 - eta * op->weight_decay : 1;
    double scale, *g = w->g;
    size_t m = mb_draw_batch(pb, w, &scale);
    mb_gradient(pb, w, m, scale, z, g);
    mb_gradient_noise(pb, w, m, scale, g);
    for (size_t j = 0; j < r; j++) {
        w->buf[j] = beta * w->buf[j] + s * g[j];
        double step = op->nesterov ? g[j] + beta * w->buf[j] : w->buf[j];
        z[j] = kappa * z[j] - eta * step;
    }
}

static double norm2_of(const double *z, size_t r, double wnorm)
{
    double s = wnorm * wnorm;
    for (size_t j = 0; j < r; j++)
        s += z[j] * z[j];
    return s;
}

/* Welford update of (mean, M2) with the run's value x, the run being the
 * count-th of its group. */
static void welford(double *mean, double *m2, double x, size_t count)
{
    double d = x - *mean;
    *mean += d / (double)count;
    *m2 += d * (x - *mean);
}

/* ‖u‖ of the state u = (z, buffer); u scaled to norm 1. */
static double renormalize(size_t r, int lifted, double *z, double *buf)
{
    double n2 = 0;
    for (size_t j = 0; j < r; j++)
        n2 += z[j] * z[j] + (lifted ? buf[j] * buf[j] : 0);
    double norm = sqrt(n2);
    for (size_t j = 0; j < r && norm > 0; j++) {
        z[j] /= norm;
        buf[j] /= norm;
    }
    return norm;
}

/* One run's estimate of the top Lyapunov exponent (simulate.h). */
static double lyapunov_run(const mb_problem *pb, mb_work *w, double *z)
{
    const sgdstab_sim_options *o = pb->opt;
    const size_t r = pb->r, T = o->steps, burn = T / 10;
    const int lifted = sgdstab_optimizer_lifted(&o->config.optimizer);
    double wnorm = 0, sum = 0;
    memset(w->buf, 0, r * sizeof *w->buf);
    if (!(renormalize(r, lifted, z, w->buf) > 0))
        return NAN;
    for (size_t t = 1; t <= T; t++) {
        if (lifted)
            optimizer_step(pb, w, z, t == 1);
        else
            sgd_step(pb, w, z, &wnorm);
        double norm = renormalize(r, lifted, z, w->buf);
        if (!(norm > 0) || !isfinite(norm))
            return NAN;
        if (t > burn)
            sum += log(norm);
    }
    return sum / (double)(T - burn);
}

static void run_group(void *ctx, mb_work *w, size_t gi)
{
    sim_state *st = ctx;
    const mb_problem *pb = &st->pb;
    const sgdstab_sim_options *o = pb->opt;
    sim_group *grp = &st->group[gi];
    const size_t r = pb->r, T = o->steps;
    for (size_t run = grp->first; run < grp->first + grp->count; run++) {
        size_t nth = run - grp->first + 1;
        mb_start_run(pb, w, run);
        double nu, *z = w->z;
        draw_init(pb, &st->space, w, z, w->v, &nu);
        double wnorm = sqrt(nu);  /* v = 0 with noise or a radius */
        if (o->radius > 0) {
            size_t exit = 0;
            for (size_t t = 1; t <= T && !exit; t++) {
                sgd_step(pb, w, z, &wnorm);
                double n2 = norm2_of(z, r, wnorm);
                if (n2 > o->radius * o->radius || !isfinite(n2))
                    exit = t;
            }
            st->res->exit_step[run] = exit;
            continue;
        }
        if (o->lyapunov) {
            st->res->lyapunov[run] = lyapunov_run(pb, w, z);
            continue;
        }
        const int lifted = sgdstab_optimizer_lifted(&o->config.optimizer);
        memset(w->buf, 0, r * sizeof *w->buf);
        for (size_t t = 0; t <= T; t++) {
            if (t > 0 && lifted)
                optimizer_step(pb, w, z, t == 1);
            else if (t > 0)
                sgd_step(pb, w, z, &wnorm);
            /* Without injected noise the null part only decays (plan.h). */
            double n2 = o->noise == SGDSTAB_NOISE_NONE
                            ? sgdstab_param_space_norm2(&st->space, z, w->v,
                                                        nu, st->null_path[t])
                            : norm2_of(z, r, wnorm);
            welford(&grp->n2_mean[t], &grp->n2_m2[t], n2, nth);
            welford(&grp->l_mean[t], &grp->l_m2[t], loss_of(pb, z), nth);
        }
    }
}

void sgdstab_sim_result_free(sgdstab_sim_result *res)
{
    if (!res)
        return;
    free(res->norm2_mean);
    free(res->norm2_sd);
    free(res->loss_mean);
    free(res->loss_sd);
    free(res->group_norm2_mean);
    free(res->group_runs);
    free(res->exit_step);
    free(res->lyapunov);
    free(res);
}

/* Combine the groups' (mean, M2) in group order (Chan et al.) into the
 * result's means and standard deviations. */
static void combine(sim_state *st)
{
    sgdstab_sim_result *res = st->res;
    size_t T1 = res->steps + 1;
    for (size_t t = 0; t < T1; t++) {
        double nm = 0, nq = 0, lm = 0, lq = 0, count = 0;
        for (size_t g = 0; g < st->ngroups; g++) {
            const sim_group *grp = &st->group[g];
            double cg = (double)grp->count, tot = count + cg;
            double dn = grp->n2_mean[t] - nm, dl = grp->l_mean[t] - lm;
            nm += dn * cg / tot;
            lm += dl * cg / tot;
            nq += grp->n2_m2[t] + dn * dn * count * cg / tot;
            lq += grp->l_m2[t] + dl * dl * count * cg / tot;
            count = tot;
            res->group_norm2_mean[g * T1 + t] = grp->n2_mean[t];
        }
        res->norm2_mean[t] = nm;
        res->loss_mean[t] = lm;
        /* Rounding may leave M2 slightly negative; overflow leaves NaN or
         * ∞, which must stay visible (no confidence interval of 0). */
        res->norm2_sd[t] = nq < 0 ? 0 : sqrt(nq / (count - 1));
        res->loss_sd[t] = lq < 0 ? 0 : sqrt(lq / (count - 1));
    }
}

/* The statistics are numbers, or the run is an error: growing ‖δ_t‖²
 * overflows a double within a few hundred steps far above η*. */
static int check_finite(const sgdstab_reduced *red,
                        const sgdstab_sim_result *res, sgdstab_error *err)
{
    for (size_t t = 0; t <= res->steps; t++) {
        int mean = isfinite(res->norm2_mean[t]) && isfinite(res->loss_mean[t]);
        if (!mean || !isfinite(res->norm2_sd[t]) || !isfinite(res->loss_sd[t]))
            return sgdstab_fail(err, SGDSTAB_ENUMERIC, "%s: the %s of "
                                "|delta_t|^2 over the runs overflows a double "
                                "at step %zu: ask for fewer steps",
                                red->source, mean ? "spread" : "mean", t);
    }
    return SGDSTAB_OK;
}

int sgdstab_simulate(const sgdstab_reduced *red, const sgdstab_problem *prob,
                     const sgdstab_sim_options *opt,
                     sgdstab_sim_result **out, sgdstab_progress_fn progress,
                     void *ctx, sgdstab_error *err)
{
    *out = NULL;
    int status = sgdstab_sim_check(red, opt, err);
    if (!status)  /* the Lyapunov exponent draws its own start */
        status = sgdstab_start_check(red, 0, opt->init ==
                                     SGDSTAB_INIT_ISOTROPIC && !opt->lyapunov,
                                     err);
    if (status)
        return status;
    sim_state *st = calloc(1, sizeof *st);
    sgdstab_sim_result *res = calloc(1, sizeof *res);
    if (!st || !res) {
        free(st);
        free(res);
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory");
    }
    if ((status = mb_problem_make(&st->pb, red, opt, err)) ||
        (status = sgdstab_param_space_make(prob, red, &opt->config,
                                           &st->space, err)))
        goto done;
    st->res = res;
    res->steps = opt->steps;
    res->runs = opt->runs;
    res->groups = st->ngroups = mb_groups(opt->runs);
    size_t T1 = opt->steps + 1, G = st->ngroups;
    int bad = !(st->null_path = malloc(T1 * sizeof *st->null_path));
    const double one = 1;
    if (!bad)
        sgdstab_mean_path(&opt->config, &red->curvature_shift, &one, 1,
                          opt->steps, st->null_path);
    res->group_runs = malloc(G * sizeof *res->group_runs);
    bad |= !res->group_runs;
    if (opt->radius > 0) {
        bad |= !(res->exit_step = calloc(opt->runs, sizeof *res->exit_step));
    } else if (opt->lyapunov) {
        bad |= !(res->lyapunov = calloc(opt->runs, sizeof *res->lyapunov));
    } else {
        bad |= !(res->norm2_mean = malloc(T1 * sizeof(double)));
        bad |= !(res->norm2_sd = malloc(T1 * sizeof(double)));
        bad |= !(res->loss_mean = malloc(T1 * sizeof(double)));
        bad |= !(res->loss_sd = malloc(T1 * sizeof(double)));
        bad |= !(res->group_norm2_mean = malloc(G * T1 * sizeof(double)));
    }
    for (size_t g = 0; g < G && !bad; g++) {
        sim_group *grp = &st->group[g];
        grp->first = mb_group_first(opt->runs, g);
        grp->count = mb_group_first(opt->runs, g + 1) - grp->first;
        res->group_runs[g] = grp->count;
        if (opt->radius > 0 || opt->lyapunov)
            continue;
        bad |= !(grp->n2_mean = calloc(T1, sizeof(double)));
        bad |= !(grp->n2_m2 = calloc(T1, sizeof(double)));
        bad |= !(grp->l_mean = calloc(T1, sizeof(double)));
        bad |= !(grp->l_m2 = calloc(T1, sizeof(double)));
    }
    if (bad) {
        status = sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory for %zu "
                              "steps of statistics", opt->steps);
        goto done;
    }
    status = mb_parallel(&st->pb, opt->runs, opt->threads, run_group, st,
                         progress, ctx, "simulation", err);
    if (!status && opt->radius <= 0 && !opt->lyapunov) {
        combine(st);
        status = check_finite(red, res, err);
    }
done:
    for (size_t g = 0; g < MB_GROUPS; g++) {
        free(st->group[g].n2_mean);
        free(st->group[g].n2_m2);
        free(st->group[g].l_mean);
        free(st->group[g].l_m2);
    }
    mb_problem_free(&st->pb);
    free(st->null_path);
    sgdstab_param_space_free(&st->space);
    free(st);
    if (status)
        sgdstab_sim_result_free(res);
    else
        *out = res;
    return status;
}

double sgdstab_log_slope(const double *y, size_t from, size_t to)
{
    if (to <= from)
        return NAN;
    sgdstab_line_fit fit;
    sgdstab_fit_log_line(NULL, y + from, NULL, to - from + 1, &fit);
    return fit.slope;
}

void sgdstab_sim_growth_rate(const sgdstab_sim_result *res, size_t from,
                             size_t to, double *rate, double *stderr_)
{
    *rate = *stderr_ = NAN;
    if (!res->norm2_mean || to > res->steps)
        return;
    *rate = sgdstab_log_slope(res->norm2_mean, from, to);
    size_t G = res->groups, T1 = res->steps + 1;
    if (G < 2 || !isfinite(*rate))
        return;
    double *loo = malloc(T1 * sizeof *loo), *slope = malloc(G * sizeof *slope);
    if (!loo || !slope) {
        free(loo);
        free(slope);
        return;
    }
    /* Leave-one-group-out means, their slopes, the jackknife variance. */
    double mean = 0, R = (double)res->runs;
    for (size_t g = 0; g < G; g++) {
        double cg = (double)res->group_runs[g];
        for (size_t t = from; t <= to; t++)
            loo[t] = (R * res->norm2_mean[t] -
                      cg * res->group_norm2_mean[g * T1 + t]) / (R - cg);
        slope[g] = sgdstab_log_slope(loo, from, to);
        mean += slope[g] / (double)G;
    }
    double var = 0;
    for (size_t g = 0; g < G; g++)
        var += (slope[g] - mean) * (slope[g] - mean);
    *stderr_ = sqrt(var * (double)(G - 1) / (double)G);
    free(loo);
    free(slope);
}

void sgdstab_sim_lyapunov(const sgdstab_sim_result *res, double *mean,
                          double *stderr_)
{
    *mean = *stderr_ = NAN;
    if (!res->lyapunov)
        return;
    const size_t R = res->runs;
    double m = 0, q = 0;
    for (size_t i = 0; i < R; i++)
        m += res->lyapunov[i] / (double)R;
    for (size_t i = 0; i < R; i++)
        q += (res->lyapunov[i] - m) * (res->lyapunov[i] - m);
    *mean = m;
    *stderr_ = R > 1 ? sqrt(q / (double)(R - 1) / (double)R) : NAN;
}

void sgdstab_sim_time_average(const sgdstab_sim_result *res, size_t from,
                              size_t to, double *mean, double *stderr_)
{
    *mean = *stderr_ = NAN;
    if (!res->norm2_mean || to > res->steps || to < from)
        return;
    const size_t G = res->groups, T1 = res->steps + 1;
    const double len = (double)(to - from + 1), R = (double)res->runs;
    double m = 0, var = 0;
    for (size_t t = from; t <= to; t++)
        m += res->norm2_mean[t] / len;
    *mean = m;
    if (G < 2)
        return;
    /* The groups' averages, weighted by their runs, about the mean. */
    for (size_t g = 0; g < G; g++) {
        double a = 0, w = (double)res->group_runs[g] / R;
        for (size_t t = from; t <= to; t++)
            a += res->group_norm2_mean[g * T1 + t] / len;
        var += w * (a - m) * (a - m);
    }
    *stderr_ = sqrt(var * (double)G / (double)(G - 1) / (double)G);
}

static int compare_steps(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    x = x ? x : SIZE_MAX;  /* never exited: last */
    y = y ? y : SIZE_MAX;
    return (x > y) - (x < y);
}

void sgdstab_sim_exit_stats(const sgdstab_sim_result *res,
                            sgdstab_exit_stats *out)
{
    memset(out, 0, sizeof *out);
    size_t R = res->runs;
    size_t *sorted = res->exit_step ? malloc(R * sizeof *sorted) : NULL;
    out->mean = out->censored_mean = NAN;
    for (int q = 0; q < 5; q++)
        out->quantiles[q] = NAN;
    if (!sorted)
        return;
    memcpy(sorted, res->exit_step, R * sizeof *sorted);
    qsort(sorted, R, sizeof *sorted, compare_steps);
    double sum = 0;
    for (size_t i = 0; i < R; i++)
        if (sorted[i]) {
            out->exited++;
            sum += (double)sorted[i];
        }
    out->never_fraction = (double)(R - out->exited) / (double)R;
    out->mean = out->exited ? sum / (double)out->exited : NAN;
    double at_risk = sum + (double)(R - out->exited) * (double)res->steps;
    out->censored_mean = out->exited ? at_risk / (double)out->exited : NAN;
    for (int q = 0; q < 5; q++) {
        size_t idx = (size_t)ceil(SGDSTAB_EXIT_QUANTILES[q] * (double)R - 1e-9);
        idx = idx ? idx - 1 : 0;
        out->quantiles[q] = sorted[idx] ? (double)sorted[idx] : INFINITY;
    }
    free(sorted);
}
