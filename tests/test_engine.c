/* The exact engine (moments, eig, stability) against independent references:
 * the dense Kronecker formulation (reference.h, its own range basis and
 * LAPACK), closed forms computed here from the raw data (1-D, full batch,
 * one sample, rank one) with batch expectations found by enumerating every
 * batch, brute-force evolution in parameter space, ARPACK on the same
 * operators, and theorems that hold on any input (η*(B) non-decreasing,
 * ρ⊥(η*) = 1). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cblas.h>
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sgdstab/moments.h"
#include "sgdstab/param_space.h"
#include "sgdstab/phase.h"
#include "sgdstab/problem.h"
#include "sgdstab/reduce.h"
#include "reference.h"
#include "sgdstab/rng.h"
#include "sgdstab/stability.h"
#include "testutil.h"

/* ------------------------------------------------------------- problems */

/* J with N(0, 1/p) entries; with_H: H = G + symmetric noise + shift·I. */
static sgdstab_problem *random_problem(size_t n, size_t k, size_t p,
                                       int with_H, double shift,
                                       unsigned long seed)
{
    sgdstab_rng *rng = sgdstab_rng_alloc(seed);
    assert_non_null(rng);
    double *J = tu_random_J(rng, n, k, p, 1), *H = NULL;
    if (with_H) {
        H = tu_gram(J, n, k, p);
        double *noise = malloc(p * p * sizeof *noise);
        assert_non_null(noise);
        sgdstab_rng_gaussian(rng, 0.02, p * p, noise);
        for (size_t i = 0; i < p; i++)
            for (size_t j = i; j < p; j++) {
                double v = H[i * p + j] + noise[i * p + j] + noise[j * p + i] +
                           (i == j ? shift : 0);
                H[i * p + j] = H[j * p + i] = v;
            }
        free(noise);
    }
    sgdstab_rng_free(rng);
    sgdstab_problem *prob = tu_problem("random", n, k, p, J, H);
    free(J);
    free(H);
    return prob;
}

typedef tu_engine engine;  /* c: the loss scale */

static engine engine_make(sgdstab_problem *prob, double loss_scale)
{
    engine e = {prob, tu_reduce(prob), NULL, loss_scale};
    sgdstab_error err;
    e.s = sgdstab_stability_alloc(e.red, &err);
    assert_non_null(e.s);
    return e;
}


static double critical(engine *e, sgdstab_sampling smp, size_t B)
{
    sgdstab_critical c;
    sgdstab_error err;
    assert_int_equal(
        sgdstab_critical_lr(e->s, TU_CONFIG(0, B, smp, e->c), &c, &err),
        SGDSTAB_OK);
    assert_true(c.converged);
    return c.lr_critical;
}

static double radius(engine *e, double lr, sgdstab_sampling smp, size_t B)
{
    sgdstab_radius r;
    sgdstab_error err;
    assert_int_equal(sgdstab_spectral_radius(e->s, TU_CONFIG(lr, B, smp, e->c),
                                             NULL, &r, NULL, &err),
                     SGDSTAB_OK);
    assert_true(r.converged);
    return r.rho;
}

/* The top eigenmatrix S returned with ρ⊥: unit Frobenius norm and, applying
 * 𝒯 with the moment operator (itself checked against the reference through
 * ρ⊥), a residual ‖𝒯S − ρS‖_F within the promised 1e-10·ρ (stability.h). */
static void check_eigenmatrix(engine *e, double lr, sgdstab_sampling smp,
                              size_t B, double ref_rho, const char *what)
{
    size_t r = e->red->r;
    double *S = malloc(r * r * sizeof *S), *TS = malloc(r * r * sizeof *TS);
    assert_true(S && TS);
    sgdstab_radius rad;
    sgdstab_error err;
    assert_int_equal(sgdstab_spectral_radius(e->s, TU_CONFIG(lr, B, smp, e->c),
                                             NULL, &rad, S, &err),
                     SGDSTAB_OK);
    tu_assert_close(rad.rho, ref_rho, 1e-10, what);
    sgdstab_moments *m = sgdstab_moments_alloc(e->red, &err);
    assert_non_null(m);
    double a, b;
    assert_int_equal(sgdstab_batch_coefficients(smp, e->red->n, B, &a, &b,
                                                &err), SGDSTAB_OK);
    sgdstab_moments_step(m, lr, a, b, S, TS);
    double norm2 = 0, res2 = 0;
    for (size_t i = 0; i < r * r; i++) {
        norm2 += S[i] * S[i];
        res2 += (TS[i] - rad.rho * S[i]) * (TS[i] - rad.rho * S[i]);
    }
    tu_assert_close(sqrt(norm2), 1, 1e-12, what);
    if (!(sqrt(res2) <= 1.01e-10 * fabs(rad.rho) + 1e-14))
        fail_msg("%s: eigenmatrix residual %.3g > 1e-10 rho = %.3g", what,
                 sqrt(res2), 1e-10 * fabs(rad.rho));
    sgdstab_moments_free(m);
    free(S);
    free(TS);
}

/* ------------------------------------------------- dense Kronecker oracle */

typedef struct {
    size_t n, k, p;
    int with_H;
} shape_case;

/* n < p and n > p, k = 1 and 3, with and without H; r from 5 to 36, so
 * both small and larger eigenproblems (dim up to 666) are exercised. */
static const shape_case SHAPES[] = {
    {30, 1, 12, 0}, {9, 1, 30, 0}, {40, 1, 28, 0}, {6, 3, 25, 0},
    {10, 3, 12, 0}, {20, 1, 10, 1}, {5, 3, 24, 1}, {12, 3, 9, 1},
};

/* A random problem of shape sc, its dense reference (*ref) and the engine
 * on it, both in the problem's range of dimension r. */
static engine reference_case(const shape_case *sc, unsigned long seed,
                             sgdstab_reference **ref)
{
    sgdstab_problem *prob = random_problem(sc->n, sc->k, sc->p, sc->with_H,
                                           0.3, seed);
    sgdstab_error err;
    *ref = sgdstab_reference_alloc(prob, 1.0, &err);
    assert_non_null(*ref);
    engine e = engine_make(prob, 1.0);
    assert_int_equal(sgdstab_reference_dim(*ref), e.red->r);
    return e;
}

/* 𝒩 as the eigensolvers apply it (packed, with and without the diagonal
 * scaling S, with GZG subtracted or not), against the definition summed
 * sample by sample: S·pack((1/n) Σ_i A_i Z A_i − GZG)·S, Z = unpack(S·x),
 * A_i = Φ_iᵀΦ_i.  The shapes include n < 8 (parts of the split Σ with no
 * samples) and k = 3 with a supplied H (full G). */
