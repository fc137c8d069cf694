/* Monte Carlo SGD (simulate.h) against exact answers: the exact second
 * moments of moments.h (z-scores from the simulation's own standard errors),
 * closed forms where every run is deterministic (full batch, one parameter),
 * bounds that hold for every run (exit steps under clipping), the threads
 * invariance promised by the header, and cancellation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sgdstab/moments.h"
#include "sgdstab/optimizer.h"
#include "sgdstab/param_space.h"
#include "sgdstab/problem.h"
#include "sgdstab/reduce.h"
#include "sgdstab/rng.h"
#include "sgdstab/simulate.h"
#include "sgdstab/stability.h"
#include "testutil.h"

static sgdstab_sim_result *simulate(const tu_fixture *f,
                                    const sgdstab_sim_options *o)
{
    sgdstab_sim_result *res;
    sgdstab_error err;
    assert_int_equal(sgdstab_simulate(f->red, f->prob, o, &res, NULL, NULL,
                                      &err), SGDSTAB_OK);
    return res;
}

/* Exact E‖δ_t‖² from S_0 = I/p. */
static void exact_second_moment(const tu_fixture *f,
                                const sgdstab_sim_options *o, double *m2)
{
    double *loss = malloc((o->steps + 1) * sizeof *loss);
    assert_non_null(loss);
    sgdstab_error err;
    assert_int_equal(sgdstab_evolve(f->prob, f->red, &o->config, NULL, NULL,
                                    o->steps, m2, loss, &err), SGDSTAB_OK);
    free(loss);
}

/* Every fresh-batch sampling, k = 1 and 2, a stable and an unstable η: the
 * sample mean of ‖δ_t‖² within 4.5 standard errors of the exact value at
 * every step (about 110 comparisons: a false alarm has probability ~ 1e-3
 * under normality), and the standard errors small enough to mean something
 * at the stable η (below 10% of the value).  Above η* the variance grows
 * much faster than the mean and after a few steps single runs dominate the
 * sample mean (it then falls short of the exact value far more often than
 * the normal approximation allows): 5 steps there. */
static void test_against_exact(void **state)
{
    (void)state;
    for (size_t k = 1; k <= 2; k++) {
        tu_fixture f = tu_fixture_of(tu_random_problem(40, k, 4, 1, 40 + k));
        sgdstab_error err;
        sgdstab_stability *stab = sgdstab_stability_alloc(f.red, &err);
        assert_non_null(stab);
        for (int s = 0; s < 3; s++)
            for (int l = 0; l < 2; l++) {
                sgdstab_critical cr;
                assert_int_equal(
                    sgdstab_critical_lr(
                        stab, TU_CONFIG(0, 8, tu_samplings[s], 1), &cr, &err),
                    SGDSTAB_OK);
                /* Stable, and mildly unstable: where E‖δ_t‖² grows fast it
                 * is carried by a few runs, and its sample mean is too
                 * heavy-tailed for the normal approximation. */
                const double lrs[2] = {0.5 * cr.lr_critical,
                                       1.05 * cr.lr_critical};
                sgdstab_sim_options o = tu_sim_options(lrs[l], 8, l ? 5 : 12,
                                                       20000);
                o.config.sampling = tu_samplings[s];
                sgdstab_sim_result *res = simulate(&f, &o);
                double exact[13];
                exact_second_moment(&f, &o, exact);
                for (size_t t = 0; t <= o.steps; t++) {
                    double se = res->norm2_sd[t] / sqrt((double)o.runs);
                    if (!(fabs(res->norm2_mean[t] - exact[t]) <= 4.5 * se) ||
                        (l == 0 && !(se < 0.1 * exact[t])))
                        fail_msg("k = %zu, %s, eta = %g, t = %zu: mean %.6g, "
                                 "exact %.6g, standard error %.3g", k,
                                 sgdstab_sampling_name(tu_samplings[s]),
                                 lrs[l], t, res->norm2_mean[t], exact[t], se);
                }
                sgdstab_sim_result_free(res);
            }
        sgdstab_stability_free(stab);
        tu_fixture_free(&f);
    }
}

/* One parameter, full batch: every run is δ_t = (1 − ηλ)^t δ_0, so the mean
 * over runs is the mean at 0 times (1 − ηλ)^{2t}, for `without` and for
 * `reshuffle` (one batch per epoch) alike. */
