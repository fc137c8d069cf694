#include "sgdstab/epoch.h"

#include <cblas.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_roots.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "minibatch.h"
#include "symeig.h"

int sgdstab_epoch_check(const sgdstab_reduced *red,
                        const sgdstab_sim_options *o, sgdstab_error *err)
{
    if (o->noise != SGDSTAB_NOISE_NONE || o->clip > 0 || o->radius > 0 ||
        o->residuals || o->label_noise > 0)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "the epoch map is that of "
                            "plain SGD: no injected noise, residual "
                            "gradients, label noise, clipping or exit "
                            "radius");
    int st = sgdstab_config_check(&o->config, red, SGDSTAB_USES_LR |
                                  SGDSTAB_USES_BATCH | SGDSTAB_USES_EPOCH_MAP,
                                  err);
    if (st)
        return st;
    if (red->r == 0)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "J is zero: no direction "
                            "moves, nothing to estimate");
    return sgdstab_sim_check(red, o, err);
}

double sgdstab_epoch_work(const sgdstab_reduced *red,
                          const sgdstab_sim_options *o, int threshold)
{
    /* Per sampled epoch: L steps on an r×r product (4·B·k·r² each) and
     * its r⁴ outer product; the threshold evaluates about 40 rates. */
    double r = (double)red->r,
           L = (double)sgdstab_epoch_steps(red->n, o->config.batch);
    double epoch = L * 4.0 * (double)o->config.batch * (double)red->k * r * r +
                   r * r * r * r;
    return (double)o->runs * epoch * (threshold ? 40 : 1);
}

/* The sampled epochs: row j of T (N × r²) is M_jᵀ, row-major. */
typedef struct {
    mb_problem pb;
    size_t L, N, r;
    double *T;
} epoch_state;

size_t sgdstab_epoch_steps(size_t n, size_t batch)
{
    return batch >= n ? 1 : (n + batch - 1) / batch;
}

/* M_jᵀ for the runs of group g: column c of M = row c of M_jᵀ, each step
 * z ← z − η H_ξ z for every column with the same batch. */
static void sample_group(void *ctx, mb_work *w, size_t g)
{
    epoch_state *st = ctx;
    const mb_problem *pb = &st->pb;
    const size_t r = st->r, r2 = r * r;
    const double eta = pb->opt->config.lr;
    size_t first = mb_group_first(st->N, g);
    size_t last = mb_group_first(st->N, g + 1);
    for (size_t j = first; j < last; j++) {
        double *Mt = st->T + j * r2;
        memset(Mt, 0, r2 * sizeof *Mt);
        for (size_t c = 0; c < r; c++)
            Mt[c * r + c] = 1;
        mb_start_run(pb, w, j);
        for (size_t t = 0; t < st->L; t++) {
            double scale;
            size_t m = mb_draw_batch(pb, w, &scale);
            for (size_t c = 0; c < r; c++) {
                double *z = Mt + c * r;
                mb_gradient(pb, w, m, scale, z, w->g);
                for (size_t i = 0; i < r; i++)
                    z[i] -= eta * w->g[i];
            }
        }
    }
}

/* The estimated map on Sym(r) in the orthonormal basis E_kk = e_k e_kᵀ,
 * E_kl = (e_k e_lᵀ + e_l e_kᵀ)/√2, from C = (1/N) Σ vec(M_jᵀ) vec(M_jᵀ)ᵀ
 * (upper triangle): the map S ↦ avg M S Mᵀ has the Kronecker entries
 * F[(a,b),(c,d)] = avg M_ac M_bd = C[(c,a),(d,b)], its adjoint
 * S ↦ avg Mᵀ S M has C[(a,c),(b,d)]; K is their average restricted. */
static void symmetric_map(const double *C, size_t r, double *K)
{
    const size_t r2 = r * r, m = r * (r + 1) / 2;
#define CAT(x, y) ((x) <= (y) ? C[(x) * r2 + (y)] : C[(y) * r2 + (x)])
#define F(a, b, c, d) \
    (0.5 * (CAT((c) * r + (a), (d) * r + (b)) + CAT((a) * r + (c), (b) * r + (d))))
    size_t row = 0;
    for (size_t i = 0; i < r; i++)
        for (size_t j = i; j < r; j++, row++) {
            double sij = i == j ? 0.5 : M_SQRT1_2;
            size_t col = 0;
            for (size_t k = 0; k < r; k++)
                for (size_t l = k; l < r; l++, col++) {
                    double skl = k == l ? 0.5 : M_SQRT1_2;
                    K[row * m + col] =
                        sij * skl * (F(i, j, k, l) + F(i, j, l, k) +
                                     F(j, i, k, l) + F(j, i, l, k));
                }
        }
#undef F
#undef CAT
}