static void test_noise_operator(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof SHAPES / sizeof SHAPES[0]; c++) {
        const shape_case *sc = &SHAPES[c];
        sgdstab_problem *prob = random_problem(sc->n, sc->k, sc->p, sc->with_H,
                                               0.3, 900 + c);
        engine e = engine_make(prob, 1.0);
        const sgdstab_reduced *red = e.red;
        size_t r = red->r, k = red->k, n = red->n, dim = r * (r + 1) / 2;
        sgdstab_error err;
        sgdstab_moments *m = sgdstab_moments_alloc(red, &err);
        assert_non_null(m);
        double *x = malloc(dim * sizeof *x), *weights = malloc(dim * sizeof *weights);
        double *y = malloc(dim * sizeof *y), *Z = malloc(r * r * sizeof *Z);
        double *A = malloc(r * r * sizeof *A), *AZ = malloc(r * r * sizeof *AZ);
        double *N = malloc(r * r * sizeof *N), *sx = malloc(dim * sizeof *sx);
        assert_true(x && weights && y && Z && A && AZ && N && sx);
        for (size_t a = 0; a < dim; a++) {
            x[a] = sin(1.7 * (double)a + 0.3 * (double)c);
            weights[a] = 0.5 + (double)(a % 7) / 4;
        }
        for (int scaled = 0; scaled < 2; scaled++)
            for (int subtract = 0; subtract < 2; subtract++) {
                const double *scale = scaled ? weights : NULL;
                for (size_t a = 0; a < dim; a++)
                    sx[a] = scaled ? weights[a] * x[a] : x[a];
                sgdstab_sym_unpack(r, sx, Z);
                memset(N, 0, r * r * sizeof *N);
                for (size_t i = 0; i < n; i++) {
                    const double *Pi = red->phi + i * k * r;  /* k × r */
                    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans,
                                (int)r, (int)r, (int)k, 1.0, Pi, (int)r, Pi,
                                (int)r, 0.0, A, (int)r);
                    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                                (int)r, (int)r, (int)r, 1.0, A, (int)r, Z,
                                (int)r, 0.0, AZ, (int)r);
                    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                                (int)r, (int)r, (int)r, 1.0 / (double)n, AZ,
                                (int)r, A, (int)r, 1.0, N, (int)r);
                }
                for (size_t j = 0; subtract && j < r; j++)
                    for (size_t l = 0; l < r; l++) {
                        double v = 0;
                        for (size_t q = 0; q < r; q++)
                            for (size_t t = 0; t < r; t++) {
                                double gjq = red->G ? red->G[j * r + q]
                                             : (j == q) * red->lambda[j];
                                double gtl = red->G ? red->G[t * r + l]
                                             : (t == l) * red->lambda[l];
                                v += gjq * Z[q * r + t] * gtl;
                            }
                        N[j * r + l] -= v;
                    }
                sgdstab_moments_noise(m, subtract, scale, x, y);
                double big = 0;
                for (size_t i = 0; i < r * r; i++)
                    big = fmax(big, fabs(N[i]));
                for (size_t j = 0, a = 0; j < r; j++)
                    for (size_t l = j; l < r; l++, a++) {
                        double want = (j == l ? 1 : sqrt(2.0)) * N[j * r + l];
                        if (scaled)
                            want *= weights[a];
                        char what[128];
                        snprintf(what, sizeof what, "noise case %zu, scaled %d, "
                                 "subtract %d, entry (%zu, %zu)", c, scaled,
                                 subtract, j, l);
                        tu_assert_close(y[a], want, 1e-12 * (big + 1), what);
                    }
            }
        free(x);
        free(weights);
        free(y);
        free(Z);
        free(A);
        free(AZ);
        free(N);
        free(sx);
        sgdstab_moments_free(m);
        tu_engine_free(&e);
    }
}

static void test_against_reference(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof SHAPES / sizeof SHAPES[0]; c++) {
        const shape_case *sc = &SHAPES[c];
        sgdstab_reference *ref;
        engine e = reference_case(sc, 100 + c, &ref);
        sgdstab_error err;
        size_t batches[3] = {1, (sc->n + 1) / 2, sc->n};
        for (int si = 0; si < 3; si++)
            for (int bi = 0; bi < 3; bi++) {
                size_t B = batches[bi];
                char what[128];
                double ref_crit, ref_rho, rho;
                assert_int_equal(
                    sgdstab_reference_critical(ref, tu_samplings[si], B,
                                               &ref_crit, &err),
                    SGDSTAB_OK);
                snprintf(what, sizeof what, "eta* case %zu, %s, B = %zu", c,
                         sgdstab_sampling_name(tu_samplings[si]), B);
                tu_assert_close_rel(critical(&e, tu_samplings[si], B),
                                    ref_crit, 1e-9, what);
                const double factors[2] = {0.5, 1.7};
                for (int fi = 0; fi < 2; fi++) {
                    double lr = factors[fi] * ref_crit;
                    assert_int_equal(
                        sgdstab_reference_spectrum(ref, lr, tu_samplings[si],
                                                   B, &ref_rho, NULL, &err),
                        SGDSTAB_OK);
                    rho = radius(&e, lr, tu_samplings[si], B);
                    snprintf(what, sizeof what, "rho case %zu, %s, B = %zu, "
                             "eta = %.2f eta*", c,
                             sgdstab_sampling_name(tu_samplings[si]), B,
                             factors[fi]);
                    tu_assert_close(rho, ref_rho, 1e-10, what);
                    /* The verdict: ρ⊥ ≤ 1 exactly when η ≤ η*. */
                    assert_true((rho <= 1) == (lr <= ref_crit));
                    check_eigenmatrix(&e, lr, tu_samplings[si], B, ref_rho,
                                      what);
                }
            }
        sgdstab_reference_free(ref);
        tu_engine_free(&e);
    }
}

/* Curves over every batch size at the default tolerance, where the shared
 * basis solves most members with few or no applications and convergence is
 * judged by the error estimates (eig.h): η* within 1e-9 of the dense
 * reference, the accuracy reported honest, the true error at most twice
 * the estimate (plus the reference's own rounding), and the reference's η*
 * inside the residual interval. */