static void test_full_batch_closed_form(void **state)
{
    (void)state;
    tu_fixture f = tu_fixture_of(tu_random_problem(6, 1, 1, 1, 3));
    double lam = f.red->lambda[0], lr = 0.7 / lam;
    for (int reshuffle = 0; reshuffle < 2; reshuffle++) {
        sgdstab_sim_options o = tu_sim_options(lr, 6, 15, 50);
        if (reshuffle)
            o.config.sampling = SGDSTAB_SAMPLING_RESHUFFLE;
        sgdstab_sim_result *res = simulate(&f, &o);
        for (size_t t = 0; t <= o.steps; t++) {
            double want = res->norm2_mean[0] * pow(1 - lr * lam, 2.0 * (double)t);
            if (!(fabs(res->norm2_mean[t] - want) <= 1e-12 * want))
                fail_msg("t = %zu: %.17g vs %.17g", t, res->norm2_mean[t], want);
            double lwant = 0.5 * lam * want;
            if (!(fabs(res->loss_mean[t] - lwant) <= 1e-12 * lwant))
                fail_msg("loss at t = %zu: %.17g vs %.17g", t,
                         res->loss_mean[t], lwant);
        }
        double rate, se;
        sgdstab_sim_growth_rate(res, 5, 15, &rate, &se);
        assert_true(fabs(rate - 2 * log(fabs(1 - lr * lam))) <= 1e-10);
        assert_true(se <= 1e-10);
        sgdstab_sim_result_free(res);
    }
    tu_fixture_free(&f);
}

/* The same seed gives bit-identical results for 1, 2 and 3 threads. */
static void test_threads_invariance(void **state)
{
    (void)state;
    tu_fixture f = tu_fixture_of(tu_random_problem(9, 2, 5, 1, 8));
    sgdstab_sim_result *res[3];
    for (size_t t = 0; t < 3; t++) {
        sgdstab_sim_options o = tu_sim_options(0.5, 4, 20, 97);
        o.config.sampling = SGDSTAB_SAMPLING_BERNOULLI;
        o.threads = t + 1;
        res[t] = simulate(&f, &o);
    }
    for (size_t t = 1; t < 3; t++) {
        size_t bytes = 21 * sizeof(double);
        assert_memory_equal(res[0]->norm2_mean, res[t]->norm2_mean, bytes);
        assert_memory_equal(res[0]->norm2_sd, res[t]->norm2_sd, bytes);
        assert_memory_equal(res[0]->loss_mean, res[t]->loss_mean, bytes);
    }
    sgdstab_sim_options o = tu_sim_options(0.5, 4, 20, 97);
    o.config.sampling = SGDSTAB_SAMPLING_BERNOULLI;
    o.seed = 6;
    sgdstab_sim_result *other = simulate(&f, &o);
    assert_true(other->norm2_mean[20] != res[0]->norm2_mean[20]);
    sgdstab_sim_result_free(other);
    for (size_t t = 0; t < 3; t++)
        sgdstab_sim_result_free(res[t]);
    tu_fixture_free(&f);
}

/* Exit steps.  From δ_0 = 0 without noise nothing moves: no run exits.
 * With clipping at C and a full batch with ηλmax ≤ 1 (|I − ηH| ≤ 1), every
 * step adds at most C to ‖δ‖, so no run leaves the ball of radius R before
 * step ⌈R/C⌉; with Pareto noise of scale far above R/η and C > R every run
 * leaves at step 1. */
static void test_exit_steps(void **state)
{
    (void)state;
    tu_fixture f = tu_fixture_of(tu_random_problem(8, 1, 3, 1, 11));
    double lr = 0.9 / f.red->lambda[0];
    sgdstab_sim_options o = tu_sim_options(lr, 8, 200, 40);
    o.init = SGDSTAB_INIT_ZERO;
    o.radius = 1;
    sgdstab_sim_result *res = simulate(&f, &o);
    sgdstab_exit_stats es;
    sgdstab_sim_exit_stats(res, &es);
    assert_int_equal(es.exited, 0);
    assert_true(es.never_fraction == 1 && isnan(es.mean) &&
                isinf(es.quantiles[0]));
    sgdstab_sim_result_free(res);

    o.noise = SGDSTAB_NOISE_PARETO;
    o.noise_alpha = 1.2;
    o.noise_scale = 100 / lr;
    o.clip = 0.3;
    res = simulate(&f, &o);
    sgdstab_sim_exit_stats(res, &es);
    assert_int_equal(es.exited, o.runs);
    for (size_t i = 0; i < o.runs; i++)
        assert_true(res->exit_step[i] >= 4);  /* ⌈1/0.3⌉ */
    sgdstab_sim_result_free(res);

    o.clip = 2;
    res = simulate(&f, &o);
    sgdstab_sim_exit_stats(res, &es);
    assert_int_equal(es.exited, o.runs);
    assert_true(es.mean == 1 && es.quantiles[4] == 1);
    sgdstab_sim_result_free(res);
    tu_fixture_free(&f);
}

