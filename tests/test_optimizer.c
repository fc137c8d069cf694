/* The exact engine for momentum, Nesterov, weight decay, RMSprop, Adam and
 * AdamW against an independent reference: the second-moment map of the
 * state (x, buffer) in parameter space, built from PyTorch's update rules
 * as a dense matrix E_ξ[T_ξ ⊗ T_ξ] by enumerating every minibatch of a tiny
 * problem, its spectral radius from LAPACK's non-symmetric eigensolver and
 * η* by bisection on it.  No reduction, preconditioning or lifting of the
 * engine is used here; closed forms at B = n as well.  A supplied H enters
 * every batch Hessian as the deterministic part H − G (DESIGN §1); one
 * singular where J moves checks the degenerate verdict, the random walk of
 * the gradient noise there, and weight decay's cure. */
#include <lapacke.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sgdstab/moments.h"
#include "sgdstab/param_space.h"
#include "sgdstab/phase.h"
#include "sgdstab/plan.h"
#include "sgdstab/stability.h"
#include "sgdstab/stationary.h"
#include "testutil.h"

enum { NMAX = 6, KMAX = 3, PMAX = 3, SMAX = 2 * PMAX, DMAX = SMAX * SMAX };

typedef struct {
    size_t n, k, p;
    double J[NMAX * KMAX * PMAX];
    double c;  /* loss scale */
    int has_h;                 /* a supplied Hessian H */
    double H[PMAX * PMAX];     /* it, unscaled */
    double Delta[PMAX * PMAX]; /* H − G, in every batch Hessian */
} tiny;

/* G_ξ = (c/B)·Σ_{i∈ξ} w_i J_iᵀJ_i (w_i = multiplicity). */
static void batch_gram(const tiny *t, const int *w, double B, double *Gx)
{
    memset(Gx, 0, t->p * t->p * sizeof *Gx);
    for (size_t i = 0; i < t->n; i++)
        for (size_t o = 0; o < t->k; o++) {
            const double *row = t->J + (i * t->k + o) * t->p;
            for (size_t a = 0; a < t->p; a++)
                for (size_t b = 0; b < t->p; b++)
                    Gx[a * t->p + b] += t->c * w[i] * row[a] * row[b] / B;
        }
}

/* H_ξ = G_ξ + c·(H − G) (DESIGN §1: a supplied H's difference from G is
 * the deterministic part of every batch Hessian). */
static void batch_hessian(const tiny *t, const int *w, double B, double *H)
{
    batch_gram(t, w, B, H);
    for (size_t a = 0; a < t->p * t->p && t->has_h; a++)
        H[a] += t->c * t->Delta[a];
}

/* The state transition T (2p × 2p) of one step with batch Hessian H_ξ, as
 * torch.optim writes the update (buffer in the second block).  On the
 * first step SGD's buffer is the gradient itself (no dampening). */
static void transition(const tiny *t, const sgdstab_optimizer *o, double lr,
                       int first, const double *Hx, double *T)
{
    const size_t p = t->p, S = 2 * p;
    const int adam = o->kind != SGDSTAB_OPTIMIZER_SGD;
    const double beta = o->momentum;
    double Pinv[PMAX], G[PMAX * PMAX];  /* g = G x (gradient in x) */
    for (size_t j = 0; j < p; j++)
        Pinv[j] = o->second_moment
                      ? 1 / (sqrt(o->second_moment[j]) + o->eps)
                      : 1;
    memcpy(G, Hx, p * p * sizeof *G);
    if (o->kind != SGDSTAB_OPTIMIZER_ADAMW)
        for (size_t j = 0; j < p; j++)
            G[j * p + j] += o->weight_decay;
    const double kappa =
        o->kind == SGDSTAB_OPTIMIZER_ADAMW ? 1 - lr * o->weight_decay : 1;
    /* buffer' = beta·buf + gain·Pinv·G x (Adam: gain 1 − β₁; SGD/RMSprop
     * with momentum: 1 − τ; without momentum: x' uses the gradient). */
    const double gain = adam ? 1 - beta : first ? 1 : 1 - o->dampening;
    memset(T, 0, S * S * sizeof *T);
    double Bx[PMAX * PMAX];  /* ∂buf'/∂x */
    for (size_t a = 0; a < p; a++)
        for (size_t b = 0; b < p; b++)
            Bx[a * p + b] = gain * Pinv[a] * G[a * p + b];
    for (size_t a = 0; a < p; a++) {
        for (size_t b = 0; b < p; b++) {
            double step;  /* ∂(x' − κx)/∂x = −lr·(…) */
            if (!adam && beta == 0)
                step = Pinv[a] * G[a * p + b];
            else if (o->nesterov)
                step = Pinv[a] * G[a * p + b] + beta * Bx[a * p + b];
            else
                step = Bx[a * p + b];
            T[a * S + b] = (a == b ? kappa : 0) - lr * step;
            T[(p + a) * S + b] = Bx[a * p + b];
        }
        T[(p + a) * S + p + a] = beta;
        /* x' depends on the old buffer through buf' = β·buf + … */
        double dbuf = (!adam && beta == 0) ? 0 : o->nesterov ? beta * beta
                                                             : beta;
        T[a * S + p + a] = -lr * dbuf;
    }
}

/* Every batch of the sampling rule as multiplicities w (subsets for
 * without and bernoulli, ordered tuples for with), each passed to fn with
 * its probability. */
typedef void (*batch_fn)(void *ctx, const int *w, double prob);

static void each_batch(const tiny *t, sgdstab_sampling sampling, size_t B,
                       batch_fn fn, void *ctx)
{
    const size_t n = t->n;
    int w[NMAX];
    double total = 0;
    size_t count = sampling == SGDSTAB_SAMPLING_WITH ? 1 : (size_t)1 << n;
    if (sampling == SGDSTAB_SAMPLING_WITH)
        for (size_t i = 0; i < B; i++)
            count *= n;
    for (int pass = 0; pass < 2; pass++)  /* the total, then the batches */
        for (size_t code = 0; code < count; code++) {
            memset(w, 0, sizeof w);
            size_t size = 0;
            double prob = 1;
            if (sampling == SGDSTAB_SAMPLING_WITH) {
                size_t c = code;
                for (size_t i = 0; i < B; i++, c /= n)
                    w[c % n]++;
            } else {
                for (size_t i = 0; i < n; i++)
                    if (code >> i & 1) {
                        w[i] = 1;
                        size++;
                    }
                if (!((prob = tu_subset_weight(sampling, n, B, size)) > 0))
                    continue;
            }
            if (pass == 0)
                total += prob;
            else
                fn(ctx, w, prob / total);
        }
}

