/* Tests of problem loading/validation (problem.h) and of the reduced
 * coordinates (reduce.h).
 *
 * Expected values: NumPy (fixture manifest: J itself, its singular values,
 * ranks, lambda_max(G), tr G) and closed forms computed here (rank-one
 * J = u vᵀ has σ = ‖u‖‖v‖; a scaled permutation has its entries as singular
 * values).  Products ΦΦᵀ, JJᵀ and ΦᵀΦ are formed with CBLAS.
 *
 * Provenance (provenance.h): meta.json texts written here, every known key
 * with a wrong value, the interpolation rule at its threshold, and .npz
 * files with a meta.json member written by sgdstab_npz_write. */
#include "testutil.h"

#include <cblas.h>
#include <lapacke.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "sgdstab/memplan.h"
#include "sgdstab/problem.h"
#include "sgdstab/provenance.h"
#include "sgdstab/reduce.h"

/* ------------------------------------------------------------ helpers */

static double *json_doubles(const cJSON *arr, size_t *n)
{
    assert_true(cJSON_IsArray(arr));
    size_t len = (size_t)cJSON_GetArraySize(arr);
    double *v = malloc((len ? len : 1) * sizeof *v);
    assert_non_null(v);
    size_t i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) {
        assert_true(cJSON_IsNumber(x));
        v[i++] = x->valuedouble;
    }
    *n = len;
    return v;
}

static int all_finite(const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

/* H exactly symmetric, as problem.h promises after validation. */
static void check_exactly_symmetric(const double *H, size_t p)
{
    for (size_t i = 0; i < p; i++)
        for (size_t j = 0; j < i; j++)
            if (H[i * p + j] != H[j * p + i])
                fail_msg("H[%zu][%zu] = %.17g but H[%zu][%zu] = %.17g", i, j,
                         H[i * p + j], j, i, H[j * p + i]);
}

/* The fixture file name loaded with opt (NULL: the defaults); fails the
 * test, naming the file, the status and the message, if it is refused. */
static sgdstab_problem *load_fixture(const char *name,
                                     const sgdstab_load_options *opt)
{
    sgdstab_problem *prob = NULL;
    sgdstab_error err;
    int rc = sgdstab_problem_load(tu_path(name), opt, &prob, &err);
    if (rc != SGDSTAB_OK)
        fail_msg("%s: status %d: %s", name, rc, err.msg);
    assert_non_null(prob);
    return prob;
}

/* sgdstab_reduce at a given relative rank tolerance. */
static int reduce_at(const sgdstab_problem *prob, double rank_rtol,
                     sgdstab_reduced **red, sgdstab_error *err)
{
    sgdstab_reduce_options opt;
    sgdstab_reduce_options_init(&opt);
    opt.rank_rtol = rank_rtol;
    return sgdstab_reduce(prob, &opt, red, err);
}

/* What a reduction must hold, from an independent source. */
typedef struct {
    size_t n, k, p;
    const double *J;       /* m×p, m = n·k, row-major (not the problem's) */
    const double *sigma;   /* min(m, p) singular values of J */
    size_t rank;           /* numerical rank of J */
    double trace_G;
    int has_H;
    size_t dim;            /* dimension r of the reduced space */
    const double *lambda;  /* r expected diagonal entries (NULL: σ²/n) */
    double hessian_min;
} expect_t;

/* Checks of a reduction:
 *  - sigma, rank_J, rank_tol = rank_rtol·σ_max, trace_G, r, lambda,
 *    hessian_min;
 *  - Φ Φᵀ = J Jᵀ up to what the reduced space leaves out (the discarded
 *    singular values; with H, directions J moves by less than rank_tol);
 *  - without H: Φᵀ Φ / n = diag(λ) and G == NULL;
 *  - with H: G = Φᵀ Φ / n, symmetric, tr G = tr(JᵀJ)/n, and the
 *    eigenvalues of G (LAPACK here) are σ_j²/n then zeros. */
static void check_reduction(const sgdstab_reduced *red, const expect_t *x,
                            const char *what)
{
    size_t n = x->n, k = x->k, p = x->p, m = n * k, nsv = m < p ? m : p;
    const double *sigma = x->sigma;
    assert_int_equal(red->n, n);
    assert_int_equal(red->k, k);
    assert_int_equal(red->p, p);
    assert_int_equal(red->nsv, nsv);
    if (red->rank_J != x->rank)
        fail_msg("%s: rank_J %zu, expected %zu (tol %.3g)", what, red->rank_J,
                 x->rank, red->rank_tol);
    assert_non_null(red->sigma);
    double smax = sigma[0];
    char lbl[256];
    for (size_t j = 0; j < nsv; j++) {
        snprintf(lbl, sizeof lbl, "%s: sigma[%zu]", what, j);
        tu_assert_close(red->sigma[j], sigma[j], 1e-12 * smax + 1e-300, lbl);
        if (j && red->sigma[j] > red->sigma[j - 1])
            fail_msg("%s: singular values not descending at %zu", what, j);
        assert_true(red->sigma[j] >= 0);
    }
    snprintf(lbl, sizeof lbl, "%s: rank_tol", what);
    tu_assert_close(red->rank_tol, red->rank_rtol * red->sigma[0],
                    1e-15 * red->rank_tol, lbl);
    for (size_t j = 0; j < x->rank; j++)
        assert_true(red->sigma[j] > red->rank_tol);
    if (x->rank < nsv)
        assert_true(red->sigma[x->rank] <= red->rank_tol);
    snprintf(lbl, sizeof lbl, "%s: trace_G", what);
    tu_assert_close(red->trace_G, x->trace_G, 1e-12 * x->trace_G, lbl);

    if (red->r != x->dim)
        fail_msg("%s: reduced dimension r = %zu, expected %zu", what, red->r,
                 x->dim);
    size_t r = x->dim;
    double lmax = smax * smax / (double)n, lscale = lmax;
    for (size_t j = 0; j < r; j++) {
        double want = x->lambda ? x->lambda[j] : sigma[j] * sigma[j] / n;
        if (fabs(want) > lscale)
            lscale = fabs(want);
    }
    for (size_t j = 0; j < r; j++) {
        double want = x->lambda ? x->lambda[j] : sigma[j] * sigma[j] / n;
        snprintf(lbl, sizeof lbl, "%s: lambda[%zu]", what, j);
        tu_assert_close(red->lambda[j], want, 1e-12 * lscale, lbl);
    }
    snprintf(lbl, sizeof lbl, "%s: hessian_min", what);
    tu_assert_close(red->hessian_min, x->hessian_min, 1e-12 * lscale, lbl);
    if (r == 0)
        return;

    assert_non_null(red->phi);
    assert_true(all_finite(red->phi, m * r));
    /* Φ Φᵀ versus J Jᵀ (m×m). */
    double *A = malloc(m * m * sizeof *A), *B = malloc(m * m * sizeof *B);
    assert_true(A && B);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)m,
                (int)p, 1.0, x->J, (int)p, x->J, (int)p, 0.0, A, (int)m);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)m,
                (int)r, 1.0, red->phi, (int)r, red->phi, (int)r, 0.0, B,
                (int)m);
    double dropped = 0;
    if (x->has_H)
        dropped = (double)p * red->rank_tol * red->rank_tol;
    else
        for (size_t j = r; j < nsv; j++)
            dropped += sigma[j] * sigma[j];
    double tol = 1e-12 * (double)(m > p ? m : p) * smax * smax + dropped;
    for (size_t i = 0; i < m * m; i++)
        if (!(fabs(A[i] - B[i]) <= tol)) {
            double a = A[i], b = B[i];
            free(A);
            free(B);
            fail_msg("%s: (J J^T)[%zu][%zu] = %.17g but (Phi Phi^T) = %.17g",
                     what, i / m, i % m, a, b);
        }
    free(A);
    free(B);

    /* Φᵀ Φ / n (r×r). */
    double *C = malloc(r * r * sizeof *C);
    assert_non_null(C);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)r, (int)r,
                (int)m, 1.0 / (double)n, red->phi, (int)r, red->phi, (int)r,
                0.0, C, (int)r);
    tol = 1e-12 * (double)(m > p ? m : p) * lmax;
    if (!x->has_H) {
        assert_null(red->G);
        for (size_t i = 0; i < r; i++)
            for (size_t j = 0; j < r; j++) {
                double want = i == j ? sigma[i] * sigma[i] / (double)n : 0.0;
                if (!(fabs(C[i * r + j] - want) <= tol)) {
                    double got = C[i * r + j];
                    free(C);
                    fail_msg("%s: (Phi^T Phi / n)[%zu][%zu] = %.17g, "
                             "expected %.17g", what, i, j, got, want);
                }
            }
        free(C);
        return;
    }
    assert_non_null(red->G);
    double trG = 0;
    for (size_t i = 0; i < r; i++) {
        trG += red->G[i * r + i];
        for (size_t j = 0; j < r; j++) {
            if (!(fabs(red->G[i * r + j] - C[i * r + j]) <= tol) ||
                !(fabs(red->G[i * r + j] - red->G[j * r + i]) <= tol)) {
                double got = red->G[i * r + j], want = C[i * r + j];
                free(C);
                fail_msg("%s: G[%zu][%zu] = %.17g, Phi^T Phi / n has %.17g",
                         what, i, j, got, want);
            }
        }
    }
    snprintf(lbl, sizeof lbl, "%s: tr G (reduced)", what);
    tu_assert_close(trG, x->trace_G, 1e-12 * x->trace_G, lbl);
    /* eigenvalues of G: σ_j²/n, then zeros */
    double *ev = malloc(r * sizeof *ev);
    assert_non_null(ev);
    memcpy(C, red->G, r * r * sizeof *C);
    assert_int_equal(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', (lapack_int)r,
                                   C, (lapack_int)r, ev), 0);
    for (size_t j = 0; j < r; j++) {
        double got = ev[r - 1 - j];  /* descending */
        double want = j < nsv ? sigma[j] * sigma[j] / (double)n : 0.0;
        if (!(fabs(got - want) <= tol + dropped / (double)n)) {
            free(ev);
            free(C);
            fail_msg("%s: eigenvalue %zu of G is %.17g, expected %.17g", what,
                     j, got, want);
        }
    }
    free(ev);
    free(C);
}