/* The largest eigenvalue of the m×m symmetric K (destroyed).  All of
 * them are computed (dsyevd): the partial solver dsyevr can fail on the
 * one tight cluster a map near the identity has at tiny η. */
static int top_eigenvalue(double *K, size_t m, double *lambda,
                          sgdstab_error *err)
{
    double *w = malloc(m * sizeof *w);
    if (!w)
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory");
    int st = symeig_all(SYMEIG_DSYEVD, m, K, m, w, 0, err,
                        "the estimated epoch map");
    *lambda = w[m - 1];
    free(w);
    return st;
}

/* Sample the N epochs at the configured learning rate into st->T. */
static int sample_epochs(epoch_state *st, sgdstab_error *err)
{
    return mb_parallel(&st->pb, st->N, st->pb.opt->threads, sample_group, st,
                       NULL, NULL, "the epoch map", err);
}

/* ρ̂ from the sampled epochs, and its jackknife standard error over the
 * groups of epochs (leave one group out, recompute the largest eigenvalue:
 * this keeps the error of the top eigenvector, which a first-order
 * formula would miss when the top of the spectrum is clustered). */
static int radius_of(epoch_state *st, double *rho, double *rho_stderr,
                     sgdstab_error *err)
{
    const size_t r = st->r, r2 = r * r, m = r * (r + 1) / 2, N = st->N;
    const size_t G = mb_groups(N);
    double *C = malloc(r2 * r2 * sizeof *C);
    double *Kg = malloc(G * m * m * sizeof *Kg);
    double *K = malloc(2 * m * m * sizeof *K), *work = K + m * m;
    double loo[MB_GROUPS];
    int status = SGDSTAB_OK;
    if (!C || !Kg || !K) {
        status = sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory for the "
                              "estimated epoch map (r = %zu)", r);
        goto done;
    }
    /* K_g from the Gram matrix of group g; K = Σ_g (N_g/N) K_g. */
    memset(K, 0, m * m * sizeof *K);
    for (size_t g = 0; g < G; g++) {
        size_t first = mb_group_first(N, g), Ng = mb_group_first(N, g + 1) -
                                                  first;
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)r2, (int)Ng,
                    1.0 / (double)Ng, st->T + first * r2, (int)r2, 0.0, C,
                    (int)r2);
        symmetric_map(C, r, Kg + g * m * m);
        cblas_daxpy((int)(m * m), (double)Ng / (double)N, Kg + g * m * m, 1,
                    K, 1);
    }
    memcpy(work, K, m * m * sizeof *K);
    if ((status = top_eigenvalue(work, m, rho, err)))
        goto done;
    double mean = 0;
    for (size_t g = 0; g < G; g++) {
        double Ng = (double)(mb_group_first(N, g + 1) - mb_group_first(N, g));
        double rest = (double)N - Ng;
        for (size_t i = 0; i < m * m; i++)
            work[i] = ((double)N * K[i] - Ng * Kg[g * m * m + i]) / rest;
        if ((status = top_eigenvalue(work, m, &loo[g], err)))
            goto done;
        mean += loo[g] / (double)G;
    }
    double var = 0;
    for (size_t g = 0; g < G; g++)
        var += (loo[g] - mean) * (loo[g] - mean);
    *rho_stderr = sqrt(var * (double)(G - 1) / (double)G);
    if (!isfinite(*rho) || !isfinite(*rho_stderr))
        status = sgdstab_fail(err, SGDSTAB_ENUMERIC, "the epoch map overflowed "
                              "at learning rate %g",
                              st->pb.opt->config.lr);
done:
    free(C);
    free(Kg);
    free(K);
    return status;
}

static int state_make(epoch_state *st, const sgdstab_reduced *red,
                      const sgdstab_sim_options *opt, sgdstab_error *err)
{
    memset(st, 0, sizeof *st);
    int status = sgdstab_epoch_check(red, opt, err);
    if (status || (status = mb_problem_make(&st->pb, red, opt, err)))
        return status;
    st->L = sgdstab_epoch_steps(red->n, opt->config.batch);
    st->N = opt->runs;
    st->r = red->r;
    size_t r2 = st->r * st->r;
    if (st->N > SIZE_MAX / sizeof(double) / r2 ||
        !(st->T = malloc(st->N * r2 * sizeof *st->T))) {
        mb_problem_free(&st->pb);
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory for %zu "
                            "sampled epochs (r = %zu)", st->N, st->r);
    }
    return SGDSTAB_OK;
}