static void test_curve_against_reference(void **state)
{
    (void)state;
    const shape_case cases[] = {{36, 1, 20, 0}, {9, 3, 30, 0}, {20, 1, 10, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const shape_case *sc = &cases[c];
        sgdstab_reference *ref;
        engine e = reference_case(sc, 900 + c, &ref);
        sgdstab_error err;
        size_t *batches = malloc(sc->n * sizeof *batches);
        sgdstab_critical *cr = malloc(sc->n * sizeof *cr);
        assert_true(batches && cr);
        for (size_t B = 1; B <= sc->n; B++)
            batches[B - 1] = B;
        for (int si = 0; si < 3; si++) {
            assert_int_equal(sgdstab_critical_curve(
                                 e.s, TU_CONFIG(0, 0, tu_samplings[si], e.c),
                                 batches, sc->n, cr, &err),
                             SGDSTAB_OK);
            for (size_t i = 0; i < sc->n; i++) {
                double rc, got = cr[i].lr_critical;
                assert_int_equal(sgdstab_reference_critical(ref,
                                                            tu_samplings[si],
                                                            batches[i], &rc,
                                                            &err),
                                 SGDSTAB_OK);
                char what[128];
                snprintf(what, sizeof what, "curve case %zu, %s, B = %zu", c,
                         sgdstab_sampling_name(tu_samplings[si]), batches[i]);
                assert_true(cr[i].converged);
                tu_assert_close_rel(got, rc, 1e-9, what);
                tu_assert_close_rel(got, rc, 2 * cr[i].rel_accuracy + 1e-12,
                                    what);
                /* The residual interval holds the reference's η* (up to the
                 * reference's own rounding). */
                if (!(cr[i].lr_lower <= rc * (1 + 1e-12) &&
                      rc <= cr[i].lr_upper * (1 + 1e-12)))
                    fail_msg("%s: eta* = %.17g outside [%.17g, %.17g]", what,
                             rc, cr[i].lr_lower, cr[i].lr_upper);
            }
        }
        free(batches);
        free(cr);
        sgdstab_reference_free(ref);
        tu_engine_free(&e);
    }
}

/* ARPACK on the very same operators, on a problem too large for the dense
 * reference (r = 60, dim 1830). */
/* A numerically flat direction (one column of J scaled by 1e-7, so that
 * (1 − ηλ)² = 1 − O(1e-14) there): its slow mode is an almost exact
 * eigenmatrix with ρ ≈ 1 that once hid the top eigenvalue from the shared
 * basis (ρ⊥ reported as 1 − 1e-15 at 1.3 η*).  ρ⊥ against the dense
 * reference above η*(B), and the verdict. */
static void test_flat_direction(void **state)
{
    (void)state;
    for (unsigned long seed = 0; seed < 40; seed++) {
        const size_t n = 8, k = 1 + seed % 2, p = 6;
        sgdstab_rng *rng = sgdstab_rng_alloc(700 + seed);
        assert_non_null(rng);
        double J[8 * 2 * 6];
        sgdstab_rng_gaussian(rng, 1.0, n * k * p, J);
        sgdstab_rng_free(rng);
        for (size_t row = 0; row < n * k; row++)
            J[row * p + p - 1] *= 1e-7;
        sgdstab_problem *prob = tu_problem("values", n, k, p, J, NULL);
        sgdstab_error err;
        sgdstab_reference *ref = sgdstab_reference_alloc(prob, 1.0, &err);
        assert_non_null(ref);
        engine e = engine_make(prob, 1.0);
        for (size_t B = 1; B <= 2; B++) {
            double ref_crit, ref_rho;
            assert_int_equal(sgdstab_reference_critical(
                                 ref, SGDSTAB_SAMPLING_WITHOUT, B, &ref_crit,
                                 &err), SGDSTAB_OK);
            double lr = 1.3 * ref_crit;
            assert_int_equal(sgdstab_reference_spectrum(
                                 ref, lr, SGDSTAB_SAMPLING_WITHOUT, B,
                                 &ref_rho, NULL, &err), SGDSTAB_OK);
            char what[96];
            snprintf(what, sizeof what, "flat direction, seed %lu, B = %zu",
                     seed, B);
            double rho = radius(&e, lr, SGDSTAB_SAMPLING_WITHOUT, B);
            tu_assert_close(rho, ref_rho, 1e-10 * ref_rho, what);
            assert_true(rho > 1);
        }
        sgdstab_reference_free(ref);
        tu_engine_free(&e);
    }
}

/* ------------------------------------------- supplied H near a minimum */

/* The eigen-decomposition of G = JᵀJ/n for J (n·k × p, row-major):
 * ascending w, eigenvectors in the columns of Q (p × p, row-major). */
static void gauss_newton_eigen(const double *J, size_t n, size_t k, size_t p,
                               double *w, double *Q)
{
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)p, (int)(n * k),
                1.0 / (double)n, J, (int)p, 0.0, Q, (int)p);
    assert_int_equal(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)p,
                                   Q, (lapack_int)p, w), 0);
}

/* A problem with J and H = Q diag(h) Qᵀ (both copied). */
static sgdstab_problem *problem_with_hessian(size_t n, size_t k, size_t p,
                                             const double *J, const double *Q,
                                             const double *h)
{
    double *H = calloc(p * p, sizeof *H);
    assert_non_null(H);
    for (size_t i = 0; i < p; i++)
        for (size_t j = 0; j < p; j++)
            for (size_t c = 0; c < p; c++)
                H[i * p + j] += Q[i * p + c] * h[c] * Q[j * p + c];
    for (size_t i = 0; i < p; i++)
        for (size_t j = 0; j < i; j++)
            H[i * p + j] = H[j * p + i] = 0.5 * (H[i * p + j] + H[j * p + i]);
    sgdstab_problem *prob = tu_problem("near a minimum", n, k, p, J, H);
    free(H);
    return prob;
}

/* The engine at a flat tolerance (0: strict). */
static engine engine_flat(sgdstab_problem *prob, double flat_rtol)
{
    engine e = {prob, NULL, NULL, 1.0};
    sgdstab_error err;
    sgdstab_reduce_options opt;
    sgdstab_reduce_options_init(&opt);
    opt.flat_rtol = flat_rtol;
    assert_int_equal(sgdstab_reduce(prob, &opt, &e.red, &err), SGDSTAB_OK);
    e.s = sgdstab_stability_alloc(e.red, &err);
    assert_non_null(e.s);
    return e;
}

/* ρ⊥ of e against the dense reference of ref_prob (the same problem, or
 * the one e must be equivalent to), every sampling, B ∈ {1, n/2, n}, at the
 * given learning rates. */
static void radius_against(engine *e, const sgdstab_problem *ref_prob,
                           const double *lrs, size_t nlr, const char *label)
{
    sgdstab_error err;
    sgdstab_reference *ref = sgdstab_reference_alloc(ref_prob, 1.0, &err);
    assert_non_null(ref);
    size_t n = e->red->n, batches[3] = {1, (n + 1) / 2, n};
    for (int si = 0; si < 3; si++)
        for (int bi = 0; bi < 3; bi++)
            for (size_t li = 0; li < nlr; li++) {
                double ref_rho;
                assert_int_equal(sgdstab_reference_spectrum(ref, lrs[li],
                                                            tu_samplings[si],
                                                            batches[bi],
                                                            &ref_rho, NULL,
                                                            &err),
                                 SGDSTAB_OK);
                char what[160];
                snprintf(what, sizeof what, "%s, %s, B = %zu, eta = %g", label,
                         sgdstab_sampling_name(tu_samplings[si]), batches[bi],
                         lrs[li]);
                tu_assert_close(radius(e, lrs[li], tu_samplings[si],
                                       batches[bi]),
                                ref_rho, 1e-10 * fmax(1, ref_rho), what);
            }
    sgdstab_reference_free(ref);
}

/* Item 1 of the issue that found it: an H with a small negative eigenvalue
 * (−2e-3·λmax) and an exact zero on a direction J moves.  The shared basis
 * once settled on that zero's mode, ρ = 1 + 1e-16, where (1 − ηλmin)² > 1
 * is a lower bound for every input.  ρ⊥ against the dense reference, every
 * sampling and batch size, and the bound. */
static void test_negative_curvature_radius(void **state)
{
    (void)state;
    const shape_case shapes[] = {{10, 1, 6, 1}, {8, 3, 5, 1}, {20, 1, 12, 1}};
    for (size_t c = 0; c < 3; c++)
        for (unsigned long seed = 0; seed < 3; seed++) {
            const shape_case *sc = &shapes[c];
            size_t n = sc->n, k = sc->k, p = sc->p;
            double *J = malloc(n * k * p * sizeof *J), *w = malloc(p * sizeof *w);
            double *Q = malloc(p * p * sizeof *Q);
            assert_true(J && w && Q);
            sgdstab_rng *rng = sgdstab_rng_alloc(1300 + 10 * c + seed);
            sgdstab_rng_gaussian(rng, 1 / sqrt((double)p), n * k * p, J);
            sgdstab_rng_free(rng);
            gauss_newton_eigen(J, n, k, p, w, Q);
            double wmax = w[p - 1];
            w[0] = 0;              /* null(H), moved by J */
            w[1] = -2e-3 * wmax;   /* not a minimum, beyond any tolerance */
            const double lrs[2] = {0.4 * 2 / wmax, 1.5 * 2 / wmax};
            /* The first solve of a fresh workspace, full batch: ρ⊥ is the
             * largest (1 − ηh_j)² (n > p: J moves every direction). */
            for (int li = 0; li < 2; li++) {
                engine e = engine_make(problem_with_hessian(n, k, p, J, Q, w),
                                       1.0);
                double want = 0;
                for (size_t j = 0; j < p; j++)
                    want = fmax(want, pow(1 - lrs[li] * w[j], 2));
                assert_true(want >= pow(1 + lrs[li] * 2e-3 * wmax, 2));
                tu_assert_close_rel(radius(&e, lrs[li],
                                           SGDSTAB_SAMPLING_WITHOUT, n),
                                    want, 1e-12,
                                    "negative curvature, full batch");
                tu_engine_free(&e);
            }
            engine e = engine_make(problem_with_hessian(n, k, p, J, Q, w), 1.0);
            assert_true(e.red->hessian_min < 0);
            char label[64];
            snprintf(label, sizeof label, "negative curvature, case %zu/%lu",
                     c, seed);
            radius_against(&e, e.prob, lrs, 2, label);
            sgdstab_critical cr;
            sgdstab_error err;
            assert_int_equal(
                sgdstab_critical_lr(
                    e.s, TU_CONFIG(0, n, SGDSTAB_SAMPLING_WITHOUT, e.c), &cr,
                    &err),
                SGDSTAB_OK);
            assert_int_equal(cr.kind, SGDSTAB_NOT_A_MINIMUM);
            tu_engine_free(&e);
            free(J);
            free(w);
            free(Q);
        }
}