typedef struct {
    const tiny *t;
    const sgdstab_optimizer *o;
    double lr;
    size_t B;
    int first;
    double *M;
} map_ctx;

static void add_transition(void *ctx, const int *w, double prob)
{
    map_ctx *mc = ctx;
    const size_t S = 2 * mc->t->p;
    double H[PMAX * PMAX], T[SMAX * SMAX];
    batch_hessian(mc->t, w, (double)mc->B, H);
    transition(mc->t, mc->o, mc->lr, mc->first, H, T);
    tu_kron_add(T, S, prob, mc->M);  /* vec(T Z Tᵀ), row-major vec */
}

/* M = E_ξ[T_ξ ⊗ T_ξ] (D × D, D = (2p)²) by enumeration of every batch. */
static void reference_map(const tiny *t, const sgdstab_optimizer *o,
                          double lr, sgdstab_sampling sampling, size_t B,
                          int first, double *M)
{
    const size_t D = 4 * t->p * t->p;
    memset(M, 0, D * D * sizeof *M);
    map_ctx mc = {t, o, lr, B, first, M};
    each_batch(t, sampling, B, add_transition, &mc);
}

static double reference_radius(const tiny *t, const sgdstab_optimizer *o,
                               double lr, sgdstab_sampling sampling,
                               size_t B)
{
    const size_t D = 4 * t->p * t->p;
    static double M[DMAX * DMAX];
    reference_map(t, o, lr, sampling, B, 0, M);
    double wr[DMAX], wi[DMAX];
    assert_int_equal(LAPACKE_dgeev(LAPACK_ROW_MAJOR, 'N', 'N', (int)D, M,
                                   (int)D, wr, wi, NULL, 1, NULL, 1),
                     0);
    double rho = 0;
    for (size_t i = 0; i < D; i++)
        rho = fmax(rho, hypot(wr[i], wi[i]));
    return rho;
}