/* Exit steps with a known law: one parameter, one sample, η = 1/λ, so
 * δ_{t+1} = η·Z_t forgets the past and leaves the ball of radius R exactly
 * when U < (ηS/R)^α = q: geometric exit steps of mean 1/q.  Censored at
 * T ≈ 1.5/q, the censored mean (the maximum-likelihood 1/q̂) must find 1/q
 * within its standard error; the mean of the exited runs alone is biased
 * low. */
static void test_censored_mean(void **state)
{
    (void)state;
    tu_fixture f = tu_fixture_of(tu_random_problem(1, 1, 1, 1, 13));
    double q = 0.01, lr = 1 / f.red->lambda[0];
    sgdstab_sim_options o = tu_sim_options(lr, 1, 150, 4000);
    o.init = SGDSTAB_INIT_ZERO;
    o.radius = 1;
    o.noise = SGDSTAB_NOISE_PARETO;
    o.noise_alpha = 1.5;
    o.noise_scale = pow(q, 1 / o.noise_alpha) / lr;
    sgdstab_sim_result *res = simulate(&f, &o);
    sgdstab_exit_stats es;
    sgdstab_sim_exit_stats(res, &es);
    double se = (1 / q) / sqrt((double)es.exited);
    assert_true(es.exited > 2000 && es.exited < o.runs);
    if (!(fabs(es.censored_mean - 1 / q) <= 4.5 * se))
        fail_msg("censored mean %g, expected %g +- %g", es.censored_mean,
                 1 / q, 4.5 * se);
    assert_true(es.mean < 1 / q - 10 * se);
    /* The definition on a hand-made result: exits at 3 and 5, two runs
     * censored at T = 10. */
    size_t steps[4] = {3, 0, 5, 0};
    sgdstab_sim_result hand = {.steps = 10, .runs = 4, .exit_step = steps};
    sgdstab_sim_exit_stats(&hand, &es);
    assert_true(es.exited == 2 && es.mean == 4 && es.censored_mean == 14 &&
                es.never_fraction == 0.5 && es.quantiles[2] == 5 &&
                isinf(es.quantiles[3]));
    sgdstab_sim_result_free(res);
    tu_fixture_free(&f);
}

static int stop_now(void *ctx, size_t done, size_t total)
{
    (void)ctx;
    (void)total;
    return done >= 2;
}

static void test_cancel_and_check(void **state)
{
    (void)state;
    tu_fixture f = tu_fixture_of(tu_random_problem(8, 1, 3, 1, 12));
    sgdstab_sim_options o = tu_sim_options(0.1, 2, 10, 100);
    sgdstab_sim_result *res = NULL;
    sgdstab_error err;
    assert_int_equal(sgdstab_simulate(f.red, f.prob, &o, &res, stop_now, NULL,
                                      &err), SGDSTAB_ECANCELED);
    assert_null(res);
    o.config.batch = 9;
    assert_int_equal(sgdstab_simulate(f.red, f.prob, &o, &res, NULL, NULL,
                                      &err), SGDSTAB_EINVAL);
    assert_non_null(strstr(err.msg, "batch"));
    o.config.batch = 2;
    o.runs = 1;
    assert_int_equal(sgdstab_sim_check(f.red, &o, &err), SGDSTAB_EINVAL);
    tu_fixture_free(&f);
}

/* The fit of ln y against t is exact on an exponential. */
static void test_log_slope(void **state)
{
    (void)state;
    double y[30];
    for (int t = 0; t < 30; t++)
        y[t] = 3 * exp(-0.37 * t);
    assert_true(fabs(sgdstab_log_slope(y, 4, 29) + 0.37) < 1e-13);
    y[7] = 0;
    assert_true(isnan(sgdstab_log_slope(y, 4, 29)));
}