/* Item 2: negative curvature at the level of a training residual is flat.
 * J is random, n > p, with one column zero (a null direction of J) and one
 * scaled by 1e-4 (curvature ≈ 1e-9·λmax along it: J moves that direction,
 * weakly).  h = w (H = G) except at one index, on null(J), on the weakly
 * moved direction or on one J moves with curvature > 1e-3·λmax:
 *  - h = −5e-8·λmax: flat at the default tolerance, not a minimum when
 *    strict; −1e-4·λmax: not a minimum at the default, flat at 1e-3;
 *  - flat ⇒ η*(B) and ρ⊥ those of the problem with h = 0 there when J never
 *    moves the direction, and with h = |h| when it does (the dense
 *    reference on that problem). */
enum { AT_NULL, AT_WEAK, AT_STRONG };

typedef struct {
    int at;            /* which direction */
    double h_rel;      /* its new eigenvalue, relative to λmax */
    double flat_rtol;  /* the engine's tolerance */
    sgdstab_minimum_kind kind;
    size_t flat_negative, flat_moved;
} flat_case;

/* The flat case's equivalent problem, by the dense reference: η*(B) for
 * every B (to 1e-9, or 10·κ·ε where curvature |h| ≪ λmax makes 𝒜₁ so
 * ill-conditioned, κ = λmax/min h > 0, that the reference's own dsygvd
 * is no more accurate) and ρ⊥ as radius_against. */
static void flat_against(engine *e, const double *J, const double *Q,
                         const double *h, const char *label)
{
    double hmin = INFINITY, hmax = 0;
    for (size_t j = 0; j < e->red->p; j++)
        if (h[j] > 0) {
            hmin = fmin(hmin, h[j]);
            hmax = fmax(hmax, h[j]);
        }
    const double eta_tol = fmax(1e-9, 10 * hmax / hmin * DBL_EPSILON);
    const size_t n = e->red->n, k = 1, p = e->red->p;
    sgdstab_problem *flat = problem_with_hessian(n, k, p, J, Q, h);
    sgdstab_error err;
    sgdstab_reference *ref = sgdstab_reference_alloc(flat, 1.0, &err);
    assert_non_null(ref);
    assert_int_equal(sgdstab_reference_dim(ref), e->red->r);
    for (size_t B = 1; B <= n; B++) {
        double ref_crit;
        assert_int_equal(sgdstab_reference_critical(
                             ref, SGDSTAB_SAMPLING_WITHOUT, B, &ref_crit,
                             &err), SGDSTAB_OK);
        tu_assert_close_rel(critical(e, SGDSTAB_SAMPLING_WITHOUT, B), ref_crit,
                            eta_tol, label);
    }
    sgdstab_reference_free(ref);
    const double wmax = sgdstab_reduced_hessian_max(e->red);
    const double lrs[2] = {0.3 / wmax, 3 / wmax};
    radius_against(e, flat, lrs, 2, label);
    sgdstab_problem_free(flat);
}

static void test_flat_negative_curvature(void **state)
{
    (void)state;
    const size_t n = 12, k = 1, p = 9;
    const double tol = SGDSTAB_FLAT_RTOL_DEFAULT;
    const flat_case cases[] = {
        {AT_NULL, -5e-8, tol, SGDSTAB_MINIMUM_OK, 1, 0},
        {AT_NULL, -5e-8, 0, SGDSTAB_NOT_A_MINIMUM, 0, 0},
        {AT_NULL, -1e-4, tol, SGDSTAB_NOT_A_MINIMUM, 0, 0},
        {AT_NULL, -1e-4, 1e-3, SGDSTAB_MINIMUM_OK, 1, 0},
        {AT_WEAK, -5e-8, tol, SGDSTAB_MINIMUM_OK, 1, 1},
        {AT_WEAK, -5e-8, 0, SGDSTAB_NOT_A_MINIMUM, 0, 0},
        {AT_STRONG, -5e-8, tol, SGDSTAB_MINIMUM_OK, 1, 1},
        {AT_STRONG, -1e-4, 1e-3, SGDSTAB_MINIMUM_OK, 1, 1},
    };
    double J[12 * 9], w[9], Q[81];
    sgdstab_rng *rng = sgdstab_rng_alloc(1400);
    sgdstab_rng_gaussian(rng, 1 / sqrt((double)p), n * k * p, J);
    sgdstab_rng_free(rng);
    for (size_t row = 0; row < n * k; row++) {
        J[row * p] = 0;
        J[row * p + p - 1] *= 1e-4;
    }
    gauss_newton_eigen(J, n, k, p, w, Q);
    double wmax = w[p - 1];
    /* Ascending: the null direction, the weakly moved one, the rest. */
    const size_t index[3] = {0, 1, 2};
    assert_true(w[0] < 1e-14 * wmax);
    assert_true(w[1] > 1e-9 * wmax && w[1] < 1e-7 * wmax);
    assert_true(w[2] > 1e-3 * wmax);
    w[0] = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const flat_case *fc = &cases[c];
        size_t at = index[fc->at];
        double h[9], h_equiv[9];
        memcpy(h, w, sizeof h);
        memcpy(h_equiv, w, sizeof h_equiv);
        h[at] = fc->h_rel * wmax;
        h_equiv[at] = fc->at == AT_NULL ? 0 : -h[at];
        engine e = engine_flat(problem_with_hessian(n, k, p, J, Q, h),
                               fc->flat_rtol);
        char label[64];
        snprintf(label, sizeof label, "flat case %zu", c);
        assert_int_equal(e.red->flat_negative, fc->flat_negative);
        assert_int_equal(e.red->flat_moved, fc->flat_moved);
        if (fc->flat_negative)
            tu_assert_close(e.red->flat_min, fc->h_rel * wmax, 1e-12 * wmax,
                            label);
        sgdstab_critical cr;
        sgdstab_error err;
        assert_int_equal(
            sgdstab_critical_lr(e.s,
                                TU_CONFIG(0, 2, SGDSTAB_SAMPLING_WITHOUT, e.c),
                                &cr, &err),
            SGDSTAB_OK);
        assert_int_equal(cr.kind, fc->kind);
        if (fc->kind == SGDSTAB_NOT_A_MINIMUM) {
            /* ρ⊥ ≥ (1 − ηλmin)² > 1 at every η. */
            const double lrs[2] = {0.3 / wmax, 3 / wmax};
            for (int li = 0; li < 2; li++)
                assert_true(radius(&e, lrs[li], SGDSTAB_SAMPLING_WITH, 2) >=
                            pow(1 - lrs[li] * h[at], 2) * (1 - 1e-15));
            if (fc->h_rel < -1e-6)  /* within reach of the reference */
                radius_against(&e, e.prob, lrs, 2, label);
        } else {
            flat_against(&e, J, Q, h_equiv, label);
        }
        tu_engine_free(&e);
    }
}