/* η* of the reference: ρ(η) = 1 by bisection from a stable η. */
static double reference_critical(const tiny *t, const sgdstab_optimizer *o,
                                 sgdstab_sampling sampling, size_t B)
{
    double lo = 1e-6, hi = 1e-6;
    while (reference_radius(t, o, hi, sampling, B) <= 1)
        hi *= 1.5;
    lo = hi / 1.5;
    for (int i = 0; i < 90; i++) {
        double mid = 0.5 * (lo + hi);
        if (reference_radius(t, o, mid, sampling, B) <= 1)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

static void make_tiny(tiny *t, size_t n, size_t k, size_t p, double c,
                      unsigned long seed)
{
    t->n = n;
    t->k = k;
    t->p = p;
    t->c = c;
    t->has_h = 0;
    sgdstab_rng *rng = sgdstab_rng_alloc(seed);
    assert_non_null(rng);
    sgdstab_rng_gaussian(rng, 1.0, n * k * p, t->J);
    sgdstab_rng_free(rng);
}

typedef tu_engine engine;

static engine engine_for(const tiny *t, const sgdstab_config *cfg)
{
    engine e = {0};
    sgdstab_error err;
    sgdstab_array J = {2, {t->n * t->k, t->p, 1}, t->n * t->k * t->p,
                       malloc(t->n * t->k * t->p * sizeof(double)), "<f8"};
    memcpy(J.data, t->J, J.size * sizeof(double));
    if (t->k > 1) {
        J.ndim = 3;
        J.shape[0] = t->n;
        J.shape[1] = t->k;
        J.shape[2] = t->p;
    }
    sgdstab_array H = {2, {t->p, t->p, 1}, t->p * t->p, NULL, "<f8"};
    if (t->has_h) {
        H.data = malloc(H.size * sizeof(double));
        memcpy(H.data, t->H, H.size * sizeof(double));
    }
    assert_int_equal(sgdstab_problem_from_arrays("tiny", &J,
                                                 t->has_h ? &H : NULL, NULL,
                                                 &e.prob, &err),
                     SGDSTAB_OK);
    if (sgdstab_reduce_for(e.prob, NULL, cfg, &e.red, &err))
        fail_msg("reduce_for: %s", err.msg);
    e.s = sgdstab_stability_alloc(e.red, &err);
    assert_non_null(e.s);
    return e;
}


static const double VHAT[PMAX] = {0.04, 0.5, 2.5};

typedef struct {
    const char *name;
    sgdstab_optimizer_kind kind;
    double momentum, dampening, weight_decay;
    int nesterov, precondition;
} optimizer_case;

static const optimizer_case CASES[] = {
    {"heavy ball 0.9", SGDSTAB_OPTIMIZER_SGD, 0.9, 0, 0, 0, 0},
    {"momentum 0.5, dampening 0.3, wd 0.1", SGDSTAB_OPTIMIZER_SGD, 0.5, 0.3,
     0.1, 0, 0},
    {"nesterov 0.8, wd 0.05", SGDSTAB_OPTIMIZER_SGD, 0.8, 0, 0.05, 1, 0},
    {"rmsprop momentum 0.5, wd 0.02", SGDSTAB_OPTIMIZER_SGD, 0.5, 0, 0.02, 0,
     1},
    {"adam 0.9", SGDSTAB_OPTIMIZER_ADAM, 0.9, 0, 0, 0, 1},
    {"adam 0.8, wd 0.03", SGDSTAB_OPTIMIZER_ADAM, 0.8, 0, 0.03, 0, 1},
    {"adamw 0.9, wd 0.1", SGDSTAB_OPTIMIZER_ADAMW, 0.9, 0, 0.1, 0, 1},
    {"plain sgd, wd 0.1", SGDSTAB_OPTIMIZER_SGD, 0, 0, 0.1, 0, 0},
};

static void set_optimizer(sgdstab_config *cfg, const optimizer_case *oc)
{
    sgdstab_optimizer *o = &cfg->optimizer;
    sgdstab_optimizer_init(o);
    o->kind = oc->kind;
    o->momentum = oc->momentum;
    o->dampening = oc->dampening;
    o->weight_decay = oc->weight_decay;
    o->nesterov = oc->nesterov;
    if (oc->precondition) {
        o->second_moment = VHAT;
        o->second_moment_len = PMAX;
    }
}

/* ρ at 0.6 and 1.4 times the reference η*, and η* itself, for every case,
 * sampling, k = 1 and 3. */
static void test_against_enumeration(void **state)
{
    (void)state;
    const size_t shapes[2][3] = {{6, 1, 3}, {4, 3, 3}};
    for (size_t sh = 0; sh < 2; sh++) {
        tiny t;
        make_tiny(&t, shapes[sh][0], shapes[sh][1], shapes[sh][2],
                  sh ? 2.0 / 3 : 1, 100 + sh);
        for (size_t ci = 0; ci < sizeof CASES / sizeof CASES[0]; ci++)
            for (int si = 0; si < 3; si++) {
                const optimizer_case *oc = &CASES[ci];
                sgdstab_config cfg;
                sgdstab_config_init(&cfg);
                cfg.sampling = tu_samplings[si];
                cfg.batch = 2;
                cfg.loss_scale = t.c;
                set_optimizer(&cfg, oc);
                engine e = engine_for(&t, &cfg);
                sgdstab_error err;
                double ref = reference_critical(&t, &cfg.optimizer,
                                                cfg.sampling, cfg.batch);
                sgdstab_critical crit;
                if (sgdstab_critical_lr(e.s, &cfg, &crit, &err))
                    fail_msg("%s: critical: %s", oc->name, err.msg);
                if (!(fabs(crit.lr_critical / ref - 1) <= 1e-9))
                    fail_msg("k=%zu %s %s: eta* %.15g, reference %.15g",
                             t.k, oc->name,
                             sgdstab_sampling_name(cfg.sampling),
                             crit.lr_critical, ref);
                for (int f = 0; f < 2; f++) {
                    cfg.lr = ref * (f ? 1.4 : 0.6);
                    double want = reference_radius(&t, &cfg.optimizer, cfg.lr,
                                                   cfg.sampling, cfg.batch);
                    sgdstab_radius rad;
                    if (sgdstab_spectral_radius(e.s, &cfg, NULL, &rad, NULL,
                                                &err))
                        fail_msg("%s: radius: %s", oc->name, err.msg);
                    if (!(fabs(rad.rho - want) <= 1e-10 * fmax(1, want)))
                        fail_msg("k=%zu %s %s at %.3g eta*: rho %.15g, "
                                 "reference %.15g", t.k, oc->name,
                                 sgdstab_sampling_name(cfg.sampling),
                                 f ? 1.4 : 0.6, rad.rho, want);
                }
                tu_engine_free(&e);
            }
    }
}

/* Full batch (B = n without replacement): the closed forms of the
 * noise-free limits, heavy ball 2(1 + β)/λmax, Nesterov 2(1 + β)/((1 +
 * 2β)λmax), Adam (2 + 2β₁)/((1 − β₁)λmax(P⁻¹H)). */
static void test_full_batch_closed_forms(void **state)
{
    (void)state;
    tiny t;
    make_tiny(&t, 6, 1, 3, 1, 7);
    double H[PMAX * PMAX], PH[PMAX * PMAX], w[PMAX];
    int all[NMAX] = {1, 1, 1, 1, 1, 1};
    batch_hessian(&t, all, 6, H);
    memcpy(PH, H, sizeof H);
    assert_int_equal(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', 3, H, 3, w), 0);
    double lmax = w[2];
    for (size_t a = 0; a < 3; a++)  /* P^{-1/2} H P^{-1/2} */
        for (size_t b = 0; b < 3; b++)
            PH[a * 3 + b] /= sqrt((sqrt(VHAT[a]) + 1e-8) *
                                  (sqrt(VHAT[b]) + 1e-8));
    assert_int_equal(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', 3, PH, 3, w),
                     0);
    double pmax = w[2];
    const double beta = 0.9;
    const optimizer_case cases[3] = {
        {"heavy", SGDSTAB_OPTIMIZER_SGD, beta, 0, 0, 0, 0},
        {"nesterov", SGDSTAB_OPTIMIZER_SGD, beta, 0, 0, 1, 0},
        {"adam", SGDSTAB_OPTIMIZER_ADAM, beta, 0, 0, 0, 1}};
    const double want[3] = {2 * (1 + beta) / lmax,
                            2 * (1 + beta) / ((1 + 2 * beta) * lmax),
                            (2 + 2 * beta) / ((1 - beta) * pmax)};
    for (int i = 0; i < 3; i++) {
        sgdstab_config cfg;
        sgdstab_config_init(&cfg);
        cfg.batch = 6;
        set_optimizer(&cfg, &cases[i]);
        engine e = engine_for(&t, &cfg);
        sgdstab_critical crit;
        sgdstab_error err;
        assert_int_equal(sgdstab_critical_lr(e.s, &cfg, &crit, &err),
                         SGDSTAB_OK);
        if (!(fabs(crit.lr_critical / want[i] - 1) <= 1e-9))
            fail_msg("%s: eta* %.15g, closed form %.15g", cases[i].name,
                     crit.lr_critical, want[i]);
        tu_engine_free(&e);
    }
}

/* β = 0 is plain SGD: the same η* and ρ as the plain configuration. */
static void test_zero_momentum_is_plain(void **state)
{
    (void)state;
    tiny t;
    make_tiny(&t, 6, 1, 3, 1, 9);
    sgdstab_config plain;
    sgdstab_config_init(&plain);
    plain.batch = 2;
    plain.lr = 0.3;
    sgdstab_config zero = plain;
    zero.optimizer.dampening = 0.5;  /* ignored without momentum */
    engine e = engine_for(&t, &plain);
    sgdstab_critical a, b;
    sgdstab_radius ra, rb;
    sgdstab_error err;
    assert_int_equal(sgdstab_critical_lr(e.s, &plain, &a, &err), 0);
    assert_int_equal(sgdstab_critical_lr(e.s, &zero, &b, &err), 0);
    assert_true(a.lr_critical == b.lr_critical);
    assert_int_equal(sgdstab_spectral_radius(e.s, &plain, NULL, &ra, NULL,
                                             &err), 0);
    assert_int_equal(sgdstab_spectral_radius(e.s, &zero, NULL, &rb, NULL,
                                             &err), 0);
    assert_true(fabs(ra.rho - rb.rho) <= 1e-12);
    tu_engine_free(&e);
}

/* Impossible settings: one line naming the rule. */
static void test_bad_settings(void **state)
{
    (void)state;
    const struct {
        sgdstab_optimizer_kind kind;
        double momentum, dampening, wd;
        int nesterov, vhat;
        const char *needle;
    } bad[] = {
        {SGDSTAB_OPTIMIZER_SGD, 1.0, 0, 0, 0, 0, "momentum must lie"},
        {SGDSTAB_OPTIMIZER_SGD, -0.1, 0, 0, 0, 0, "momentum must lie"},
        {SGDSTAB_OPTIMIZER_SGD, 0.9, 1.0, 0, 0, 0, "dampening must lie"},
        {SGDSTAB_OPTIMIZER_SGD, 0.9, 0.1, 0, 1, 0, "zero dampening"},
        {SGDSTAB_OPTIMIZER_SGD, 0, 0, 0, 1, 0, "nesterov needs"},
        {SGDSTAB_OPTIMIZER_SGD, 0.9, 0, -1, 0, 0, "weight decay"},
        {SGDSTAB_OPTIMIZER_ADAM, 0.9, 0, 0, 0, 0, "needs the frozen"},
        {SGDSTAB_OPTIMIZER_ADAM, 0.9, 0.1, 0, 0, 1, "no dampening"},
        {SGDSTAB_OPTIMIZER_ADAMW, 0.9, 0, 0, 1, 1, "no nesterov"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sgdstab_optimizer o;
        sgdstab_optimizer_init(&o);
        o.kind = bad[i].kind;
        o.momentum = bad[i].momentum;
        o.dampening = bad[i].dampening;
        o.weight_decay = bad[i].wd;
        o.nesterov = bad[i].nesterov;
        if (bad[i].vhat) {
            o.second_moment = VHAT;
            o.second_moment_len = PMAX;
        }
        sgdstab_error err;
        assert_int_equal(sgdstab_optimizer_check(&o, PMAX, &err),
                         SGDSTAB_EINVAL);
        if (!strstr(err.msg, bad[i].needle))
            fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, bad[i].needle);
    }
    const double wrong[2] = {1, 1}, zero[3] = {1, 0, 1};
    sgdstab_optimizer o;
    sgdstab_optimizer_init(&o);
    o.second_moment = wrong;
    o.second_moment_len = 2;
    sgdstab_error err;
    assert_int_equal(sgdstab_optimizer_check(&o, 3, &err), SGDSTAB_EINVAL);
    assert_non_null(strstr(err.msg, "2 values"));
    o.second_moment = zero;
    o.second_moment_len = 3;
    assert_int_equal(sgdstab_optimizer_check(&o, 3, &err), SGDSTAB_EINVAL);
    assert_non_null(strstr(err.msg, "entry 1"));
}

static void reference_noise(const tiny *t, const sgdstab_config *cfg,
                            const double *R, double sigma, int first,
                            double *Q);

/* E|x_t|² and E L_t of the reference from x_0 with second moment S0,
 * empty buffer, with the additive noise of residuals R and label noise
 * sigma (R NULL: none). */
static void reference_evolve(const tiny *t, const sgdstab_config *cfg,
                             const double *S0, const double *R, double sigma,
                             size_t steps, double *m2, double *loss)
{
    const size_t p = t->p, S = 2 * p, D = S * S;
    static double M0[DMAX * DMAX], M[DMAX * DMAX];
    double z[DMAX] = {0}, next[DMAX], G[PMAX * PMAX];
    int all[NMAX];
    for (size_t i = 0; i < t->n; i++)
        all[i] = 1;
    batch_hessian(t, all, (double)t->n, G);  /* c·G */
    reference_map(t, &cfg->optimizer, cfg->lr, cfg->sampling, cfg->batch, 1,
                  M0);
    reference_map(t, &cfg->optimizer, cfg->lr, cfg->sampling, cfg->batch, 0,
                  M);
    double Q0[DMAX] = {0}, Q[DMAX] = {0};
    if (R) {
        reference_noise(t, cfg, R, sigma, 1, Q0);
        reference_noise(t, cfg, R, sigma, 0, Q);
    }
    for (size_t a = 0; a < p; a++)
        for (size_t b = 0; b < p; b++)
            z[a * S + b] = S0[a * p + b];
    for (size_t s = 0;; s++) {
        m2[s] = loss[s] = 0;
        for (size_t a = 0; a < p; a++) {
            m2[s] += z[a * S + a];
            for (size_t b = 0; b < p; b++)
                loss[s] += 0.5 * G[a * p + b] * z[b * S + a];
        }
        if (s == steps)
            break;
        const double *A = s ? M : M0;
        for (size_t i = 0; i < D; i++) {
            next[i] = s ? Q[i] : Q0[i];
            for (size_t j = 0; j < D; j++)
                next[i] += A[i * D + j] * z[j];
        }
        memcpy(z, next, D * sizeof *z);
    }
}

/* Residuals whose mean gradient Σ_i J_iᵀ r_i is zero: a random R with its
 * part in the range of J (stacked, (n·k)×p) removed. */
static void stationary_residuals(const tiny *t, unsigned long seed, double *R)
{
    const size_t m = t->n * t->k, p = t->p;
    sgdstab_rng *rng = sgdstab_rng_alloc(seed);
    sgdstab_rng_gaussian(rng, 0.3, m, R);
    sgdstab_rng_free(rng);
    if (m <= p) {  /* J Jᵀ invertible: only r = 0 has a zero mean gradient */
        memset(R, 0, m * sizeof *R);
        return;
    }
    double A[NMAX * KMAX * PMAX], tau[PMAX], q[NMAX * KMAX];
    memcpy(A, t->J, m * p * sizeof *A);
    assert_int_equal(LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, (int)m, (int)p, A,
                                    (int)p, tau), 0);
    assert_int_equal(LAPACKE_dorgqr(LAPACK_ROW_MAJOR, (int)m, (int)p, (int)p,
                                    A, (int)p, tau), 0);
    for (size_t c = 0; c < p; c++) {
        double d = 0;
        for (size_t i = 0; i < m; i++)
            d += A[i * p + c] * R[i];
        for (size_t i = 0; i < m; i++)
            q[i] = A[i * p + c] * d;
        for (size_t i = 0; i < m; i++)
            R[i] -= q[i];
    }
}

/* The exact evolution in parameter space (param_space.h) against the
 * reference: a full-rank and a rank-deficient J (p > n·k), from I/p and
 * from a correlated S0 with the additive noise of residuals and label
 * noise (stationary.h), every optimizer (with a preconditioner the part J
 * never moves is not orthogonal to the rest in δ's metric). */
static void test_evolution(void **state)
{
    (void)state;
    enum { STEPS = 30 };
    const size_t shapes[2][3] = {{6, 1, 3}, {2, 1, 3}};
    const double S_iso[PMAX * PMAX] = {1. / 3, 0, 0, 0, 1. / 3, 0, 0, 0,
                                       1. / 3};
    const double S_corr[PMAX * PMAX] = {0.5, 0.2, -0.1, 0.2, 0.3, 0.15,
                                        -0.1, 0.15, 0.4};
    for (size_t sh = 0; sh < 2; sh++) {
        tiny t;
        make_tiny(&t, shapes[sh][0], shapes[sh][1], shapes[sh][2], 1,
                  300 + sh);
        for (size_t ci = 0; ci < 2 * (sizeof CASES / sizeof CASES[0]); ci++) {
            const optimizer_case *oc = &CASES[ci / 2];
            const double *S0 = ci % 2 ? S_corr : S_iso;
            sgdstab_config cfg;
            sgdstab_config_init(&cfg);
            cfg.sampling = tu_samplings[ci % 3];
            cfg.batch = shapes[sh][0] == 2 ? 1 : 2;
            set_optimizer(&cfg, oc);
            engine e = engine_for(&t, &cfg);
            sgdstab_critical crit;
            sgdstab_error err;
            assert_int_equal(sgdstab_critical_lr(e.s, &cfg, &crit, &err), 0);
            cfg.lr = 1.1 * crit.lr_critical;
            double want_m2[STEPS + 1], want_loss[STEPS + 1];
            double m2[STEPS + 1], loss[STEPS + 1];
            double R[NMAX * KMAX], C[PMAX * PMAX], sigma = 0.3;
            stationary_residuals(&t, 900 + ci, R);
            e.prob->R = malloc(sizeof R);
            memcpy(e.prob->R, R, sizeof R);
            if (ci % 2 && sgdstab_gradient_noise(e.red, e.prob, &cfg, sigma, C,
                                                 NULL, &err))
                fail_msg("%s: noise: %s", oc->name, err.msg);
            reference_evolve(&t, &cfg, S0, ci % 2 ? R : NULL, sigma, STEPS,
                             want_m2, want_loss);
            if (sgdstab_evolve(e.prob, e.red, &cfg,
                               &(sgdstab_start){ci % 2 ? S0 : NULL, 0},
                               ci % 2 ? C : NULL, STEPS, m2, loss, &err))
                fail_msg("%s: evolve: %s", oc->name, err.msg);
            for (size_t s = 0; s <= STEPS; s++)
                if (!(fabs(m2[s] - want_m2[s]) <= 1e-11 * want_m2[s]) ||
                    !(fabs(loss[s] - want_loss[s]) <= 1e-11 * want_loss[s]))
                    fail_msg("%s, S0 %s, r = %zu of p = %zu, step %zu: E|x|^2 "
                             "%.15g (reference %.15g), E L %.15g (reference "
                             "%.15g)", oc->name, ci % 2 ? "correlated" : "I/p",
                             e.red->r, t.p, s, m2[s], want_m2[s], loss[s],
                             want_loss[s]);
            tu_engine_free(&e);
        }
    }
}

/* A (β, η) phase diagram (phase.h, momenta as rows) against the
 * reference: η*(β) of every row and ρ at every point. */
static void test_momentum_phase(void **state)
{
    (void)state;
    enum { NM = 4, NL = 3 };
    tiny t;
    make_tiny(&t, 6, 1, 3, 1, 41);
    const double momenta[NM] = {0, 0.3, 0.7, 0.9};
    const size_t batch = 2;
    sgdstab_config cfg;
    sgdstab_config_init(&cfg);
    cfg.optimizer.dampening = 0.2;
    cfg.optimizer.weight_decay = 0.05;
    engine e = engine_for(&t, &cfg);
    double lrs[NL] = {0.05, 0.5, 2};
    sgdstab_phase_boundary bd[NM];
    sgdstab_phase_point grid[NM * NL];
    sgdstab_error err;
    const sgdstab_phase_axes ax = {.batches = &batch, .nb = 1, .lrs = lrs,
                                   .nl = NL, .momenta = momenta, .nm = NM};
    assert_int_equal(sgdstab_phase_rows(&ax), NM);
    if (sgdstab_phase_compute(e.s, NULL, &cfg, &ax, bd, grid, &err))
        fail_msg("phase: %s", err.msg);
    for (int i = 0; i < NM; i++) {
        sgdstab_optimizer o = cfg.optimizer;
        o.momentum = momenta[i];
        double ref = reference_critical(&t, &o, cfg.sampling, batch);
        if (!(fabs(bd[i].critical.lr_critical / ref - 1) <= 1e-9) ||
            bd[i].momentum != momenta[i] || !isnan(bd[i].bounds.wu_ma_e))
            fail_msg("row %d (beta %g): eta* %.15g, reference %.15g", i,
                     momenta[i], bd[i].critical.lr_critical, ref);
        for (int j = 0; j < NL; j++) {
            const sgdstab_phase_point *pt = &grid[i * NL + j];
            double want = reference_radius(&t, &o, lrs[j], cfg.sampling,
                                           batch);
            if (!(fabs(pt->radius.rho - want) <= 1e-10 * fmax(1, want)) ||
                pt->stable != (lrs[j] <= ref))
                fail_msg("(beta %g, eta %g): rho %.15g, reference %.15g",
                         momenta[i], lrs[j], pt->radius.rho, want);
        }
    }
    /* Rows of momenta take one batch size. */
    const size_t two[2] = {2, 3};
    const sgdstab_phase_axes bad = {.batches = two, .nb = 2, .lrs = lrs,
                                    .nl = NL, .momenta = momenta, .nm = NM};
    assert_int_equal(sgdstab_phase_compute(e.s, NULL, &cfg, &bad, bd, grid,
                                           &err), SGDSTAB_EINVAL);
    tu_engine_free(&e);
}

/* η*(B; β) over every batch size in one curve (solved smallest batch
 * first on the shared basis) against the reference, k = 1 and 3: the
 * order of the solves must not change the answers, and η* does not
 * decrease with B. */
static void test_momentum_curve(void **state)
{
    (void)state;
    const size_t shapes[2][3] = {{6, 1, 3}, {4, 3, 3}};
    for (size_t sh = 0; sh < 2; sh++) {
        tiny t;
        make_tiny(&t, shapes[sh][0], shapes[sh][1], shapes[sh][2], 1,
                  500 + sh);
        for (size_t ci = 0; ci < 2; ci++) {
            sgdstab_config cfg;
            sgdstab_config_init(&cfg);
            set_optimizer(&cfg, &CASES[ci]);  /* heavy ball, dampening */
            engine e = engine_for(&t, &cfg);
            size_t batches[NMAX];
            sgdstab_critical crit[NMAX];
            for (size_t i = 0; i < t.n; i++)
                batches[i] = t.n - i;  /* any order: the curve sorts */
            sgdstab_error err;
            if (sgdstab_critical_curve(e.s, &cfg, batches, t.n, crit, &err))
                fail_msg("%s: curve: %s", CASES[ci].name, err.msg);
            for (size_t i = 0; i < t.n; i++) {
                double ref = reference_critical(&t, &cfg.optimizer,
                                                cfg.sampling, batches[i]);
                if (!(fabs(crit[i].lr_critical / ref - 1) <= 1e-9))
                    fail_msg("k=%zu %s B=%zu: curve eta* %.15g, reference "
                             "%.15g", t.k, CASES[ci].name, batches[i],
                             crit[i].lr_critical, ref);
                if (i > 0 && !(crit[i].lr_critical <=
                               crit[i - 1].lr_critical * (1 + 1e-9)))
                    fail_msg("%s: eta* increases from B=%zu to B=%zu",
                             CASES[ci].name, batches[i - 1], batches[i]);
            }
            tu_engine_free(&e);
        }
    }
}

/* ------------------------------------------------------ stationary state */

/* How the gradient noise ζ enters the state (x, buffer): u' = T u + E ζ,
 * the columns of T that multiply the gradient, as transition() writes the
 * update (SGD's first step fills the buffer with the whole gradient). */
static void noise_input(const tiny *t, const sgdstab_optimizer *o, double lr,
                        int first, double *E)
{
    const size_t p = t->p;
    const int adam = o->kind != SGDSTAB_OPTIMIZER_SGD;
    const double beta = o->momentum,
                 gain = adam ? 1 - beta : first ? 1 : 1 - o->dampening;
    memset(E, 0, 2 * p * p * sizeof *E);
    for (size_t a = 0; a < p; a++) {
        double pinv = o->second_moment
                          ? 1 / (sqrt(o->second_moment[a]) + o->eps)
                          : 1;
        E[(p + a) * p + a] = gain * pinv;
        E[a * p + a] = -lr * (!adam && beta == 0 ? pinv
                              : o->nesterov      ? pinv + beta * gain * pinv
                                                 : gain * pinv);
    }
}

typedef struct {
    const tiny *t;
    const double *R;
    double sigma;
    size_t B;
    double *C;  /* E[ζζᵀ], p×p */
} noise_ctx;

/* ζ = (c/B) Σ_i w_i J_iᵀ r_i and label noise (c σ/B) Σ_draws J_iᵀ ε. */
static void add_noise(void *ctx, const int *w, double prob)
{
    noise_ctx *nc = ctx;
    const tiny *t = nc->t;
    const size_t p = t->p;
    double zeta[PMAX] = {0};
    double label[PMAX * PMAX];
    batch_gram(t, w, (double)nc->B, label);  /* (c/B) Σ w_i J_iᵀJ_i */
    for (size_t i = 0; i < t->n; i++)
        for (size_t o = 0; o < t->k; o++)
            for (size_t a = 0; a < p; a++)
                zeta[a] += t->c * w[i] * t->J[(i * t->k + o) * p + a] *
                           nc->R[i * t->k + o] / (double)nc->B;
    for (size_t a = 0; a < p; a++)
        for (size_t b = 0; b < p; b++)
            nc->C[a * p + b] +=
                prob * (zeta[a] * zeta[b] + nc->sigma * nc->sigma * t->c /
                                                (double)nc->B *
                                                label[a * p + b]);
}

/* vec(E C Eᵀ) on the state (x, buffer): the additive noise of one step. */
static void reference_noise(const tiny *t, const sgdstab_config *cfg,
                            const double *R, double sigma, int first,
                            double *Q)
{
    const size_t p = t->p, N = 2 * p;
    double C[PMAX * PMAX] = {0}, E[SMAX * PMAX];
    noise_ctx nc = {t, R, sigma, cfg->batch, C};
    each_batch(t, cfg->sampling, cfg->batch, add_noise, &nc);
    noise_input(t, &cfg->optimizer, cfg->lr, first, E);
    for (size_t u = 0; u < N; u++)
        for (size_t v = 0; v < N; v++) {
            double q = 0;
            for (size_t a = 0; a < p; a++)
                for (size_t b = 0; b < p; b++)
                    q += E[u * p + a] * C[a * p + b] * E[v * p + b];
            Q[u * N + v] = q;
        }
}

/* The stationary second moment of x, p×p: (I − M) vec U = vec(E C Eᵀ). */
static void reference_stationary(const tiny *t, const sgdstab_config *cfg,
                                 const double *R, double sigma, double *S)
{
    const size_t p = t->p, N = 2 * p, D = N * N;
    static double M[DMAX * DMAX];
    double Q[DMAX];
    reference_map(t, &cfg->optimizer, cfg->lr, cfg->sampling, cfg->batch, 0,
                  M);
    reference_noise(t, cfg, R, sigma, 0, Q);
    for (size_t i = 0; i < D * D; i++)
        M[i] = (i % (D + 1) == 0) - M[i];
    lapack_int ipiv[DMAX];
    assert_int_equal(LAPACKE_dgesv(LAPACK_ROW_MAJOR, (int)D, 1, M, (int)D,
                                   ipiv, Q, 1), 0);
    for (size_t a = 0; a < p; a++)
        for (size_t b = 0; b < p; b++)
            S[a * p + b] = Q[a * N + b];
}

/* The engine's W taken to parameter space: S = P^{-1/2} Q W Qᵀ P^{-1/2},
 * and its summary. */
static void engine_stationary(const engine *e, const sgdstab_config *cfg,
                              double sigma, double *S,
                              sgdstab_stationary_summary *sum)
{
    const size_t r = e->red->r, p = e->red->p;
    double C[PMAX * PMAX], W[PMAX * PMAX];
    sgdstab_error err;
    sgdstab_gradient_stats gs;
    sgdstab_stationary_info info;
    sgdstab_moments *m = sgdstab_moments_alloc(e->red, &err);
    assert_non_null(m);
    if (sgdstab_gradient_noise(e->red, e->prob, cfg, sigma, C, &gs, &err) ||
        sgdstab_stationary_solve(m, e->red, cfg, C, NULL, W, &info, &err))
        fail_msg("stationary: %s", err.msg);
    assert_true(gs.stationary_point);
    assert_true(info.converged && info.relative_residual < 1e-10);
    if (sgdstab_stationary_summarize(e->prob, e->red, cfg, W, sum, &err))
        fail_msg("summary: %s", err.msg);
    sgdstab_param_space ps;
    assert_int_equal(sgdstab_param_space_make(e->prob, e->red, cfg, &ps,
                                              &err), 0);
    for (size_t a = 0; a < p; a++)
        for (size_t b = 0; b < p; b++) {
            double v = 0;
            for (size_t j = 0; j < r; j++)
                for (size_t l = 0; l < r; l++)
                    v += ps.rows[j * p + a] * W[j * r + l] * ps.rows[l * p + b];
            S[a * p + b] = ps.root ? v / (ps.root[a] * ps.root[b]) : v;
        }
    sgdstab_param_space_free(&ps);
    sgdstab_moments_free(m);
}

/* The summary against tr S, ½c·tr(GS) and c²·tr(GSG) of the reference S
 * (G = Σ_i J_iᵀJ_i/n, the loss's curvature over c). */
static void check_summary(const tiny *t, const double *S,
                          const sgdstab_stationary_summary *sum,
                          const char *name)
{
    const size_t p = t->p;
    double G[PMAX * PMAX], GS[PMAX * PMAX] = {0}, tr = 0, loss = 0, grad = 0;
    int all[NMAX];
    for (size_t i = 0; i < t->n; i++)
        all[i] = 1;
    batch_hessian(t, all, (double)t->n, G);  /* c·G */
    for (size_t a = 0; a < p; a++)
        for (size_t b = 0; b < p; b++)
            for (size_t d = 0; d < p; d++)
                GS[a * p + b] += G[a * p + d] * S[d * p + b];
    for (size_t a = 0; a < p; a++) {
        tr += S[a * p + a];
        loss += 0.5 * GS[a * p + a];
        for (size_t b = 0; b < p; b++)
            grad += GS[a * p + b] * G[b * p + a];
    }
    const double got[3] = {sum->second_moment, sum->excess_loss,
                           sum->gradient_norm_sq};
    const double want[3] = {tr, loss, grad};
    for (int q = 0; q < 3; q++)
        if (!(fabs(got[q] - want[q]) <= 1e-9 * fabs(want[q])))
            fail_msg("%s: summary %d is %.15g, reference %.15g", name, q,
                     got[q], want[q]);
}

/* Plain SGD, then CASES, for the stationary tests. */
static const optimizer_case PLAIN = {"plain sgd", SGDSTAB_OPTIMIZER_SGD, 0, 0,
                                     0, 0, 0};
#define NCASES (sizeof CASES / sizeof CASES[0])

/* Case ci (0: PLAIN, else CASES[ci − 1]) on t: cfg at batch 2, the
 * sampling rule turning with ci. */
static const optimizer_case *residual_case(const tiny *t, size_t ci,
                                           sgdstab_config *cfg)
{
    const optimizer_case *oc = ci ? &CASES[ci - 1] : &PLAIN;
    sgdstab_config_init(cfg);
    cfg->loss_scale = t->c;
    cfg->sampling = tu_samplings[ci % 3];
    cfg->batch = 2;
    set_optimizer(cfg, oc);
    return oc;
}

/* The engine of t for cfg, its problem holding the residuals R. */
static engine residual_engine(const tiny *t, const sgdstab_config *cfg,
                              const double *R)
{
    engine e = engine_for(t, cfg);
    e.prob->R = malloc(t->n * t->k * sizeof *R);
    assert_non_null(e.prob->R);
    memcpy(e.prob->R, R, t->n * t->k * sizeof *R);
    return e;
}

/* S∞ and its summary at cfg, label noise 0.4 and residuals R, against
 * the dense solve of the reference, to 1e-9. */
static void compare_stationary(const tiny *t, const engine *e,
                               const sgdstab_config *cfg, const double *R,
                               const char *name)
{
    double want[PMAX * PMAX], got[PMAX * PMAX], diff = 0, norm = 0;
    sgdstab_stationary_summary sum;
    reference_stationary(t, cfg, R, 0.4, want);
    engine_stationary(e, cfg, 0.4, got, &sum);
    check_summary(t, want, &sum, name);
    for (size_t i = 0; i < t->p * t->p; i++) {
        diff += (got[i] - want[i]) * (got[i] - want[i]);
        norm += want[i] * want[i];
    }
    if (!(sqrt(diff) <= 1e-9 * sqrt(norm)))
        fail_msg("k=%zu %s %s: |S - S_ref| = %.3g of |S_ref| = %.6g", t->k,
                 name, sgdstab_sampling_name(cfg->sampling), sqrt(diff),
                 sqrt(norm));
}

/* The stationary second moment of every optimizer, sampling, k = 1 and 3,
 * against the dense reference (parameter space, every batch enumerated),
 * with residuals and label noise together, at 0.6 η*. */
static void test_stationary_against_enumeration(void **state)
{
    (void)state;
    const size_t shapes[2][3] = {{6, 1, 3}, {4, 3, 3}};
    for (size_t sh = 0; sh < 2; sh++) {
        tiny t;
        make_tiny(&t, shapes[sh][0], shapes[sh][1], shapes[sh][2],
                  sh ? 2.0 / 3 : 1, 700 + sh);
        double R[NMAX * KMAX];
        stationary_residuals(&t, 800 + sh, R);
        for (size_t ci = 0; ci <= NCASES; ci++) {
            sgdstab_config cfg;
            const optimizer_case *oc = residual_case(&t, ci, &cfg);
            engine e = residual_engine(&t, &cfg, R);
            sgdstab_critical crit;
            sgdstab_error err;
            assert_int_equal(sgdstab_critical_lr(e.s, &cfg, &crit, &err), 0);
            cfg.lr = 0.6 * crit.lr_critical;
            compare_stationary(&t, &e, &cfg, R, oc->name);
            tu_engine_free(&e);
        }
    }
}

/* A supplied H: G with its smallest eigenvalue set to 0, so J moves a
 * direction of zero curvature. */
static void singular_hessian(tiny *t)
{
    const size_t p = t->p;
    double G[PMAX * PMAX], V[PMAX * PMAX], w[PMAX];
    int all[NMAX];
    for (size_t i = 0; i < t->n; i++)
        all[i] = 1;
    const double c = t->c;
    t->c = 1;
    batch_gram(t, all, (double)t->n, G);
    t->c = c;
    memcpy(V, G, sizeof G);
    assert_int_equal(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', (int)p, V,
                                   (int)p, w), 0);
    for (size_t a = 0; a < p; a++)
        for (size_t b = 0; b < p; b++) {
            t->H[a * p + b] = 0;
            for (size_t q = 1; q < p; q++)  /* w[0], the smallest, dropped */
                t->H[a * p + b] += V[a * p + q] * w[q] * V[b * p + q];
            t->Delta[a * p + b] = t->H[a * p + b] - G[a * p + b];
        }
    t->has_h = 1;
}

/* H singular where J moves: without decay every η is unstable (the
 * reference's ρ ≥ 1) and there is no stationary state, only the random
 * walk of the gradient noise; coupled decay (which lifts the curvature) and
 * AdamW's decoupled decay (which shrinks the parameters) restore both, and
 * η*, ρ and S∞ then match the enumeration. */
static void test_singular_hessian(void **state)
{
    (void)state;
    tiny t;
    make_tiny(&t, 6, 1, 3, 1, 900);
    singular_hessian(&t);
    double R[NMAX * KMAX];
    stationary_residuals(&t, 901, R);
    for (size_t ci = 0; ci <= NCASES; ci++) {
        sgdstab_config cfg;
        const optimizer_case *oc = residual_case(&t, ci, &cfg);
        engine e = residual_engine(&t, &cfg, R);
        sgdstab_error err;
        sgdstab_critical crit;
        assert_int_equal(sgdstab_critical_lr(e.s, &cfg, &crit, &err), 0);
        double C[PMAX * PMAX], W[PMAX * PMAX];
        if (!(oc->weight_decay > 0)) {
            if (crit.kind != SGDSTAB_DEGENERATE)
                fail_msg("%s: kind %d, not degenerate", oc->name, crit.kind);
            cfg.lr = 0.2;
            double rho = reference_radius(&t, &cfg.optimizer, cfg.lr,
                                          cfg.sampling, cfg.batch);
            if (!(rho >= 1 - 1e-12))
                fail_msg("%s: the reference's rho %.15g < 1", oc->name, rho);
            sgdstab_moments *m = sgdstab_moments_alloc(e.red, &err);
            sgdstab_stationary_info info;
            assert_int_equal(sgdstab_gradient_noise(e.red, e.prob, &cfg, 0.4,
                                                    C, NULL, &err), 0);
            assert_int_equal(sgdstab_stationary_solve(m, e.red, &cfg, C, NULL,
                                                      W, &info, &err),
                             SGDSTAB_EINVAL);
            sgdstab_moments_free(m);
            /* The random walk: the noise the reference adds to x per step,
             * along the null direction u, summed over the buffer's delay. */
            sgdstab_null_drift drift;
            assert_int_equal(sgdstab_null_space_drift(e.prob, e.red, &cfg, C,
                                                      &drift, &err), 0);
            assert_int_equal(drift.directions, 1);
            if (oc->momentum == 0 && !oc->precondition) {
                /* u, H's eigenvector of eigenvalue 0: V's first column. */
                double Q[DMAX], V[PMAX * PMAX], w[PMAX], want = 0;
                reference_noise(&t, &cfg, R, 0.4, 0, Q);
                memcpy(V, t.H, sizeof V);
                assert_int_equal(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', 3,
                                               V, 3, w), 0);
                for (size_t a = 0; a < t.p; a++)
                    for (size_t b = 0; b < t.p; b++)
                        want += V[a * t.p] * Q[a * 2 * t.p + b] * V[b * t.p];
                if (!(fabs(drift.rate - want) <= 1e-10 * want))
                    fail_msg("%s: drift %.15g, reference %.15g", oc->name,
                             drift.rate, want);
            }
            tu_engine_free(&e);
            continue;
        }
        double ref = reference_critical(&t, &cfg.optimizer, cfg.sampling,
                                        cfg.batch);
        if (!(crit.kind == SGDSTAB_MINIMUM_OK &&
              fabs(crit.lr_critical / ref - 1) <= 1e-9))
            fail_msg("%s: eta* %.15g (kind %d), reference %.15g", oc->name,
                     crit.lr_critical, crit.kind, ref);
        cfg.lr = 0.6 * ref;
        compare_stationary(&t, &e, &cfg, R, oc->name);
        tu_engine_free(&e);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_settings),
        cmocka_unit_test(test_zero_momentum_is_plain),
        cmocka_unit_test(test_full_batch_closed_forms),
        cmocka_unit_test(test_against_enumeration),
        cmocka_unit_test(test_evolution),
        cmocka_unit_test(test_momentum_phase),
        cmocka_unit_test(test_momentum_curve),
        cmocka_unit_test(test_stationary_against_enumeration),
        cmocka_unit_test(test_singular_hessian),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