/* --------------------------------------------- manifest problem files */

static void test_load(void **state)
{
    const cJSON *e = *state;
    const char *name = tu_jstr(e, "file");
    sgdstab_load_options opt = {0};

    for (int pass = 0; pass < 2; pass++) {
        sgdstab_problem *prob = load_fixture(name, pass ? &opt : NULL);
        size_t n = tu_jsize(e, "n"), k = tu_jsize(e, "k"),
               p = tu_jsize(e, "p");
        assert_int_equal(prob->n, n);
        assert_int_equal(prob->k, k);
        assert_int_equal(prob->p, p);
        assert_string_equal(prob->J_descr, tu_jstr(e, "dtype"));
        assert_non_null(prob->source);
        assert_non_null(strstr(prob->source, name));

        size_t len;
        double *J = json_doubles(tu_jget(e, "J_flat"), &len);
        assert_int_equal(len, n * k * p);
        for (size_t f = 0; f < len; f++)
            if (prob->J[f] != J[f]) {
                double got = prob->J[f], want = J[f];
                free(J);
                fail_msg("%s: J[%zu] (row %zu, col %zu) = %.17g, NumPy has "
                         "%.17g", name, f, f / p, f % p, got, want);
            }
        free(J);

        if (tu_jbool(e, "has_hessian")) {
            assert_non_null(prob->H);
            assert_string_equal(prob->H_descr, tu_jstr(e, "hessian_dtype"));
            double *H = json_doubles(tu_jget(e, "H_flat"), &len);
            assert_int_equal(len, p * p);
            int same = !memcmp(prob->H, H, len * sizeof *H);
            free(H);
            assert_true(same);
            check_exactly_symmetric(prob->H, p);
        } else {
            assert_null(prob->H);
            assert_string_equal(prob->H_descr, "");
        }
        sgdstab_problem_free(prob);
    }
}

/* The layout promise: row i·k + o of J is output o of sample i, whatever
 * the memory order of the file; checked against the formula directly. */
static void test_layout_formula(void **state)
{
    (void)state;
    const char *files[] = {"prob_formula3.npy", "prob_formula3_F.npy",
                           "npz_J3_stored.npz", "npz_J3_deflated.npz"};
    for (size_t t = 0; t < 4; t++) {
        sgdstab_problem *prob = load_fixture(files[t], NULL);
        assert_int_equal(prob->n, 4);
        assert_int_equal(prob->k, 2);
        assert_int_equal(prob->p, 3);
        for (size_t i = 0; i < 4; i++)
            for (size_t o = 0; o < 2; o++)
                for (size_t j = 0; j < 3; j++) {
                    /* element (i, o, j) of the (4, 2, 3) array */
                    double want = tu_formula((i * 2 + o) * 3 + j);
                    double got = prob->J[(i * 2 + o) * 3 + j];
                    if (got != want)
                        fail_msg("%s: J_%zu[%zu][%zu] = %g, expected %g",
                                 files[t], i, o, j, got, want);
                }
        if (t == 2) {
            assert_non_null(prob->H);
            for (size_t i = 0; i < 3; i++)
                for (size_t j = 0; j < 3; j++)
                    assert_true(prob->H[i * 3 + j] == tu_symformula(3, i, j));
        }
        sgdstab_problem_free(prob);
    }
}

static void test_reduce(void **state)
{
    const cJSON *e = *state;
    const char *name = tu_jstr(e, "file");
    sgdstab_problem *prob = load_fixture(name, NULL);
    sgdstab_reduced *red = NULL;
    sgdstab_error err;
    size_t n = tu_jsize(e, "n"), k = tu_jsize(e, "k"), p = tu_jsize(e, "p");
    size_t nsv, len;
    double *sigma = json_doubles(tu_jget(e, "sigma"), &nsv);
    double *J = json_doubles(tu_jget(e, "J_flat"), &len);
    double trace = tu_jnum(e, "trace_G");

    /* Default tolerance: max(n·k, p)·ε of the stored precision, ε from
     * <float.h> for float64/float32 and 2^-10 for float16. */
    const char *dt = tu_jstr(e, "dtype");
    double eps = strstr(dt, "f8") ? DBL_EPSILON
                 : strstr(dt, "f4") ? (double)FLT_EPSILON
                                    : ldexp(1.0, -10);
    double rtol = (double)(n * k > p ? n * k : p) * eps;
    tu_assert_close(sgdstab_default_rank_rtol(prob), rtol, 1e-15 * rtol,
                    "default rank rtol");
    tu_assert_close(rtol, tu_jnum(e, "rank_rtol"), 1e-15 * rtol,
                    "manifest rank rtol");

    int rc = sgdstab_reduce(prob, NULL, &red, &err);
    if (rc != SGDSTAB_OK)
        fail_msg("%s: status %d: %s", name, rc, err.msg);
    tu_assert_close(red->rank_rtol, rtol, 1e-15 * rtol, "rank_rtol");
    tu_assert_close(red->rank_tol, tu_jnum(e, "rank_tol"),
                    1e-12 * tu_jnum(e, "rank_tol"), "rank_tol");
    size_t nlam;
    double *lam = json_doubles(tu_jget(e, "lambda_reduced"), &nlam);
    expect_t x = {n, k, p, J, sigma, tu_jsize(e, "rank"), trace,
                  tu_jbool(e, "has_hessian"), tu_jsize(e, "reduced_dim"), lam,
                  tu_jnum(e, "hessian_min")};
    assert_int_equal(nlam, x.dim);
    check_reduction(red, &x, name);
    if (!x.has_H)
        tu_assert_close(red->lambda[0], tu_jnum(e, "lambda_max_G"),
                        1e-12 * tu_jnum(e, "lambda_max_G"), "lambda_max_G");
    tu_assert_close(red->sigma[0], tu_jnum(e, "sigma_max"),
                    1e-12 * tu_jnum(e, "sigma_max"), "sigma_max");
    sgdstab_reduced_free(red);

    /* A negative rtol also selects the default. */
    red = NULL;
    rc = reduce_at(prob, -1.0, &red, &err);
    assert_int_equal(rc, SGDSTAB_OK);
    assert_int_equal(red->rank_J, tu_jsize(e, "rank"));
    tu_assert_close(red->rank_rtol, rtol, 1e-15 * rtol, "rank_rtol (<0)");
    sgdstab_reduced_free(red);

    /* Explicit tolerances, ranks by NumPy at the same tolerance. */
    const cJSON *pair;
    cJSON_ArrayForEach(pair, tu_jget(e, "ranks_at")) {
        double rt = cJSON_GetArrayItem(pair, 0)->valuedouble;
        size_t want = (size_t)cJSON_GetArrayItem(pair, 1)->valuedouble;
        red = NULL;
        rc = reduce_at(prob, rt, &red, &err);
        if (rc != SGDSTAB_OK)
            fail_msg("%s rtol %g: %s", name, rt, err.msg);
        assert_true(red->rank_rtol == rt);
        char what[256];
        snprintf(what, sizeof what, "%s at rtol %g", name, rt);
        assert_false(x.has_H);  /* ranks_at only for problems without H */
        expect_t y = x;
        y.rank = y.dim = want;
        y.lambda = NULL;
        y.hessian_min = sigma[want - 1] * sigma[want - 1] / (double)n;
        check_reduction(red, &y, what);
        sgdstab_reduced_free(red);
    }

    /* The float32 rule: the same data judged with float64's epsilon has a
     * larger rank (NumPy says which). */
    const cJSON *r64 = cJSON_GetObjectItemCaseSensitive(e, "rank_f64_rule");
    if (r64) {
        double rt = tu_jnum(e, "f64_rule_rtol");
        tu_assert_close(rt, (double)(n * k > p ? n * k : p) * DBL_EPSILON,
                        1e-15 * rt, "f64 rule rtol");
        red = NULL;
        assert_int_equal(reduce_at(prob, rt, &red, &err), SGDSTAB_OK);
        assert_int_equal(red->rank_J, (size_t)r64->valuedouble);
        assert_int_equal(red->r, red->rank_J);
        assert_true(red->rank_J > tu_jsize(e, "rank"));
        sgdstab_reduced_free(red);
    }
    free(lam);
    free(sigma);
    free(J);
    sgdstab_problem_free(prob);
}