/* J scaled by s: η*(B)·s² and ρ⊥ at η/s² do not change, anywhere in the
 * range of curvatures sgdstab admits; beyond it, a clear refusal. */
static void test_scale_invariance(void **state)
{
    (void)state;
    const size_t n = 20, k = 1, p = 8;
    double J[20 * 8], Js[20 * 8];
    sgdstab_rng *rng = sgdstab_rng_alloc(1500);
    sgdstab_rng_gaussian(rng, 1 / sqrt((double)p), n * k * p, J);
    sgdstab_rng_free(rng);
    engine base = engine_make(tu_problem("values", n, k, p, J, NULL), 1.0);
    /* curvature from about 1e-50 to 1e50 */
    const double scales[4] = {1e-25, 1e-12, 1e12, 1e25};
    for (int i = 0; i < 4; i++) {
        double s = scales[i];
        for (size_t j = 0; j < n * k * p; j++)
            Js[j] = J[j] * s;
        engine e = engine_make(tu_problem("values", n, k, p, Js, NULL), 1.0);
        assert_int_equal(e.red->r, base.red->r);
        for (int si = 0; si < 3; si++)
            for (size_t B = 1; B <= n; B += 6) {
                double c0 = critical(&base, tu_samplings[si], B);
                tu_assert_close_rel(critical(&e, tu_samplings[si], B) * s * s,
                                    c0, 1e-9, "eta* s^2");
                double lr = 1.3 * c0;
                double r1 = radius(&e, lr / (s * s), tu_samplings[si], B);
                double r0 = radius(&base, lr, tu_samplings[si], B);
                tu_assert_close(r1, r0, 1e-10, "rho at eta / s^2");
            }
        tu_engine_free(&e);
    }
    tu_engine_free(&base);
    for (int i = 0; i < 2; i++) {
        double s = i ? 1e32 : 1e-32;
        for (size_t j = 0; j < n * k * p; j++)
            Js[j] = J[j] * s;
        sgdstab_problem *prob = tu_problem("values", n, k, p, Js, NULL);
        sgdstab_reduced *red = NULL;
        sgdstab_error err;
        assert_int_equal(sgdstab_reduce(prob, NULL, &red, &err),
                         SGDSTAB_EVALUE);
        assert_null(red);
        assert_non_null(strstr(err.msg, "out of range"));
        sgdstab_problem_free(prob);
    }
}

static void test_against_arpack(void **state)
{
    (void)state;
    engine fast = engine_make(random_problem(90, 1, 60, 0, 0, 7), 1.0);
    engine slow = engine_make(random_problem(90, 1, 60, 0, 0, 7), 1.0);
    sgdstab_eig_options opt = {.arpack = 1, .tol = 1e-13};
    sgdstab_stability_set_eig(slow.s, &opt);
    for (int si = 0; si < 3; si++) {
        size_t batches[3] = {1, 10, 90};
        for (int bi = 0; bi < 3; bi++) {
            double a = critical(&fast, tu_samplings[si], batches[bi]);
            double b = critical(&slow, tu_samplings[si], batches[bi]);
            tu_assert_close_rel(a, b, 1e-9, "eta* Davidson vs ARPACK");
            double ra = radius(&fast, 1.3 * a, tu_samplings[si], batches[bi]);
            double rb = radius(&slow, 1.3 * a, tu_samplings[si], batches[bi]);
            tu_assert_close(ra, rb, 1e-10, "rho Davidson vs ARPACK");
        }
    }
    tu_engine_free(&fast);
    tu_engine_free(&slow);
}

/* ----------------------------------------------------------- closed forms */

/* E[g_ξ²] for scalar per-sample curvatures x_i (g_ξ = batch mean of x_i
 * under the sampling rule), by enumerating every batch. */
static double batch_second_moment(const double *x, size_t n, size_t B,
                                  sgdstab_sampling smp)
{
    double total = 0, weight = 0;
    if (smp == SGDSTAB_SAMPLING_WITH) {
        /* all n^B ordered draws */
        size_t count = 1;
        for (size_t i = 0; i < B; i++)
            count *= n;
        for (size_t code = 0; code < count; code++) {
            double g = 0;
            for (size_t i = 0, c = code; i < B; i++, c /= n)
                g += x[c % n];
            g /= (double)B;
            total += g * g;
            weight += 1;
        }
        return total / weight;
    }
    for (size_t mask = 0; mask < ((size_t)1 << n); mask++) {
        size_t size = (size_t)__builtin_popcountll(mask);
        double g = 0, prob;
        for (size_t i = 0; i < n; i++)
            if (mask >> i & 1)
                g += x[i];
        g /= (double)B;
        if (!((prob = tu_subset_weight(smp, n, B, size)) > 0))
            continue;
        total += prob * g * g;
        weight += prob;
    }
    return total / weight;
}

/* p = 1: the Wu–Ma–E one-dimensional formula.  With λ = mean x_i² and
 * E[h_ξ²] by enumeration, ρ = 1 − 2ηλ + η²E[h_ξ²] and η* = 2λ / E[h_ξ²]. */
static void test_one_dimension(void **state)
{
    (void)state;
    const double jac[7] = {0.3, -1.2, 0.8, 2.0, -0.5, 1.1, 0.05};
    double x[7], lambda = 0;
    for (int i = 0; i < 7; i++) {
        x[i] = jac[i] * jac[i];
        lambda += x[i] / 7;
    }
    engine e = engine_make(tu_problem("values", 7, 1, 1, jac, NULL), 1.0);
    for (int si = 0; si < 3; si++)
        for (size_t B = 1;
             B <= (tu_samplings[si] == SGDSTAB_SAMPLING_WITH ? 4 : 7); B++) {
            double m2 = batch_second_moment(x, 7, B, tu_samplings[si]);
            double eta_star = 2 * lambda / m2;
            tu_assert_close_rel(critical(&e, tu_samplings[si], B), eta_star,
                                1e-12, "1-D eta*");
            for (double f = 0.25; f < 3; f += 0.5) {
                double eta = f * eta_star;
                tu_assert_close(radius(&e, eta, tu_samplings[si], B),
                                1 - 2 * eta * lambda + eta * eta * m2, 1e-12,
                                "1-D rho");
            }
        }
    tu_engine_free(&e);
}

/* Rank one, J_i = c_i vᵀ: the same as p = 1 with Jacobians c_i‖v‖. */
static void test_rank_one(void **state)
{
    (void)state;
    const double c[5] = {1.0, -0.4, 0.7, 1.9, 0.2};
    const double v[4] = {0.5, -1.0, 0.25, 2.0};
    double J[20], x[5], vv = 0, lambda = 0;
    for (int j = 0; j < 4; j++)
        vv += v[j] * v[j];
    for (int i = 0; i < 5; i++) {
        for (int j = 0; j < 4; j++)
            J[i * 4 + j] = c[i] * v[j];
        x[i] = c[i] * c[i] * vv;
        lambda += x[i] / 5;
    }
    engine e = engine_make(tu_problem("values", 5, 1, 4, J, NULL), 1.0);
    assert_int_equal(e.red->r, 1);
    for (int si = 0; si < 3; si++)
        for (size_t B = 1; B <= 5; B++) {
            double m2 = batch_second_moment(x, 5, B, tu_samplings[si]);
            tu_assert_close_rel(critical(&e, tu_samplings[si], B),
                                2 * lambda / m2, 1e-12, "rank-one eta*");
        }
    tu_engine_free(&e);
}

/* B = n without replacement (and bernoulli with B = n) is full-batch GD:
 * η* = 2/λmax(G), ρ⊥ = max over the non-zero λ_j of (1 − ηλ_j)². */