/* The top Lyapunov exponent (sgdstab_sim_lyapunov) against what must hold:
 * one parameter, where each run's estimate is a time average of
 * ln|1 − ηA_ξ| whose mean E ln|1 − ηA_ξ| is enumerated over every batch;
 * full batch, where every run grows at ln of the step's largest
 * |eigenvalue| (plain SGD and heavy ball); and λ₁ ≤ ½ ln ρ (Jensen) on a
 * random problem, plain and with momentum, stable and unstable. */
static void test_lyapunov(void **state)
{
    (void)state;
    /* one parameter, n = 5, B = 2 without replacement: 10 batches */
    const double J[5] = {0.3, 1.1, -0.7, 1.6, 0.9};
    tu_fixture f = tu_fixture_of(tu_problem("1d", 5, 1, 1, J, NULL));
    const double lr = 1.3;
    double want = 0;
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++)
            want += log(fabs(1 - lr * 0.5 * (J[i] * J[i] + J[j] * J[j]))) /
                    10;
    sgdstab_sim_options o = tu_sim_options(lr, 2, 2000, 400);
    o.lyapunov = 1;
    sgdstab_sim_result *res = simulate(&f, &o);
    double got, se;
    sgdstab_sim_lyapunov(res, &got, &se);
    if (!(fabs(got - want) <= 4.5 * se) || !(se < 0.01 * fabs(want)))
        fail_msg("1-D: lambda %.6g (s.e. %.2g), E ln|1 - eta A| = %.6g", got,
                 se, want);
    sgdstab_sim_result_free(res);
    tu_fixture_free(&f);

    tu_fixture g = tu_fixture_of(tu_random_problem(30, 1, 4, 1, 77));
    sgdstab_error err;
    sgdstab_stability *stab = sgdstab_stability_alloc(g.red, &err);
    assert_non_null(stab);
    const double h = g.red->lambda[0];  /* the largest */
    for (int momentum = 0; momentum < 2; momentum++) {
        /* full batch: deterministic */
        sgdstab_sim_options d = tu_sim_options(1.5 / h, 30, 3000, 3);
        d.config.optimizer.momentum = momentum ? 0.5 : 0;
        d.lyapunov = 1;
        res = simulate(&g, &d);
        sgdstab_step_map map;
        sgdstab_step_map_init(&d.config.optimizer, d.config.lr, 1, &map);
        double top = 0;
        for (size_t j = 0; j < g.red->r; j++)
            top = fmax(top, sgdstab_step_map_radius(&map, g.red->lambda[j]));
        sgdstab_sim_lyapunov(res, &got, &se);
        if (!(fabs(got - log(top)) <= 2e-3))
            fail_msg("full batch, momentum %d: lambda %.6g, ln|top "
                     "eigenvalue| %.6g", momentum, got, log(top));
        sgdstab_sim_result_free(res);
        /* below ½ ln ρ, at 0.7 and 1.3 η*(4) */
        sgdstab_critical cr;
        assert_int_equal(sgdstab_critical_lr(stab, &d.config, &cr, &err), 0);
        d.config.batch = 4;
        assert_int_equal(sgdstab_critical_lr(stab, &d.config, &cr, &err), 0);
        for (int u = 0; u < 2; u++) {
            d.config.lr = (u ? 1.3 : 0.7) * cr.lr_critical;
            d.steps = 2000;
            d.runs = 50;
            sgdstab_radius rad;
            assert_int_equal(sgdstab_spectral_radius(stab, &d.config, NULL,
                                                     &rad, NULL, &err), 0);
            res = simulate(&g, &d);
            sgdstab_sim_lyapunov(res, &got, &se);
            if (!(got <= 0.5 * log(rad.rho) + 4 * se))
                fail_msg("momentum %d, eta %.4g: lambda %.6g (s.e. %.2g) "
                         "above (1/2) ln rho = %.6g", momentum,
                         d.config.lr, got, se, 0.5 * log(rad.rho));
            sgdstab_sim_result_free(res);
        }
    }
    sgdstab_stability_free(stab);
    tu_fixture_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_slope),
        cmocka_unit_test(test_full_batch_closed_form),
        cmocka_unit_test(test_threads_invariance),
        cmocka_unit_test(test_exit_steps),
        cmocka_unit_test(test_censored_mean),
        cmocka_unit_test(test_cancel_and_check),
        cmocka_unit_test(test_against_exact),
        cmocka_unit_test(test_lyapunov),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