/* --------------------------------------------------- malformed files */

static void test_reject(void **state)
{
    const cJSON *e = *state;
    const char *name = tu_jstr(e, "file");
    sgdstab_problem *prob = NULL;
    sgdstab_error err;
    int rc = sgdstab_problem_load(tu_path(name), NULL, &prob, &err);
    if (rc == SGDSTAB_OK) {
        sgdstab_problem_free(prob);
        fail_msg("%s was accepted", name);
    }
    tu_check_failure(rc, &err, name, NULL);
    assert_null(prob);
    int want = tu_status_code(tu_jget(e, "status"));
    if (want >= 0 && rc != want)
        fail_msg("%s: status %d (%s), expected %d (%s): %s", name, rc,
                 sgdstab_strstatus(rc), want, sgdstab_strstatus(want),
                 err.msg);
    tu_check_any(err.msg, tu_jget(e, "cli_any"));
}

static void test_missing_file(void **state)
{
    (void)state;
    sgdstab_problem *prob = NULL;
    sgdstab_error err;
    int rc = sgdstab_problem_load(tu_path("no_such_problem.npz"), NULL, &prob,
                                  &err);
    tu_check_failure(rc, &err, "no_such_problem.npz", NULL);
    assert_int_equal(rc, SGDSTAB_EIO);
    assert_null(prob);
}

/* asym_H.npz has max|H − Hᵀ| ≈ 1e-3 · max|H| (NumPy-checked): accepted
 * with a tolerance above that, and H comes out exactly symmetric. */
static void test_load_symmetry_option(void **state)
{
    (void)state;
    sgdstab_problem *prob = NULL;
    sgdstab_error err;
    sgdstab_load_options opt = {.symmetry_rtol = 1e-2};
    int rc = sgdstab_problem_load(tu_path("asym_H.npz"), &opt, &prob, &err);
    if (rc != SGDSTAB_OK)
        fail_msg("asym_H.npz with symmetry_rtol 1e-2: %s", err.msg);
    assert_non_null(prob->H);
    check_exactly_symmetric(prob->H, prob->p);
    sgdstab_problem_free(prob);

    prob = NULL;
    opt.symmetry_rtol = 1e-4;
    rc = sgdstab_problem_load(tu_path("asym_H.npz"), &opt, &prob, &err);
    tu_check_failure(rc, &err, "asym_H.npz", "symmetric", NULL);
    assert_null(prob);
}

/* ------------------------------------------- problems from arrays */