static void test_full_batch(void **state)
{
    (void)state;
    const size_t shapes[3][3] = {{25, 1, 10}, {6, 1, 15}, {8, 3, 11}};
    for (int c = 0; c < 3; c++) {
        size_t n = shapes[c][0], k = shapes[c][1], p = shapes[c][2];
        engine e = engine_make(random_problem(n, k, p, 0, 0, 40 + c), 1.0);
        double *w = malloc(p * sizeof *w);
        tu_gram_eigenvalues(e.prob, w);
        double lmax = w[p - 1], tol = 1e-9 * lmax;
        tu_assert_close_rel(critical(&e, SGDSTAB_SAMPLING_WITHOUT, n),
                            2 / lmax, 1e-10, "full batch eta*");
        tu_assert_close_rel(critical(&e, SGDSTAB_SAMPLING_BERNOULLI, n),
                            2 / lmax, 1e-10, "bernoulli B = n eta*");
        for (double f = 0.3; f < 4; f += 0.6) {
            double eta = f / lmax, expect = 0;
            for (size_t j = 0; j < p; j++)
                if (w[j] > tol)
                    expect = fmax(expect, (1 - eta * w[j]) * (1 - eta * w[j]));
            tu_assert_close(radius(&e, eta, SGDSTAB_SAMPLING_WITHOUT, n),
                            expect, 1e-11, "full batch rho");
        }
        free(w);
        tu_engine_free(&e);
    }
}

/* One sample: every batch is that sample, so η* = 2/σmax(J_1)². */
static void test_one_sample(void **state)
{
    (void)state;
    for (size_t k = 1; k <= 3; k += 2) {
        engine e = engine_make(random_problem(1, k, 6, 0, 0, 60 + k), 1.0);
        double s[3], A[18], superb[3];
        memcpy(A, e.prob->J, k * 6 * sizeof *A);
        assert_int_equal(LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'N', 'N',
                                        (lapack_int)k, 6, A, 6, s, NULL, 1,
                                        NULL, 1, superb), 0);
        for (int si = 0; si < 3; si++)
            tu_assert_close_rel(critical(&e, tu_samplings[si], 1),
                                2 / (s[0] * s[0]), 1e-10, "one-sample eta*");
        tu_engine_free(&e);
    }
}

/* -------------------------------------------------------------- theorems */

/* η*(B) non-decreasing in B (Mulayoff–Michaeli); the shared-basis curve
 * equals solves from scratch; ρ⊥(η*) = 1, below 1 just before, above just
 * after. */
static void test_monotone_and_boundary(void **state)
{
    (void)state;
    const shape_case cases[3] = {{24, 1, 40, 0}, {30, 3, 14, 0}, {16, 1, 9, 1}};
    for (int c = 0; c < 3; c++) {
        engine e = engine_make(random_problem(cases[c].n, cases[c].k,
                                              cases[c].p, cases[c].with_H, 0.5,
                                              80 + c), 1.0);
        size_t n = cases[c].n;
        size_t *batches = malloc(n * sizeof *batches);
        sgdstab_critical *cr = malloc(n * sizeof *cr);
        for (size_t B = 1; B <= n; B++)
            batches[B - 1] = B;
        for (int si = 0; si < 3; si++) {
            sgdstab_error err;
            assert_int_equal(sgdstab_critical_curve(
                                 e.s, TU_CONFIG(0, 0, tu_samplings[si], e.c),
                                 batches, n, cr, &err),
                             SGDSTAB_OK);
            engine fresh = engine_make(random_problem(cases[c].n, cases[c].k,
                                                      cases[c].p,
                                                      cases[c].with_H, 0.5,
                                                      80 + c), 1.0);
            for (size_t i = 0; i < n; i++) {
                if (i > 0 && cr[i].lr_critical < cr[i - 1].lr_critical * (1 - 1e-10))
                    fail_msg("eta*(B) decreases from B = %zu to %zu: %.17g > "
                             "%.17g (%s)", i, i + 1, cr[i - 1].lr_critical,
                             cr[i].lr_critical,
                             sgdstab_sampling_name(tu_samplings[si]));
                /* The curve and a single solve agree to their accuracy. */
                sgdstab_critical one;
                assert_int_equal(
                    sgdstab_critical_lr(
                        fresh.s,
                        TU_CONFIG(0, i + 1, tu_samplings[si], fresh.c), &one,
                        &err),
                    SGDSTAB_OK);
                double acc = cr[i].rel_accuracy + one.rel_accuracy + 1e-13;
                if (!(fabs(cr[i].lr_critical / one.lr_critical - 1) <= acc))
                    fail_msg("curve vs single solve, B = %zu (%s): %.17g vs "
                             "%.17g, beyond the accuracies %.2g + %.2g", i + 1,
                             sgdstab_sampling_name(tu_samplings[si]),
                             cr[i].lr_critical, one.lr_critical,
                             cr[i].rel_accuracy, one.rel_accuracy);
                /* At η equal to the curve's η*, a fresh analysis (which
                 * solves η* again) says "threshold", never a coin flip. */
                sgdstab_analysis an;
                assert_int_equal(
                    sgdstab_analyze(fresh.s,
                                    TU_CONFIG(cr[i].lr_critical, i + 1,
                                              tu_samplings[si], fresh.c),
                                    &an, NULL, &err),
                    SGDSTAB_OK);
                assert_int_equal(an.verdict, SGDSTAB_VERDICT_THRESHOLD);
                assert_true(an.critical.lr_lower <= an.critical.lr_critical &&
                            an.critical.lr_critical <= an.critical.lr_upper);
            }
            tu_engine_free(&fresh);
            size_t B = (n + 2) / 3;
            double star = cr[B - 1].lr_critical;
            tu_assert_close(radius(&e, star, tu_samplings[si], B), 1.0, 1e-9,
                            "rho at eta*");
            assert_true(radius(&e, 0.99 * star, tu_samplings[si], B) < 1);
            assert_true(radius(&e, 1.01 * star, tu_samplings[si], B) > 1);
            assert_int_equal(sgdstab_verdict_at(&cr[B - 1], 0.99 * star),
                             SGDSTAB_VERDICT_STABLE);
            assert_int_equal(sgdstab_verdict_at(&cr[B - 1], 1.01 * star),
                             SGDSTAB_VERDICT_UNSTABLE);
            /* The band: twice this solve's accuracy and the tolerance. */
            double band = 2 * (cr[B - 1].rel_accuracy + 3e-10);
            assert_int_equal(sgdstab_verdict_at(&cr[B - 1],
                                                star * (1 - 0.99 * band)),
                             SGDSTAB_VERDICT_THRESHOLD);
            assert_int_equal(sgdstab_verdict_at(&cr[B - 1],
                                                star * (1 + 1.01 * band)),
                             SGDSTAB_VERDICT_UNSTABLE);
            assert_int_equal(sgdstab_verdict_at(&cr[B - 1],
                                                star * (1 - 1.01 * band)),
                             SGDSTAB_VERDICT_STABLE);
        }
        free(batches);
        free(cr);
        tu_engine_free(&e);
    }
}

/* H with a negative eigenvalue: not a minimum, unstable for every η, and
 * the dense reference agrees that ρ⊥ > 1 even for tiny η. */