static void state_free(epoch_state *st)
{
    mb_problem_free(&st->pb);
    free(st->T);
}

/* ρ̂ at learning rate lr (the options' copy in the state is changed). */
static int estimate(epoch_state *st, sgdstab_sim_options *o, double lr,
                    double *rho, double *rho_stderr, sgdstab_error *err)
{
    o->config.lr = lr;
    int status = sample_epochs(st, err);
    return status ? status : radius_of(st, rho, rho_stderr, err);
}

int sgdstab_epoch_estimate_at(const sgdstab_reduced *red,
                              const sgdstab_sim_options *opt,
                              sgdstab_epoch_estimate *out, sgdstab_error *err)
{
    memset(out, 0, sizeof *out);
    sgdstab_sim_options o = *opt;
    epoch_state st;
    int status = state_make(&st, red, &o, err);
    if (status)
        return status;
    out->steps = st.L;
    out->samples = st.N;
    status =
        estimate(&st, &o, o.config.lr, &out->radius, &out->radius_stderr, err);
    if (!status) {
        out->rate_per_step = log(out->radius) / (double)st.L;
        out->rate_stderr = out->radius_stderr / out->radius / (double)st.L;
    }
    state_free(&st);
    return status;
}

typedef struct {
    epoch_state *st;
    sgdstab_sim_options *o;
    sgdstab_error *err;
    int status;
} root_ctx;

/* ln ρ̂(η), for GSL's root finder (NaN after a failure). */
static double log_radius(double lr, void *arg)
{
    root_ctx *c = arg;
    double rho, se;
    if (c->status)
        return NAN;
    c->status = estimate(c->st, c->o, lr, &rho, &se, c->err);
    return c->status ? NAN : log(rho);
}

int sgdstab_epoch_threshold(const sgdstab_reduced *red,
                            const sgdstab_sim_options *opt, double *lr,
                            double *lr_stderr, sgdstab_error *err)
{
    *lr = *lr_stderr = NAN;
    sgdstab_sim_options o = *opt;
    epoch_state st;
    int status = state_make(&st, red, &o, err);
    if (status)
        return status;
    root_ctx c = {&st, &o, err, SGDSTAB_OK};
    /* Bracket the root by doubling or halving from the configured η: ρ̂ → 1
     * from below as η → 0 at a minimum, so halving finds a stable η unless
     * there is none. */
    double lo = opt->config.lr, hi = lo, f = log_radius(lo, &c);
    int i = 0;
    if (f < 0)
        while (!c.status && i++ < 200 && (f = log_radius(hi *= 2, &c)) < 0)
            lo = hi;
    else
        while (!c.status && i++ < 200 && (f = log_radius(lo /= 2, &c)) >= 0)
            hi = lo;
    if (!c.status && i > 200)
        c.status = sgdstab_fail(err, SGDSTAB_ENUMERIC, "no %s learning rate "
                                "found from %g", f < 0 ? "unstable" : "stable",
                                f < 0 ? hi : lo);
    if (!c.status) {
        gsl_function fn = {log_radius, &c};
        gsl_root_fsolver *s = gsl_root_fsolver_alloc(gsl_root_fsolver_brent);
        if (!s) {
            c.status = sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory");
        } else {
            gsl_error_handler_t *old = gsl_set_error_handler_off();
            int gs = gsl_root_fsolver_set(s, &fn, lo, hi);
            for (int i = 0; i < 100 && gs == GSL_SUCCESS && !c.status; i++) {
                gs = gsl_root_fsolver_iterate(s);
                lo = gsl_root_fsolver_x_lower(s);
                hi = gsl_root_fsolver_x_upper(s);
                if (gsl_root_test_interval(lo, hi, 0, 1e-10) == GSL_SUCCESS)
                    break;
            }
            gsl_set_error_handler(old);
            if (!c.status && gs != GSL_SUCCESS)
                c.status = sgdstab_fail(err, SGDSTAB_ENUMERIC, "root finding "
                                        "for the threshold failed: %s",
                                        gsl_strerror(gs));
            if (!c.status)
                *lr = gsl_root_fsolver_root(s);
            gsl_root_fsolver_free(s);
        }
    }
    /* Delta method: se(ln ρ̂) at the root over the slope d ln ρ̂ / dη. */
    if (!c.status) {
        double h = 1e-4 * *lr, rho, se, up, down;
        up = log_radius(*lr + h, &c);
        down = log_radius(*lr - h, &c);
        if (!c.status && !(c.status = estimate(&st, &o, *lr, &rho, &se, err)))
            *lr_stderr = se / rho / fabs((up - down) / (2 * h));
    }
    state_free(&st);
    return c.status;
}