static void test_from_arrays_2d(void **state)
{
    (void)state;
    const double j[6] = {1, 2, 3, 4, 5, 6};
    sgdstab_array J = tu_array(2, 3, 2, 1, "<f4", j);
    sgdstab_problem *prob = NULL;
    sgdstab_error err;
    int rc = sgdstab_problem_from_arrays("hand-made", &J, NULL, NULL, &prob,
                                         &err);
    if (rc != SGDSTAB_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(prob->n, 3);
    assert_int_equal(prob->k, 1);
    assert_int_equal(prob->p, 2);
    assert_memory_equal(prob->J, j, sizeof j);
    assert_null(prob->H);
    assert_string_equal(prob->J_descr, "<f4");
    assert_string_equal(prob->H_descr, "");
    assert_non_null(strstr(prob->source, "hand-made"));
    sgdstab_problem_free(prob);
}

static void test_from_arrays_3d_with_H(void **state)
{
    (void)state;
    /* J: n = 2 samples, k = 3 outputs, p = 2. */
    const double j[12] = {1, 0, 0, 1, 1, 1, 2, -1, 0.5, 0.25, -3, 4};
    const double h[4] = {2, -1, -1, 3};
    sgdstab_array J = tu_array(3, 2, 3, 2, ">f8", j);
    sgdstab_array H = tu_array(2, 2, 2, 1, "<f4", h);
    sgdstab_problem *prob = NULL;
    sgdstab_error err;
    int rc = sgdstab_problem_from_arrays("lbl3", &J, &H, NULL, &prob, &err);
    if (rc != SGDSTAB_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(prob->n, 2);
    assert_int_equal(prob->k, 3);
    assert_int_equal(prob->p, 2);
    /* row i·k + o is J_i's row o */
    for (size_t i = 0; i < 2; i++)
        for (size_t o = 0; o < 3; o++)
            for (size_t c = 0; c < 2; c++)
                assert_true(prob->J[(i * 3 + o) * 2 + c] ==
                            j[i * 6 + o * 2 + c]);
    assert_non_null(prob->H);
    assert_memory_equal(prob->H, h, sizeof h);
    assert_string_equal(prob->J_descr, ">f8");
    assert_string_equal(prob->H_descr, "<f4");
    sgdstab_problem_free(prob);
}

/* H = [[1, 1+d], [1, 2]]: max|H − Hᵀ| / max|H| = d / 2. */
static int sym_case(double d, const char *hdescr, double rtol,
                    sgdstab_error *err, double *h01, double *h10)
{
    const double j[4] = {1, 0, 0, 1};
    const double h[4] = {1, 1 + d, 1, 2};
    sgdstab_array J = tu_array(2, 2, 2, 1, "<f8", j);
    sgdstab_array H = tu_array(2, 2, 2, 1, hdescr, h);
    sgdstab_load_options opt = {.symmetry_rtol = rtol};
    sgdstab_problem *prob = NULL;
    int rc = sgdstab_problem_from_arrays("symcase", &J, &H, &opt, &prob, err);
    if (rc == SGDSTAB_OK) {
        assert_non_null(prob);
        *h01 = prob->H[1];
        *h10 = prob->H[2];
        assert_true(prob->H[0] == 1 && prob->H[3] == 2);
        sgdstab_problem_free(prob);
    } else {
        assert_null(prob);
    }
    return rc;
}

static void test_symmetry_tolerance(void **state)
{
    (void)state;
    sgdstab_error err;
    double a, b;
    /* relative asymmetry 1e-12 < 1e-10: accepted, made exactly symmetric,
     * the symmetrized entry lying between the two given ones */
    assert_int_equal(sym_case(2e-12, "<f8", 0, &err, &a, &b), SGDSTAB_OK);
    assert_true(a == b);
    assert_true(a >= 1 && a <= 1 + 2e-12);
    /* 1e-8 > 1e-10: rejected by default */
    int rc = sym_case(2e-8, "<f8", 0, &err, &a, &b);
    tu_check_failure(rc, &err, "symcase", "symmetric", NULL);
    /* ...negative also means the default */
    rc = sym_case(2e-8, "<f8", -1, &err, &a, &b);
    tu_check_failure(rc, &err, "symcase", NULL);
    /* ...accepted with symmetry_rtol = 1e-6 */
    assert_int_equal(sym_case(2e-8, "<f8", 1e-6, &err, &a, &b), SGDSTAB_OK);
    assert_true(a == b);
    /* ...a smaller explicit tolerance than the default still applies */
    assert_int_equal(sym_case(2e-11, "<f8", 0, &err, &a, &b), SGDSTAB_OK);
    rc = sym_case(2e-11, "<f8", 1e-12, &err, &a, &b);
    tu_check_failure(rc, &err, "symcase", NULL);
    /* float32 H: default raised to 100·eps32 ≈ 1.19e-5 */
    assert_int_equal(sym_case(2e-6, "<f4", 0, &err, &a, &b), SGDSTAB_OK);
    assert_true(a == b);
    rc = sym_case(2e-6, "<f8", 0, &err, &a, &b);
    tu_check_failure(rc, &err, "symcase", NULL);
    rc = sym_case(2e-4, "<f4", 0, &err, &a, &b);   /* 1e-4 > 1.19e-5 */
    tu_check_failure(rc, &err, "symcase", NULL);
    /* float16 H: 100·eps16 ≈ 0.098 */
    assert_int_equal(sym_case(2e-2, "<f2", 0, &err, &a, &b), SGDSTAB_OK);
    assert_true(a == b);
    rc = sym_case(4e-1, "<f2", 0, &err, &a, &b);   /* 0.2 > 0.098 */
    tu_check_failure(rc, &err, "symcase", NULL);
}

static void expect_reject(const char *label, sgdstab_array J,
                          sgdstab_array *H, int want, const char *needle)
{
    sgdstab_problem *prob = NULL;
    sgdstab_error err;
    sgdstab_array Jc = J;
    int rc = sgdstab_problem_from_arrays(label, &Jc, H, NULL, &prob, &err);
    if (rc == SGDSTAB_OK) {
        sgdstab_problem_free(prob);
        fail_msg("%s: accepted", label);
    }
    tu_check_failure(rc, &err, label, needle, NULL);
    if (want >= 0 && rc != want)
        fail_msg("%s: status %d (%s), expected %d: %s", label, rc,
                 sgdstab_strstatus(rc), want, err.msg);
    assert_null(prob);
}

/* The shape and values of an array for tu_array; nd 0: no array. */
typedef struct {
    int nd;
    size_t s0, s1, s2;
    const double *vals;
} array_spec;

static void test_from_arrays_invalid(void **state)
{
    (void)state;
    const double good[6] = {1, 2, 3, 4, 5, 6};
    const double nan_j[6] = {1, 2, 3, 4, NAN, 6};
    const double inf_j[6] = {-INFINITY, 2, 3, 4, 5, 6};
    const double inf_h[4] = {1, 0, 0, INFINITY};
    const double nan_h[4] = {1, NAN, NAN, 1};
    const array_spec J32 = {2, 3, 2, 1, good}, none = {0, 0, 0, 0, NULL};
    const struct {
        const char *label;
        array_spec J, H;
        int want;  /* -1: any failure */
        const char *needle;
    } cases[] = {
        {"nan-J", {2, 3, 2, 1, nan_j}, none, SGDSTAB_EVALUE, "non-finite"},
        {"inf-J", {3, 1, 3, 2, inf_j}, none, SGDSTAB_EVALUE, "non-finite"},
        {"inf-H", J32, {2, 2, 2, 1, inf_h}, SGDSTAB_EVALUE, "non-finite"},
        {"nan-H", J32, {2, 2, 2, 1, nan_h}, SGDSTAB_EVALUE, "non-finite"},
        /* H of the wrong shape for p = 2 */
        {"H-3x3", J32, {2, 3, 3, 1, NULL}, SGDSTAB_ESHAPE, "H has shape"},
        {"H-2x3", J32, {2, 2, 3, 1, NULL}, SGDSTAB_ESHAPE, "H has shape"},
        {"H-1d", J32, {1, 4, 1, 1, NULL}, SGDSTAB_ESHAPE, "H has shape"},
        {"H-3d", J32, {3, 2, 2, 1, NULL}, SGDSTAB_ESHAPE, "H has shape"},
        /* J of the wrong rank or with an empty dimension */
        {"J-1d", {1, 6, 1, 1, good}, none, -1, NULL},
        {"J-n0", {2, 0, 3, 1, NULL}, none, -1, NULL},
        {"J-p0", {2, 3, 0, 1, NULL}, none, -1, NULL},
        {"J-k0", {3, 2, 0, 3, NULL}, none, -1, NULL},
        {"J-3d-p0", {3, 2, 3, 0, NULL}, none, -1, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const array_spec *j = &cases[i].J, *h = &cases[i].H;
        sgdstab_array H;
        if (h->nd)
            H = tu_array(h->nd, h->s0, h->s1, h->s2, "<f8", h->vals);
        expect_reject(cases[i].label,
                      tu_array(j->nd, j->s0, j->s1, j->s2, "<f8", j->vals),
                      h->nd ? &H : NULL, cases[i].want, cases[i].needle);
    }
}

/* ------------------------------------------------- closed-form SVDs */

static sgdstab_problem *from(const char *label, sgdstab_array J)
{
    sgdstab_problem *prob = NULL;
    sgdstab_error err;
    if (sgdstab_problem_from_arrays(label, &J, NULL, NULL, &prob, &err))
        fail_msg("%s: %s", label, err.msg);
    return prob;
}

/* J = u vᵀ as a 3-D array (n = 4, k = 2, p = 3): one singular value
 * σ = ‖u‖‖v‖ = 4.5·√5.25, λ = σ²/n = tr G, and Φ = ±σ u/‖u‖. */
static void test_rank_one(void **state)
{
    (void)state;
    const double u[8] = {1, -2, 0.5, 3, 0, 1, -1, 2};  /* ‖u‖² = 20.25 */
    const double v[3] = {2, -1, 0.5};                  /* ‖v‖² = 5.25 */
    double j[24];
    for (size_t a = 0; a < 8; a++)
        for (size_t b = 0; b < 3; b++)
            j[a * 3 + b] = u[a] * v[b];
    sgdstab_problem *prob = from("rank-one", tu_array(3, 4, 2, 3, "<f8", j));
    sgdstab_reduced *red = NULL;
    sgdstab_error err;
    assert_int_equal(sgdstab_reduce(prob, NULL, &red, &err), SGDSTAB_OK);
    double sigma[3] = {4.5 * sqrt(5.25), 0, 0};
    double lam = 20.25 * 5.25 / 4;
    expect_t x = {4, 2, 3, j, sigma, 1, lam, 0, 1, NULL, lam};
    check_reduction(red, &x, "rank one");
    tu_assert_close(red->lambda[0], lam, 1e-14 * lam, "lambda");
    tu_assert_close(red->trace_G, lam, 1e-14 * lam, "trace");
    double s = red->phi[0] > 0 ? 1 : -1;
    for (size_t a = 0; a < 8; a++)
        tu_assert_close(red->phi[a], s * u[a] * sqrt(5.25), 1e-13, "phi");
    tu_assert_close(red->rank_rtol, 8 * DBL_EPSILON, 1e-30, "rank_rtol");
    sgdstab_reduced_free(red);
    sgdstab_problem_free(prob);
}

/* A scaled permutation-like 4×3 J: singular values 3, 2, 1 exactly;
 * G = diag(9, 1, 4)/4, tr G = 14/4. */
static void test_diagonal(void **state)
{
    (void)state;
    const double j[12] = {3, 0, 0, 0, 0, -2, 0, 1, 0, 0, 0, 0};
    sgdstab_problem *prob = from("diag", tu_array(2, 4, 3, 1, "<f8", j));
    sgdstab_reduced *red = NULL;
    sgdstab_error err;
    assert_int_equal(sgdstab_reduce(prob, NULL, &red, &err), SGDSTAB_OK);
    const double sigma[3] = {3, 2, 1};
    expect_t x = {4, 1, 3, j, sigma, 3, 3.5, 0, 3, NULL, 0.25};
    check_reduction(red, &x, "diagonal");
    tu_assert_close(red->lambda[0], 2.25, 1e-15, "lambda0");
    tu_assert_close(red->lambda[1], 1.0, 1e-15, "lambda1");
    tu_assert_close(red->lambda[2], 0.25, 1e-15, "lambda2");
    /* rows of Φ have the norms of the rows of J: 3, 2, 1, 0 */
    const double rown[4] = {3, 2, 1, 0};
    for (size_t a = 0; a < 4; a++) {
        double s = 0;
        for (size_t c = 0; c < 3; c++)
            s += red->phi[a * 3 + c] * red->phi[a * 3 + c];
        tu_assert_close(sqrt(s), rown[a], 1e-14, "row norm of phi");
    }
    sgdstab_reduced_free(red);
    /* rtol between σ's: 0.5·3 = 1.5 keeps 3 and 2 */
    red = NULL;
    assert_int_equal(reduce_at(prob, 0.5, &red, &err), SGDSTAB_OK);
    assert_int_equal(red->rank_J, 2);
    assert_int_equal(red->r, 2);
    tu_assert_close(red->rank_tol, 1.5, 1e-15, "rank_tol");
    tu_assert_close(red->trace_G, 3.5, 1e-15, "trace keeps all");
    sgdstab_reduced_free(red);
    sgdstab_problem_free(prob);
}

/* Supplied H with a null space: J (n = 2, p = 3) = [e1ᵀ; e2ᵀ], H =
 * diag(3, 0, 0).  The reduced space is span(e1) (H's range) plus span(e2)
 * (in null(H), moved by J); e3 never moves.  So r = 2, λ = (3, 0),
 * hessian_min = 0, and G = ΦᵀΦ/n = diag(1/2, 1/2). */
static void test_reduce_with_H(void **state)
{
    (void)state;
    const double j[6] = {1, 0, 0, 0, 1, 0};
    const double h[9] = {3, 0, 0, 0, 0, 0, 0, 0, 0};
    sgdstab_array J = tu_array(2, 2, 3, 1, "<f8", j);
    sgdstab_array H = tu_array(2, 3, 3, 1, "<f8", h);
    sgdstab_problem *prob = NULL;
    sgdstab_reduced *red = NULL;
    sgdstab_error err;
    assert_int_equal(sgdstab_problem_from_arrays("withH", &J, &H, NULL, &prob,
                                                 &err), SGDSTAB_OK);
    assert_int_equal(sgdstab_reduce(prob, NULL, &red, &err), SGDSTAB_OK);
    const double sigma[2] = {1, 1}, lam[2] = {3, 0};
    expect_t x = {2, 1, 3, j, sigma, 2, 1.0, 1, 2, lam, 0.0};
    check_reduction(red, &x, "with H");
    tu_assert_close(red->G[0], 0.5, 1e-15, "G[0][0]");
    tu_assert_close(red->G[1], 0.0, 1e-15, "G[0][1]");
    tu_assert_close(red->G[3], 0.5, 1e-15, "G[1][1]");
    /* Φ's first column is J·(±e1), its second J·(±e2) */
    for (size_t a = 0; a < 2; a++)
        for (size_t c = 0; c < 2; c++)
            tu_assert_close(fabs(red->phi[a * 2 + c]), a == c ? 1.0 : 0.0,
                            1e-15, "phi");
    sgdstab_reduced_free(red);
    sgdstab_problem_free(prob);
}

/* Default rank rtol by stored precision: max(n·k, p)·ε. */
static void test_default_rtol_by_dtype(void **state)
{
    (void)state;
    const struct { const char *d; double eps; } cases[] = {
        {"<f8", DBL_EPSILON}, {">f8", DBL_EPSILON},
        {"<f4", (double)FLT_EPSILON}, {">f4", (double)FLT_EPSILON},
        {"<f2", 0x1p-10}};
    for (size_t c = 0; c < 5; c++) {
        /* n·k = 6 > p = 2 */
        sgdstab_problem *prob = from("dt",
                                     tu_array(3, 3, 2, 2, cases[c].d, NULL));
        double want = 6 * cases[c].eps;
        tu_assert_close(sgdstab_default_rank_rtol(prob), want, 1e-15 * want,
                        cases[c].d);
        sgdstab_reduced *red = NULL;
        sgdstab_error err;
        assert_int_equal(sgdstab_reduce(prob, NULL, &red, &err), SGDSTAB_OK);
        tu_assert_close(red->rank_rtol, want, 1e-15 * want, cases[c].d);
        sgdstab_reduced_free(red);
        sgdstab_problem_free(prob);
        /* p = 7 > n·k = 2 */
        prob = from("dt", tu_array(2, 2, 7, 1, cases[c].d, NULL));
        want = 7 * cases[c].eps;
        tu_assert_close(sgdstab_default_rank_rtol(prob), want, 1e-15 * want,
                        cases[c].d);
        sgdstab_problem_free(prob);
    }
}

/* J = 0 is a valid (if dull) problem: rank 0, tr G = 0, if it is accepted
 * at all; an error must at least be a proper one-line message. */
static void test_zero_J(void **state)
{
    (void)state;
    const double z[6] = {0};
    sgdstab_problem *prob = NULL;
    sgdstab_error err;
    sgdstab_array J = tu_array(2, 3, 2, 1, "<f8", z);
    int rc = sgdstab_problem_from_arrays("zeros", &J, NULL, NULL, &prob, &err);
    if (rc != SGDSTAB_OK) {
        tu_check_failure(rc, &err, "zeros", NULL);
        return;
    }
    sgdstab_reduced *red = NULL;
    rc = sgdstab_reduce(prob, NULL, &red, &err);
    if (rc == SGDSTAB_OK) {
        assert_int_equal(red->rank_J, 0);
        assert_int_equal(red->r, 0);
        assert_true(red->trace_G == 0);
        assert_true(red->sigma[0] == 0);
        sgdstab_reduced_free(red);
    } else {
        tu_check_failure(rc, &err, NULL);
    }
    sgdstab_problem_free(prob);
}

/* ------------------------------------------------------- provenance */

/* pv is "nothing known" (what every failure leaves). */
static void check_absent(const sgdstab_provenance *pv, int present)
{
    assert_int_equal(pv->present, present);
    assert_string_equal(pv->loss, "");
    assert_string_equal(pv->train_sampling, "");
    assert_true(isnan(pv->residual_rms) && isnan(pv->max_residual) &&
                isnan(pv->target_rms) && isnan(pv->train_lr));
    assert_true(pv->train_batch == 0 && pv->n == 0 && pv->k == 0 &&
                pv->p == 0);
    assert_int_equal(sgdstab_provenance_interpolating(pv), -1);
    assert_true(isnan(sgdstab_provenance_relative_residual(pv)));
}

static int parse(const char *text, sgdstab_provenance *pv, sgdstab_error *err)
{
    tu_dirty(pv, sizeof *pv);
    return sgdstab_provenance_parse(text, strlen(text), "lbl.npz", pv, err);
}

static void test_provenance_parse(void **state)
{
    (void)state;
    sgdstab_provenance pv;
    sgdstab_error err;
    const char *full =
        "{\"format\": \"x\", \"loss\": \"mse\", \"residual_rms\": 0.25,"
        " \"max_residual\": 1.5, \"target_rms\": 2, \"n\": 40, \"k\": 3,"
        " \"p\": 1e3, \"train_lr\": 0.125, \"train_batch\": 8,"
        " \"train_sampling\": \"without\", \"source\": \"PyTorch\","
        " \"parameters\": [{\"name\": \"w\"}], \"loss_scale\": \"other\"}";
    if (parse(full, &pv, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(pv.present, 1);
    assert_string_equal(pv.loss, "mse");
    assert_true(pv.residual_rms == 0.25 && pv.max_residual == 1.5 &&
                pv.target_rms == 2 && pv.train_lr == 0.125);
    assert_true(pv.n == 40 && pv.k == 3 && pv.p == 1000 &&
                pv.train_batch == 8);
    assert_string_equal(pv.train_sampling, "without");
    assert_true(sgdstab_provenance_relative_residual(&pv) == 0.125);

    /* a number as loss is kept as text that reads back the same double */
    if (parse("{\"loss\": 0.1, \"residual_rms\": 0}", &pv, &err))
        fail_msg("%s", err.msg);
    assert_true(strtod(pv.loss, NULL) == 0.1);
    assert_true(pv.residual_rms == 0 && isnan(pv.target_rms));

    /* nothing known: {}, nulls, blanks around the object */
    const char *empty[] = {
        "{}", " \n{ }\t\n",
        "{\"loss\": null, \"n\": null, \"target_rms\": null, \"p\": null}"};
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
        if (parse(empty[i], &pv, &err))
            fail_msg("%s: %s", empty[i], err.msg);
        check_absent(&pv, 1);
    }
    /* the longest strings that fit */
    if (parse("{\"loss\": \"0123456789012345678901234567890\", "
              "\"train_sampling\": \"012345678901234\"}", &pv, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(strlen(pv.loss), 31);
    assert_int_equal(strlen(pv.train_sampling), 15);

    /* the optimizer of training: every setting, and the kinds */
    if (parse("{\"optimizer\": {\"kind\": \"sgd\", \"lr\": 0.1, "
              "\"momentum\": 0.9, \"dampening\": 0.25, \"nesterov\": false, "
              "\"weight_decay\": 5e-4}}", &pv, &err))
        fail_msg("%s", err.msg);
    assert_true(pv.has_optimizer && !pv.preconditioned);
    assert_true(pv.optimizer.kind == SGDSTAB_OPTIMIZER_SGD &&
                pv.optimizer.momentum == 0.9 &&
                pv.optimizer.dampening == 0.25 &&
                pv.optimizer.weight_decay == 5e-4 && !pv.optimizer.nesterov);
    if (parse("{\"optimizer\": {\"kind\": \"adamw\", \"momentum\": 0.8, "
              "\"beta2\": 0.95, \"eps\": 1e-6, \"step\": 7}}", &pv, &err))
        fail_msg("%s", err.msg);
    assert_true(pv.preconditioned && pv.optimizer.kind ==
                SGDSTAB_OPTIMIZER_ADAMW && pv.optimizer.beta2 == 0.95 &&
                pv.optimizer.eps == 1e-6 && !pv.optimizer.second_moment);
    if (parse("{\"optimizer\": {\"kind\": \"rmsprop\"}}", &pv, &err))
        fail_msg("%s", err.msg);
    assert_true(pv.preconditioned &&
                pv.optimizer.kind == SGDSTAB_OPTIMIZER_SGD);
}

static void test_provenance_reject(void **state)
{
    (void)state;
    static const struct {
        const char *text, *needle;
    } bad[] = {
        {"", "not valid JSON"},
        {"{", "not valid JSON"},
        {"{\"n\": 1,}", "not valid JSON"},
        {"{} {}", "not valid JSON"},
        {"{} x", "not valid JSON"},
        {"[1, 2]", "not a JSON object"},
        {"\"meta\"", "not a JSON object"},
        {"null", "not a JSON object"},
        {"{\"loss\": true}", "\"loss\" must be a number > 0 or a string"},
        {"{\"loss\": [\"mse\"]}", "\"loss\""},
        {"{\"loss\": -1}", "\"loss\""},
        {"{\"loss\": 0}", "\"loss\""},
        {"{\"loss\": \"01234567890123456789012345678901\"}", "at most 31"},
        {"{\"loss\": \"ms\\ne\"}", "printable"},
        {"{\"residual_rms\": \"0.1\"}", "\"residual_rms\" must be a number >= 0"},
        {"{\"residual_rms\": -1}", "\"residual_rms\" must be a number >= 0"},
        {"{\"residual_rms\": 1e999}", "\"residual_rms\""},
        {"{\"max_residual\": -0.5}", "\"max_residual\" must be a number >= 0"},
        {"{\"max_residual\": false}", "\"max_residual\""},
        {"{\"target_rms\": 0}", "\"target_rms\" must be a number > 0"},
        {"{\"target_rms\": -2}", "\"target_rms\""},
        {"{\"target_rms\": {}}", "\"target_rms\""},
        {"{\"n\": 1.5}", "\"n\" must be a whole number >= 1"},
        {"{\"n\": 0}", "\"n\""},
        {"{\"n\": -3}", "\"n\""},
        {"{\"n\": \"5\"}", "\"n\""},
        {"{\"n\": 1e300}", "\"n\""},
        {"{\"k\": 0}", "\"k\" must be a whole number >= 1"},
        {"{\"p\": 2.5}", "\"p\" must be a whole number >= 1"},
        {"{\"train_lr\": 0}", "\"train_lr\" must be a number > 0"},
        {"{\"train_lr\": \"0.1\"}", "\"train_lr\""},
        {"{\"train_batch\": 0}", "\"train_batch\" must be a whole number"},
        {"{\"train_batch\": 2.5}", "\"train_batch\""},
        {"{\"train_batch\": -1}", "\"train_batch\""},
        {"{\"train_sampling\": 5}", "\"train_sampling\" must be a string"},
        {"{\"train_sampling\": \"0123456789012345\"}", "at most 15"},
        {"{\"optimizer\": \"sgd\"}", "\"optimizer\" must be an object"},
        {"{\"optimizer\": {\"momentum\": 0.9}}", "with a \"kind\""},
        {"{\"optimizer\": {\"kind\": \"lion\"}}", "kind must be sgd"},
        {"{\"optimizer\": {\"kind\": \"sgd\", \"momentum\": 1}}",
         "momentum must lie in [0, 1)"},
        {"{\"optimizer\": {\"kind\": \"sgd\", \"momentum\": \"0.9\"}}",
         "optimizer momentum must be a number"},
        {"{\"optimizer\": {\"kind\": \"sgd\", \"nesterov\": 1}}",
         "nesterov must be true or false"},
        {"{\"optimizer\": {\"kind\": \"sgd\", \"nesterov\": true}}",
         "nesterov needs a momentum"},
        {"{\"optimizer\": {\"kind\": \"adam\", \"eps\": 0}}",
         "eps must be a positive number"},
        {"{\"optimizer\": {\"kind\": \"sgd\", \"weight_decay\": -1}}",
         "weight decay"},
    };
    sgdstab_provenance pv;
    sgdstab_error err;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = parse(bad[i].text, &pv, &err);
        if (rc == SGDSTAB_OK)
            fail_msg("accepted: %s", bad[i].text);
        tu_check_failure(rc, &err, "lbl.npz: meta.json: ", bad[i].needle,
                         NULL);
        assert_int_equal(rc, SGDSTAB_EFORMAT);
        check_absent(&pv, 0);
    }
    /* a NUL inside the text, and no NUL after it */
    const char nul[] = "{\"n\": 1}\0{}";
    int rc = sgdstab_provenance_parse(nul, sizeof nul - 1, "lbl.npz", &pv,
                                      &err);
    tu_check_failure(rc, &err, "lbl.npz: meta.json: not valid JSON", NULL);
    rc = sgdstab_provenance_parse("{\"n\": 7}xyz", 8, "lbl.npz", &pv, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(pv.n, 7);
}

/* residual_rms ≤ 1e-2 · target_rms, at the threshold and either side. */
static void test_provenance_interpolating(void **state)
{
    (void)state;
    static const struct {
        double residual, target;
        int want;
    } cases[] = {
        {0.01, 1, 1},           {0.0099999999, 1, 1}, {0.0100000001, 1, 0},
        {0, 1e-300, 1},         {0.5, 50, 1},         {0.5000001, 50, 0},
        {3.4, 100, 0},          {NAN, 1, -1},         {0.001, NAN, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sgdstab_provenance pv;
        sgdstab_provenance_init(&pv);
        pv.residual_rms = cases[i].residual;
        pv.target_rms = cases[i].target;
        int got = sgdstab_provenance_interpolating(&pv);
        if (got != cases[i].want)
            fail_msg("residual %.17g, target %.17g: %d, want %d",
                     cases[i].residual, cases[i].target, got, cases[i].want);
        double rel = sgdstab_provenance_relative_residual(&pv);
        if (cases[i].want < 0)
            assert_true(isnan(rel));
        else
            assert_true(rel == cases[i].residual / cases[i].target);
    }
    assert_true(SGDSTAB_INTERPOLATION_RTOL == 1e-2);
}

/* Fails if a test left a file behind. */
static int teardown_tmpdir(void **state)
{
    (void)state;
    return rmdir(tu_tmpdir());
}

/* Write tmpdir/name: J (n, k, p) and, unless meta is NULL, meta.json with
 * len bytes; returns the path (static storage, one at a time). */
static const char *write_npz(const char *name, size_t n, size_t k, size_t p,
                             const char *meta, size_t len)
{
    static char path[8192];
    tu_tmp_path(path, sizeof path, name);
    sgdstab_array J = tu_array(3, n, k, p, "<f8", NULL);
    sgdstab_npz_member m[2] = {{"J", &J, NULL, 0},
                               {"meta.json", NULL, meta, len}};
    sgdstab_error err;
    int rc = sgdstab_npz_write(path, m, meta ? 2 : 1, &err);
    sgdstab_array_free(&J);
    if (rc)
        fail_msg("%s", err.msg);
    return path;
}

static void test_npz_raw_member(void **state)
{
    (void)state;
    const char meta[] = "{\"n\": 4}\0tail";  /* a NUL of its own */
    const char *path = write_npz("raw.npz", 4, 2, 3, meta, sizeof meta - 1);
    sgdstab_error err;
    sgdstab_npz *z = sgdstab_npz_open(path, &err);
    if (!z)
        fail_msg("%s", err.msg);
    assert_true(sgdstab_npz_has_member(z, "meta.json"));
    assert_true(sgdstab_npz_has_member(z, "J.npy"));
    assert_false(sgdstab_npz_has_member(z, "J"));
    assert_false(sgdstab_npz_has(z, "meta.json"));
    assert_false(sgdstab_npz_has_member(z, "meta"));
    char *text;
    size_t len;
    if (sgdstab_npz_read_bytes(z, "meta.json", sizeof meta - 1, &text, &len,
                               &err))
        fail_msg("%s", err.msg);
    assert_int_equal(len, sizeof meta - 1);
    assert_memory_equal(text, meta, len);
    assert_int_equal(text[len], '\0');
    free(text);
    /* one byte over the limit, a missing member */
    int rc = sgdstab_npz_read_bytes(z, "meta.json", sizeof meta - 2, &text,
                                    &len, &err);
    tu_check_failure(rc, &err, "raw.npz:meta.json", "allowed", NULL);
    assert_int_equal(rc, SGDSTAB_EFORMAT);
    assert_null(text);
    rc = sgdstab_npz_read_bytes(z, "none.json", 100, &text, &len, &err);
    tu_check_failure(rc, &err, "raw.npz", "none.json", NULL);
    assert_null(text);
    sgdstab_npz_close(z);
    unlink(path);
}

static void test_load_meta(void **state)
{
    (void)state;
    const char *meta = "{\"loss\": \"mse\", \"residual_rms\": 0.02, "
                       "\"max_residual\": 0.1, \"target_rms\": 4, \"n\": 4, "
                       "\"k\": 2, \"p\": 3, \"train_batch\": 2}";
    const char *path = write_npz("meta.npz", 4, 2, 3, meta, strlen(meta));
    sgdstab_problem *prob = NULL;
    sgdstab_error err;
    if (sgdstab_problem_load(path, NULL, &prob, &err))
        fail_msg("%s", err.msg);
    const sgdstab_provenance *pv = &prob->provenance;
    assert_int_equal(pv->present, 1);
    assert_string_equal(pv->loss, "mse");
    assert_true(pv->residual_rms == 0.02 && pv->max_residual == 0.1 &&
                pv->target_rms == 4);
    assert_true(pv->n == 4 && pv->k == 2 && pv->p == 3 &&
                pv->train_batch == 2);
    assert_int_equal(sgdstab_provenance_interpolating(pv), 1);
    sgdstab_problem_free(prob);
    unlink(path);

    /* the shape meta.json gives must be J's */
    static const struct {
        const char *meta, *needle;
    } shape[] = {
        {"{\"n\": 5}", "meta.json says n = 5 but J has 4 samples"},
        {"{\"n\": 4, \"k\": 1}", "meta.json says k = 1 but J has 2 outputs "
                                 "per sample"},
        {"{\"p\": 30}", "meta.json says p = 30 but J has 3 parameters"},
        {"{\"n\": 4, \"residual_rms\": -1}", "\"residual_rms\""},
        {"{\"n\": 4", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof shape / sizeof shape[0]; i++) {
        path = write_npz("bad.npz", 4, 2, 3, shape[i].meta,
                         strlen(shape[i].meta));
        int rc = sgdstab_problem_load(path, NULL, &prob, &err);
        if (rc == SGDSTAB_OK)
            fail_msg("accepted meta.json %s", shape[i].meta);
        tu_check_failure(rc, &err, "bad.npz: ", shape[i].needle, NULL);
        assert_int_equal(rc, SGDSTAB_EFORMAT);
        assert_null(prob);
        unlink(path);
    }
}

/* SGDSTAB_META_MAX bytes are read; one more is refused before parsing. */
static void test_load_meta_limit(void **state)
{
    (void)state;
    size_t max = SGDSTAB_META_MAX;
    char *big = malloc(max + 1);
    assert_non_null(big);
    memset(big, ' ', max + 1);
    memcpy(big, "{\"n\": 4}", 8);
    sgdstab_problem *prob = NULL;
    sgdstab_error err;
    const char *path = write_npz("big.npz", 4, 1, 2, big, max);
    if (sgdstab_problem_load(path, NULL, &prob, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(prob->provenance.n, 4);
    sgdstab_problem_free(prob);
    unlink(path);
    path = write_npz("big.npz", 4, 1, 2, big, max + 1);
    free(big);
    int rc = sgdstab_problem_load(path, NULL, &prob, &err);
    tu_check_failure(rc, &err, "big.npz:meta.json", "1048577 bytes", NULL);
    assert_int_equal(rc, SGDSTAB_EFORMAT);
    assert_null(prob);
    unlink(path);
}

/* No meta.json: nothing known, from an .npz, a .npy or arrays. */
static void test_no_meta(void **state)
{
    (void)state;
    sgdstab_problem *prob = NULL;
    sgdstab_error err;
    const char *path = write_npz("plain.npz", 3, 1, 2, NULL, 0);
    if (sgdstab_problem_load(path, NULL, &prob, &err))
        fail_msg("%s", err.msg);
    check_absent(&prob->provenance, 0);
    sgdstab_problem_free(prob);
    unlink(path);
    if (sgdstab_problem_load(tu_path("prob_J.npy"), NULL, &prob, &err))
        fail_msg("%s", err.msg);
    check_absent(&prob->provenance, 0);
    sgdstab_problem_free(prob);
    sgdstab_array J = tu_array(2, 3, 2, 1, "<f8", NULL);
    if (sgdstab_problem_from_arrays("arrays", &J, NULL, NULL, &prob, &err))
        fail_msg("%s", err.msg);
    check_absent(&prob->provenance, 0);
    sgdstab_problem_free(prob);
}

/* ---------------------------------------------------------- memory plan */

/* The fixture's J (4000 x 2500 float16 zeros, a few kB deflated) needs
 * about 0.5 GB as float64 with its SVD: refused under a 100 MB limit with
 * one line naming the file and both figures, before anything is read. */
static void test_memory_refused(void **state)
{
    (void)state;
    const cJSON *m = tu_jget(tu_manifest(), "memory");
    const char *file = tu_path(tu_jstr(m, "file"));
    setenv("SGDSTAB_MAX_MEMORY", tu_jstr(m, "limit"), 1);
    sgdstab_problem *prob = NULL;
    sgdstab_error err;
    int rc = sgdstab_problem_load(file, NULL, &prob, &err);
    unsetenv("SGDSTAB_MAX_MEMORY");
    assert_null(prob);
    tu_check_failure(rc, &err, file, "not enough memory", "100 MB available",
                     "SGDSTAB_MAX_MEMORY", NULL);
    assert_int_equal(rc, SGDSTAB_ENOMEM);
    /* max_memory < 0 turns the check off: the same file then loads. */
    sgdstab_load_options opt = {.max_memory = -1};
    if (sgdstab_problem_load(file, &opt, &prob, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(prob->n * prob->p, tu_jsize(m, "n") * tu_jsize(m, "p"));
    sgdstab_problem_free(prob);
}

/* The case: J (200000, 5000) needs J, its work copy and the factor
 * Φ (8 GB each) plus dgesdd's workspace, about 24.2 GB. */
static void test_memory_need(void **state)
{
    (void)state;
    double need = sgdstab_memory_need(200000, 1, 5000, 0);
    assert_true(need > 24.0e9 && need < 24.5e9);
    assert_true(sgdstab_memory_need(200000, 1, 5000, 1) > need + 16e9);
    assert_true(sgdstab_memory_need(1, 1, 1, 0) < 1e3);
}

static void test_memory_size_parse(void **state)
{
    (void)state;
    assert_true(sgdstab_parse_memory_size("8G") == 8e9);
    assert_true(sgdstab_parse_memory_size("512MB") == 512e6);
    assert_true(sgdstab_parse_memory_size("1.5e3") == 1500);
    assert_true(sgdstab_parse_memory_size("8Q") < 0);
    assert_true(sgdstab_parse_memory_size("-1G") < 0);
    assert_true(sgdstab_parse_memory_size("") < 0);
}

/* --------------------------------------------------------------- main */

/* max |(ΦΦᵀ)_ab − K_ab| over max|K|: the reduced problem reproduces the
 * Gram matrix it stands for. */
static double gram_mismatch(const sgdstab_reduced *red, const double *K)
{
    size_t rows = red->n * red->k, r = red->r;
    double dmax = 0, kmax = 0;
    for (size_t a = 0; a < rows; a++)
        for (size_t b = 0; b < rows; b++) {
            double s = 0;
            for (size_t j = 0; j < r; j++)
                s += red->phi[a * r + j] * red->phi[b * r + j];
            dmax = fmax(dmax, fabs(s - K[a * rows + b]));
            kmax = fmax(kmax, fabs(K[a * rows + b]));
        }
    return dmax / kmax;
}

/* J Jᵀ of a problem's J (malloc'd), by plain loops. */
static double *gram_of(const sgdstab_problem *prob)
{
    size_t rows = prob->n * prob->k, p = prob->p;
    double *K = malloc(rows * rows * sizeof *K);
    assert_non_null(K);
    for (size_t a = 0; a < rows; a++)
        for (size_t b = 0; b < rows; b++) {
            double s = 0;
            for (size_t i = 0; i < p; i++)
                s += prob->J[a * p + i] * prob->J[b * p + i];
            K[a * rows + b] = s;
        }
    return K;
}

/* The Gram route (reduce.h) against dgesdd: where it is taken (a well
 * conditioned J, n·k below and above p) the singular values agree to
 * rounding and Φ reproduces J Jᵀ; on a rank-deficient J it is not taken
 * and the rank is the SVD's.  A Gram matrix K loads and factorizes to the
 * same σ (to what K resolves) and the same rank. */
static void test_gram_route(void **state)
{
    (void)state;
    static const size_t shapes[][3] = {{30, 1, 20}, {8, 3, 40}, {25, 1, 40}};
    sgdstab_reduce_options svd;
    sgdstab_reduce_options_init(&svd);
    svd.svd_only = 1;
    sgdstab_error err;
    for (size_t c = 0; c < 4; c++) {
        sgdstab_problem *prob;
        if (c < 3) {
            prob = tu_random_problem(shapes[c][0], shapes[c][1], shapes[c][2],
                                     1.0, 11 + c);
        } else {  /* rank 3: J = A B with A 20×3, B 3×15 */
            size_t rows = 20, p = 15, inner = 3;
            sgdstab_rng *rng = sgdstab_rng_alloc(5);
            double *A = tu_random_J(rng, rows, 1, inner, 1.0);
            double *B = tu_random_J(rng, inner, 1, p, 1.0);
            double *J = calloc(rows * p, sizeof *J);
            for (size_t a = 0; a < rows; a++)
                for (size_t i = 0; i < p; i++)
                    for (size_t m = 0; m < inner; m++)
                        J[a * p + i] += A[a * inner + m] * B[m * p + i];
            prob = tu_problem("rank 3", rows, 1, p, J, NULL);
            sgdstab_rng_free(rng);
            free(A);
            free(B);
            free(J);
        }
        sgdstab_reduced *g = NULL, *d = NULL;
        if (sgdstab_reduce(prob, NULL, &g, &err) ||
            sgdstab_reduce(prob, &svd, &d, &err))
            fail_msg("%s", err.msg);
        assert_int_equal(g->gram_route, c < 3);
        assert_int_equal(d->gram_route, 0);
        assert_int_equal(g->rank_J, d->rank_J);
        assert_int_equal(g->rank_J, c < 3 ? d->nsv : 3);
        for (size_t j = 0; j < g->rank_J; j++)
            tu_assert_close(g->sigma[j], d->sigma[j], 1e-13 * d->sigma[j],
                            "sigma");
        double *K = gram_of(prob);
        assert_true(gram_mismatch(g, K) < 1e-13);
        assert_true(gram_mismatch(d, K) < 1e-13);

        /* The same problem as its Gram matrix. */
        size_t rows = prob->n * prob->k;
        sgdstab_array Ka = tu_array(2, rows, rows, 1, "<f8", K);
        sgdstab_problem *kp;
        if (sgdstab_problem_from_gram("K", &Ka, NULL, prob->n, prob->k, 0,
                                      NULL, &kp, &err))
            fail_msg("%s", err.msg);
        assert_int_equal(kp->p, 0);
        sgdstab_reduced *kr = tu_reduce(kp);
        assert_int_equal(kr->rank_J, d->rank_J);
        assert_int_equal(kr->from_gram, 1);
        /* K holds σ², accurate to about ε·σmax². */
        for (size_t j = 0; j < kr->rank_J; j++)
            tu_assert_close(kr->sigma[j], d->sigma[j],
                            1e-13 * d->sigma[0] * d->sigma[0] / d->sigma[j],
                            "sigma from K");
        assert_true(gram_mismatch(kr, K) < 1e-13);
        sgdstab_reduced_free(kr);
        sgdstab_problem_free(kp);
        free(K);
        sgdstab_reduced_free(g);
        sgdstab_reduced_free(d);
        sgdstab_problem_free(prob);
    }
}

/* A Gram matrix that is not one: shapes, symmetry, non-finite values, a
 * negative eigenvalue beyond the tolerance (one within it is rounding),
 * n·k against the n and k given. */
static void test_gram_reject(void **state)
{
    (void)state;
    sgdstab_error err;
    sgdstab_problem *prob;
    /* K = diag(1, 2, 3, -x) with x beyond and within the tolerance
     * √(4 ε)² · 3 = 12 ε. */
    const double bad_psd[] = {1, 0, 0, 0, 0, 2, 0, 0,
                              0, 0, 3, 0, 0, 0, 0, -1e-10};
    const double ok_psd[] = {1, 0, 0, 0, 0, 2, 0, 0,
                             0, 0, 3, 0, 0, 0, 0, -1e-16};
    sgdstab_array K = tu_array(2, 4, 4, 1, "<f8", bad_psd);
    assert_int_equal(sgdstab_problem_from_gram("K", &K, NULL, 0, 0, 0, NULL,
                                               &prob, &err), SGDSTAB_OK);
    sgdstab_reduced *red = NULL;
    int rc = sgdstab_reduce(prob, NULL, &red, &err);
    tu_check_failure(rc, &err, "K", "not positive semidefinite", NULL);
    assert_int_equal(rc, SGDSTAB_EVALUE);
    sgdstab_problem_free(prob);
    K = tu_array(2, 4, 4, 1, "<f8", ok_psd);
    assert_int_equal(sgdstab_problem_from_gram("K", &K, NULL, 0, 0, 0, NULL,
                                               &prob, &err), SGDSTAB_OK);
    red = tu_reduce(prob);
    assert_int_equal(red->r, 3);
    assert_int_equal(prob->n, 4);
    assert_int_equal(prob->k, 1);
    sgdstab_reduced_free(red);
    sgdstab_problem_free(prob);

    const double asym[] = {1, 0.5, 0.4, 1};
    K = tu_array(2, 2, 2, 1, "<f8", asym);
    rc = sgdstab_problem_from_gram("K", &K, NULL, 0, 0, 0, NULL, &prob, &err);
    tu_check_failure(rc, &err, "K", "not symmetric", NULL);
    const double nan_K[] = {1, NAN, NAN, 1};
    K = tu_array(2, 2, 2, 1, "<f8", nan_K);
    rc = sgdstab_problem_from_gram("K", &K, NULL, 0, 0, 0, NULL, &prob, &err);
    tu_check_failure(rc, &err, "K", "non-finite", NULL);
    K = tu_array(2, 2, 3, 1, "<f8", NULL);
    rc = sgdstab_problem_from_gram("K", &K, NULL, 0, 0, 0, NULL, &prob, &err);
    tu_check_failure(rc, &err, "K", "square", NULL);
    K = tu_array(3, 2, 2, 2, "<f8", NULL);
    rc = sgdstab_problem_from_gram("K", &K, NULL, 0, 0, 0, NULL, &prob, &err);
    tu_check_failure(rc, &err, "K", "2 dimensions", NULL);
    /* 6 rows: n = 4 or k = 4 cannot split them; n = 3 gives k = 2. */
    K = tu_array(2, 6, 6, 1, "<f8", NULL);
    rc = sgdstab_problem_from_gram("K", &K, NULL, 4, 0, 0, NULL, &prob, &err);
    tu_check_failure(rc, &err, "K", "not n", NULL);
    K = tu_array(2, 6, 6, 1, "<f8", NULL);
    rc = sgdstab_problem_from_gram("K", &K, NULL, 0, 4, 0, NULL, &prob, &err);
    tu_check_failure(rc, &err, "K", "not n", NULL);
    K = tu_array(2, 6, 6, 1, "<f8", NULL);
    for (size_t i = 0; i < 36; i++)
        K.data[i] = i % 7 == 0;
    assert_int_equal(sgdstab_problem_from_gram("K", &K, NULL, 3, 0, 0, NULL,
                                               &prob, &err), SGDSTAB_OK);
    assert_int_equal(prob->k, 2);
    sgdstab_problem_free(prob);
}

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_layout_formula),
        cmocka_unit_test(test_gram_route),
        cmocka_unit_test(test_gram_reject),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_load_symmetry_option),
        cmocka_unit_test(test_from_arrays_2d),
        cmocka_unit_test(test_from_arrays_3d_with_H),
        cmocka_unit_test(test_symmetry_tolerance),
        cmocka_unit_test(test_from_arrays_invalid),
        cmocka_unit_test(test_rank_one),
        cmocka_unit_test(test_diagonal),
        cmocka_unit_test(test_reduce_with_H),
        cmocka_unit_test(test_default_rtol_by_dtype),
        cmocka_unit_test(test_zero_J),
        cmocka_unit_test(test_memory_refused),
        cmocka_unit_test(test_memory_need),
        cmocka_unit_test(test_memory_size_parse),
    };
    static const struct CMUnitTest provenance[] = {
        cmocka_unit_test(test_provenance_parse),
        cmocka_unit_test(test_provenance_reject),
        cmocka_unit_test(test_provenance_interpolating),
        cmocka_unit_test(test_npz_raw_member),
        cmocka_unit_test(test_load_meta),
        cmocka_unit_test(test_load_meta_limit),
        cmocka_unit_test(test_no_meta),
    };
    int failed = cmocka_run_group_tests_name("problem+reduce", fixed, NULL,
                                             NULL);
    failed += cmocka_run_group_tests_name("provenance", provenance,
                                          tu_tmpdir_setup, teardown_tmpdir);
    tu_tests load = {0}, reduce = {0}, reject = {0};
    const cJSON *e;
    char name[512];
    cJSON_ArrayForEach(e, tu_list("problems")) {
        const char *f = cJSON_GetObjectItem(e, "file")->valuestring;
        snprintf(name, sizeof name, "load %s", f);
        tu_add(&load, name, test_load, (void *)e);
        snprintf(name, sizeof name, "reduce %s", f);
        tu_add(&reduce, name, test_reduce, (void *)e);
    }
    cJSON_ArrayForEach(e, tu_list("bad")) {
        snprintf(name, sizeof name, "reject %s",
                 cJSON_GetObjectItem(e, "file")->valuestring);
        tu_add(&reject, name, test_reject, (void *)e);
    }
    failed += tu_run("problem_load fixtures", load.t, load.n);
    failed += tu_run("reduce fixtures", reduce.t, reduce.n);
    failed += tu_run("problem_load malformed fixtures", reject.t, reject.n);
    tu_tests_free(&load);
    tu_tests_free(&reduce);
    tu_tests_free(&reject);
    tu_cleanup();
    return failed ? 1 : 0;
}