static void test_not_a_minimum(void **state)
{
    (void)state;
    sgdstab_problem *prob = random_problem(12, 1, 6, 1, -0.4, 5);
    sgdstab_error err;
    sgdstab_reference *ref = sgdstab_reference_alloc(prob, 1.0, &err);
    engine e = engine_make(prob, 1.0);
    assert_true(e.red->hessian_min < 0);
    for (double lr = 1e-3; lr < 10; lr *= 7) {
        sgdstab_analysis an;
        assert_int_equal(
            sgdstab_analyze(e.s,
                            TU_CONFIG(lr, 3, SGDSTAB_SAMPLING_WITHOUT, e.c),
                            &an, NULL, &err),
            SGDSTAB_OK);
        assert_int_equal(an.critical.kind, SGDSTAB_NOT_A_MINIMUM);
        assert_false(an.stable);
        assert_true(an.radius.rho > 1);
        double ref_rho;
        assert_int_equal(sgdstab_reference_spectrum(
                             ref, lr, SGDSTAB_SAMPLING_WITHOUT, 3, &ref_rho,
                             NULL, &err), SGDSTAB_OK);
        tu_assert_close(an.radius.rho, ref_rho, 1e-10, "rho, not a minimum");
        assert_true(an.escape_rate_per_step > 0);
    }
    /* The reference refuses η* when H is not positive definite. */
    double crit;
    assert_int_equal(sgdstab_reference_critical(ref, SGDSTAB_SAMPLING_WITHOUT,
                                                3, &crit, &err), SGDSTAB_EVALUE);
    sgdstab_reference_free(ref);
    tu_engine_free(&e);
}

/* A loss scale c is the problem with A_i → c·A_i: η* divides by c and ρ at
 * η equals ρ of the canonical problem at c·η. */
static void test_loss_scale(void **state)
{
    (void)state;
    engine one = engine_make(random_problem(14, 3, 10, 0, 0, 9), 1.0);
    engine mse = engine_make(random_problem(14, 3, 10, 0, 0, 9), 2.0 / 3.0);
    for (int si = 0; si < 3; si++) {
        double a = critical(&one, tu_samplings[si], 4);
        tu_assert_close_rel(critical(&mse, tu_samplings[si], 4), a * 1.5,
                            1e-10, "eta* with loss scale");
        tu_assert_close(radius(&mse, 0.9 * a, tu_samplings[si], 4),
                        radius(&one, 0.6 * a, tu_samplings[si], 4), 1e-11,
                        "rho with loss scale");
    }
    tu_assert_close_rel(
        sgdstab_lr_mean_limit(
            mse.red, TU_CONFIG(0, 0, SGDSTAB_SAMPLING_WITHOUT, mse.c)),
        1.5 * sgdstab_lr_mean_limit(
                  one.red, TU_CONFIG(0, 0, SGDSTAB_SAMPLING_WITHOUT, one.c)),
        1e-14, "mean limit with loss scale");
    tu_engine_free(&one);
    tu_engine_free(&mse);
}

/* ------------------------------------------------------------- evolution */

/* S ← E[(I − ηH_ξ) S (I − ηH_ξ)] over every batch of B distinct samples, in
 * parameter space (H = G). */
static void brute_force_step(const sgdstab_problem *prob, size_t B, double eta,
                             double *S, double *work)
{
    size_t n = prob->n, k = prob->k, p = prob->p, count = 0;
    double *M = work, *T = work + p * p, *acc = work + 2 * p * p;
    memset(acc, 0, p * p * sizeof *acc);
    for (size_t mask = 0; mask < ((size_t)1 << n); mask++) {
        if ((size_t)__builtin_popcountll(mask) != B)
            continue;
        /* M = I − (η/B) Σ_{i∈ξ} J_iᵀ J_i */
        memset(M, 0, p * p * sizeof *M);
        for (size_t i = 0; i < n; i++)
            if (mask >> i & 1)
                cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)p,
                            (int)k, -eta / (double)B, prob->J + i * k * p,
                            (int)p, 1.0, M, (int)p);
        for (size_t a = 0; a < p; a++) {
            M[a * p + a] += 1;
            for (size_t b = 0; b < a; b++)
                M[a * p + b] = M[b * p + a];
        }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)p, (int)p,
                    (int)p, 1.0, M, (int)p, S, (int)p, 0.0, T, (int)p);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)p, (int)p,
                    (int)p, 1.0, T, (int)p, M, (int)p, 1.0, acc, (int)p);
        count++;
    }
    for (size_t i = 0; i < p * p; i++)
        S[i] = acc[i] / (double)count;
}

static void test_evolve_brute_force(void **state)
{
    (void)state;
    /* n = 5, k = 2, p = 6 with a null direction (column 5 is zero). */
    sgdstab_problem *prob = random_problem(5, 2, 6, 0, 0, 11);
    for (size_t i = 0; i < 10; i++)
        prob->J[i * 6 + 5] = 0;
    engine e = engine_make(prob, 1.0);
    size_t p = 6, r = e.red->r, steps = 25, B = 2;
    assert_int_equal(r, 5);
    /* A random PSD S_0 = A Aᵀ with a component along the null direction. */
    double A[36], S[36], G[36] = {0}, work[3 * 36];
    sgdstab_rng *rng = sgdstab_rng_alloc(3);
    sgdstab_rng_gaussian(rng, 1.0, 36, A);
    sgdstab_rng_free(rng);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 6, 6, 6, 1.0 / 6, A, 6,
                A, 6, 0.0, S, 6);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, 6, 10, 1.0 / 5,
                prob->J, 6, 0.0, G, 6);
    for (size_t a = 0; a < p; a++)
        for (size_t b = 0; b < a; b++)
            G[a * p + b] = G[b * p + a];
    double eta = 0.8 * critical(&e, 0, B), m2[26], loss[26];
    sgdstab_error err;
    assert_int_equal(sgdstab_evolve(prob, e.red,
                                    TU_CONFIG(eta, B, SGDSTAB_SAMPLING_WITHOUT,
                                              1.0),
                                    &(sgdstab_start){S, 0}, NULL, steps, m2,
                                    loss, &err), SGDSTAB_OK);
    for (size_t t = 0; t <= steps; t++) {
        double tr = 0, trg = 0;
        for (size_t a = 0; a < p; a++)
            tr += S[a * p + a];
        for (size_t i = 0; i < p * p; i++)
            trg += G[i] * S[i];
        tu_assert_close_rel(m2[t], tr, 1e-10, "E|delta_t|^2");
        tu_assert_close_rel(loss[t], 0.5 * trg, 1e-9, "E L_t");
        brute_force_step(prob, B, eta, S, work);
    }
    tu_engine_free(&e);
}

/* ------------------------------------------------------- phase diagrams */

/* A phase grid point by point against the dense reference: ρ⊥ at every
 * (B, η), the escape rates from it, the verdict against the reference η*,
 * the boundary column, and the theory limits carried per batch size. */
static void test_phase_against_reference(void **state)
{
    (void)state;
    const shape_case cases[] = {{14, 1, 6, 0}, {5, 3, 8, 0}, {9, 1, 5, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const shape_case *sc = &cases[c];
        sgdstab_reference *ref;
        engine e = reference_case(sc, 700 + c, &ref);
        sgdstab_error err;
        sgdstab_theory th;
        int with_th = !sc->with_H;  /* theory needs H = G */
        if (with_th)
            assert_int_equal(
                sgdstab_theory_compute(
                    e.red, TU_CONFIG(0, 0, SGDSTAB_SAMPLING_WITHOUT, 1.0), &th,
                    &err),
                SGDSTAB_OK);
        const size_t batches[3] = {1, 2, sc->n};
        enum { NB = 3, NL = 7 };
        /* Learning rates from well inside to well past every η*(B). */
        double lrs[NL],
            lo = 0.2 * critical(&e, SGDSTAB_SAMPLING_WITH, 1),
            hi =
                3 * sgdstab_lr_mean_limit(
                        e.red, TU_CONFIG(0, 0, SGDSTAB_SAMPLING_WITHOUT, e.c));
        for (int j = 0; j < NL; j++)
            lrs[j] = lo * pow(hi / lo, j / (double)(NL - 1));
        const sgdstab_phase_axes ax = {.batches = batches, .nb = NB,
                                       .lrs = lrs, .nl = NL};
        for (int si = 0; si < 3; si++) {
            sgdstab_phase_boundary bd[NB];
            sgdstab_phase_point grid[NB * NL];
            assert_int_equal(
                sgdstab_phase_compute(e.s, with_th ? &th : NULL,
                                      TU_CONFIG(0, 0, tu_samplings[si], e.c),
                                      &ax, bd, grid, &err),
                SGDSTAB_OK);
            for (int i = 0; i < NB; i++) {
                char what[160];
                double ref_crit, a, b;
                assert_int_equal(sgdstab_reference_critical(ref,
                                                            tu_samplings[si],
                                                            batches[i],
                                                            &ref_crit, &err),
                                 SGDSTAB_OK);
                snprintf(what, sizeof what, "phase boundary case %zu, %s, "
                         "B = %zu", c, sgdstab_sampling_name(tu_samplings[si]),
                         batches[i]);
                assert_int_equal(bd[i].batch, batches[i]);
                tu_assert_close_rel(bd[i].critical.lr_critical, ref_crit, 1e-9,
                                    what);
                tu_assert_close_rel(
                    bd[i].lr_critical_mean,
                    sgdstab_lr_mean_limit(
                        e.red, TU_CONFIG(0, 0, SGDSTAB_SAMPLING_WITHOUT, e.c)),
                    1e-15, what);
                assert_int_equal(sgdstab_batch_coefficients(tu_samplings[si],
                                                            sc->n, batches[i],
                                                            &a, &b, &err),
                                 SGDSTAB_OK);
                assert_true(bd[i].a == a && bd[i].b == b);
                if (with_th) {
                    sgdstab_lr_bounds lb;
                    sgdstab_theory_lr_bounds(&th, a, b, &lb);
                    assert_memory_equal(&bd[i].bounds, &lb, sizeof lb);
                } else {
                    assert_true(isnan(bd[i].bounds.mean) &&
                                isnan(bd[i].bounds.wu_wang_su));
                }
                for (int j = 0; j < NL; j++) {
                    const sgdstab_phase_point *pt = &grid[i * NL + j];
                    double ref_rho;
                    assert_int_equal(sgdstab_reference_spectrum(
                                         ref, lrs[j], tu_samplings[si],
                                         batches[i], &ref_rho, NULL, &err),
                                     SGDSTAB_OK);
                    snprintf(what, sizeof what, "phase point case %zu, %s, "
                             "B = %zu, eta = %g", c,
                             sgdstab_sampling_name(tu_samplings[si]),
                             batches[i], lrs[j]);
                    assert_int_equal(pt->batch, batches[i]);
                    assert_true(pt->lr == lrs[j]);
                    assert_true(pt->radius.converged);
                    tu_assert_close(pt->radius.rho, ref_rho, 1e-10, what);
                    tu_assert_close(pt->escape_rate_per_step, log(ref_rho),
                                    1e-9, what);
                    tu_assert_close(pt->escape_rate_per_epoch,
                                    (double)sc->n / (double)batches[i] *
                                        log(ref_rho),
                                    1e-8, what);
                    assert_int_equal(pt->stable, lrs[j] <= ref_crit);
                    assert_int_equal(pt->stable, ref_rho <= 1);
                }
            }
        }
        sgdstab_reference_free(ref);
        tu_engine_free(&e);
    }
}

typedef struct {
    size_t calls, stop_at, last_done, total;
    int monotone;
} progress_log;

static int progress_record(void *ctx, size_t done, size_t total)
{
    progress_log *log = ctx;
    log->monotone &= done == log->last_done + 1 &&
                     (log->total == 0 || total == log->total);
    log->last_done = done;
    log->total = total;
    return ++log->calls == log->stop_at;
}

/* Progress reports every solve once, in order, with the full count; a
 * non-zero return stops the work at once with SGDSTAB_ECANCELED; an invalid
 * learning rate is refused before any solve. */
static void test_phase_progress_and_cancel(void **state)
{
    (void)state;
    engine e = engine_make(random_problem(12, 1, 5, 0, 0, 750), 1.0);
    const size_t batches[4] = {1, 3, 6, 12};
    const double lrs[5] = {0.1, 0.3, 1, 3, 10};
    sgdstab_phase_boundary bd[4];
    sgdstab_phase_point grid[20];
    sgdstab_error err;
    progress_log all = {0, 0, 0, 0, 1};
    assert_int_equal(
        sgdstab_phase_compute(
            e.s, NULL, TU_CONFIG(0, 0, SGDSTAB_SAMPLING_WITHOUT, e.c),
            &(sgdstab_phase_axes){.batches = batches, .nb = 4, .lrs = lrs,
                                  .nl = 5, .progress = progress_record,
                                  .progress_ctx = &all},
            bd, grid, &err),
        SGDSTAB_OK);
    assert_true(all.monotone);
    assert_int_equal(all.calls, 4 + 4 * 5);
    assert_int_equal(all.total, 4 + 4 * 5);
    const size_t stops[3] = {1, 4, 11};  /* in the boundary, at its end, in
                                            the grid */
    for (int k = 0; k < 3; k++) {
        progress_log cut = {0, stops[k], 0, 0, 1};
        err.status = SGDSTAB_OK;
        assert_int_equal(
            sgdstab_phase_compute(
                e.s, NULL, TU_CONFIG(0, 0, SGDSTAB_SAMPLING_WITHOUT, e.c),
                &(sgdstab_phase_axes){.batches = batches, .nb = 4, .lrs = lrs,
                                      .nl = 5, .progress = progress_record,
                                      .progress_ctx = &cut},
                bd, grid, &err),
            SGDSTAB_ECANCELED);
        assert_int_equal(err.status, SGDSTAB_ECANCELED);
        assert_int_equal(cut.calls, stops[k]);
        assert_non_null(strstr(err.msg, "canceled"));
    }
    const double bad[2] = {0.1, -1};
    progress_log none = {0, 0, 0, 0, 1};
    assert_int_equal(
        sgdstab_phase_compute(
            e.s, NULL, TU_CONFIG(0, 0, SGDSTAB_SAMPLING_WITHOUT, e.c),
            &(sgdstab_phase_axes){.batches = batches, .nb = 4, .lrs = bad,
                                  .nl = 2, .progress = progress_record,
                                  .progress_ctx = &none},
            bd, grid, &err),
        SGDSTAB_EINVAL);
    assert_int_equal(none.calls, 0);
    tu_engine_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_dimension),
        cmocka_unit_test(test_rank_one),
        cmocka_unit_test(test_full_batch),
        cmocka_unit_test(test_one_sample),
        cmocka_unit_test(test_loss_scale),
        cmocka_unit_test(test_not_a_minimum),
        cmocka_unit_test(test_evolve_brute_force),
        cmocka_unit_test(test_monotone_and_boundary),
        cmocka_unit_test(test_against_arpack),
        cmocka_unit_test(test_flat_direction),
        cmocka_unit_test(test_negative_curvature_radius),
        cmocka_unit_test(test_flat_negative_curvature),
        cmocka_unit_test(test_scale_invariance),
        cmocka_unit_test(test_noise_operator),
        cmocka_unit_test(test_against_reference),
        cmocka_unit_test(test_curve_against_reference),
        cmocka_unit_test(test_phase_against_reference),
        cmocka_unit_test(test_phase_progress_and_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
