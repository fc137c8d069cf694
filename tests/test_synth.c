/* Synthetic minima (synth.h) and the .npz writer.
 *
 * Expected values come from the definitions in synth.h evaluated here with
 * plain loops (ref_model), from finite differences of the model, from
 * identities that hold at any θ (Euler's theorem for homogeneous models,
 * the balance of the deep-linear factorization), and from reading the files
 * back with the library's own readers and libzip. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zip.h>

#include "sgdstab/npy.h"
#include "sgdstab/problem.h"
#include "sgdstab/rng.h"
#include "sgdstab/synth.h"
#include "testutil.h"

/* ------------------------------------------------------------- helpers */

static double max_abs(const double *v, size_t count)
{
    double m = 0;
    for (size_t j = 0; j < count; j++)
        m = fmax(m, fabs(v[j]));
    return m;
}

static sgdstab_synth *generate(const sgdstab_synth_params *par)
{
    sgdstab_synth *s;
    sgdstab_error err;
    if (sgdstab_synth_generate(par, &s, &err) != SGDSTAB_OK)
        fail_msg("generate: %s", err.msg);
    return s;
}

static double *predict(const sgdstab_synth *s, const double *theta,
                       const double *X, size_t count)
{
    double *out = malloc(count * s->k * sizeof *out);
    sgdstab_error err;
    assert_non_null(out);
    if (sgdstab_synth_predict(s, theta, X, count, out, &err) != SGDSTAB_OK)
        fail_msg("predict: %s", err.msg);
    return out;
}

/* ------------------------------------------------------------- the cases */

typedef struct {
    sgdstab_synth_family family;
    size_t n, d, k, width, depth, extra;
    sgdstab_activation activation;
    double alpha, rescale;
    char name[96];
} synth_case;

#define RELU SGDSTAB_ACTIVATION_RELU
#define TANH SGDSTAB_ACTIVATION_TANH
static synth_case CASES[] = {
    /* family, n, d, k, width, depth, extra, activation, alpha, rescale */
    {SGDSTAB_SYNTH_LINEAR, 9, 5, 1, 0, 0, 0, RELU, 0, 1, ""},
    {SGDSTAB_SYNTH_LINEAR, 8, 4, 3, 0, 0, 0, RELU, 1.5, 1, ""},
    {SGDSTAB_SYNTH_RFM, 9, 5, 1, 7, 0, 0, RELU, 0, 1, ""},
    {SGDSTAB_SYNTH_RFM, 8, 4, 3, 6, 0, 0, TANH, 0.7, 1, ""},
    {SGDSTAB_SYNTH_DEEP_LINEAR, 9, 5, 1, 4, 2, 0, RELU, 0, 1, ""},
    {SGDSTAB_SYNTH_DEEP_LINEAR, 8, 4, 3, 5, 3, 0, RELU, 1, 1, ""},
    {SGDSTAB_SYNTH_DEEP_LINEAR, 7, 6, 2, 3, 4, 0, RELU, 0, 0.5, ""},
    {SGDSTAB_SYNTH_TWO_LAYER, 9, 5, 1, 4, 0, 0, RELU, 0, 1, ""},
    {SGDSTAB_SYNTH_TWO_LAYER, 8, 4, 3, 3, 0, 2, RELU, 0.5, 3, ""},
};
#define NCASES (sizeof CASES / sizeof CASES[0])

static sgdstab_synth_params case_params(const synth_case *c, unsigned long seed)
{
    sgdstab_synth_params par;
    sgdstab_synth_params_init(&par);
    par.family = c->family;
    par.samples = c->n;
    par.inputs = c->d;
    par.outputs = c->k;
    par.width = c->width;
    par.depth = c->depth;
    par.extra = c->extra;
    par.activation = c->activation;
    par.alpha = c->alpha;
    par.rescale = c->rescale;
    par.seed = seed;
    return par;
}

static void name_case(synth_case *c)
{
    int len = snprintf(c->name, sizeof c->name, "%s k=%zu",
                       sgdstab_synth_family_name(c->family), c->k);
    size_t cap = sizeof c->name;
    if (c->family == SGDSTAB_SYNTH_RFM)
        len += snprintf(c->name + len, cap - (size_t)len, " %s",
                        sgdstab_activation_name(c->activation));
    if (c->family == SGDSTAB_SYNTH_DEEP_LINEAR)
        len += snprintf(c->name + len, cap - (size_t)len, " L=%zu", c->depth);
    if (c->family == SGDSTAB_SYNTH_TWO_LAYER)
        len += snprintf(c->name + len, cap - (size_t)len, " E=%zu", c->extra);
    if (sgdstab_synth_uses(c->family) & SGDSTAB_SYNTH_USES_RESCALE)
        len += snprintf(c->name + len, cap - (size_t)len, " C=%g", c->rescale);
    snprintf(c->name + len, cap - (size_t)len, c->alpha ? " power:%g" : " iso",
             c->alpha);
}

/* ------------------------------------------------- the model, by the book */

/* Number of layers and shape (rows, cols) of layer l, from synth.h. */
static size_t ref_layers(const sgdstab_synth_params *par)
{
    switch (par->family) {
    case SGDSTAB_SYNTH_DEEP_LINEAR: return par->depth;
    case SGDSTAB_SYNTH_TWO_LAYER: return 2;
    default: return 1;
    }
}

static void ref_shape(const sgdstab_synth_params *par, size_t l, size_t *rows,
                      size_t *cols)
{
    size_t d = par->inputs, k = par->outputs, m = par->width,
           N = par->width + par->extra, L = ref_layers(par);
    switch (par->family) {
    case SGDSTAB_SYNTH_LINEAR: *rows = k; *cols = d; return;
    case SGDSTAB_SYNTH_RFM: *rows = k; *cols = m; return;
    case SGDSTAB_SYNTH_TWO_LAYER:
        *rows = l ? k : N;
        *cols = l ? N : d;
        return;
    default:
        *rows = l + 1 == L ? k : m;
        *cols = l == 0 ? d : m;
    }
}

/* Offset of layer l in θ. */
static size_t ref_offset(const sgdstab_synth_params *par, size_t l)
{
    size_t off = 0, rows, cols;
    for (size_t j = 0; j < l; j++) {
        ref_shape(par, j, &rows, &cols);
        off += rows * cols;
    }
    return off;
}

/* f(x; θ) with plain loops: the layers of θ applied in turn, relu between
 * the two layers of two-layer, rfm's features σ(Fx)/√m first. */
static void ref_model(const sgdstab_synth *s, const double *theta,
                      const double *x, double *f)
{
    const sgdstab_synth_params *par = &s->params;
    size_t big = s->d + par->width + par->extra + s->k + 1;
    double *h = malloc(big * sizeof *h), *z = malloc(big * sizeof *z);
    assert_true(h && z);
    size_t len = s->d;
    memcpy(h, x, len * sizeof *h);
    if (par->family == SGDSTAB_SYNTH_RFM) {
        for (size_t a = 0; a < par->width; a++) {
            double u = 0;
            for (size_t b = 0; b < s->d; b++)
                u += s->F[a * s->d + b] * x[b];
            u = par->activation == SGDSTAB_ACTIVATION_TANH ? tanh(u)
                                                           : (u > 0 ? u : 0);
            z[a] = u / sqrt((double)par->width);
        }
        len = par->width;
        memcpy(h, z, len * sizeof *h);
    }
    for (size_t l = 0; l < ref_layers(par); l++) {
        size_t rows, cols;
        ref_shape(par, l, &rows, &cols);
        assert_int_equal(cols, len);
        const double *W = theta + ref_offset(par, l);
        for (size_t a = 0; a < rows; a++) {
            z[a] = 0;
            for (size_t b = 0; b < cols; b++)
                z[a] += W[a * cols + b] * h[b];
            if (par->family == SGDSTAB_SYNTH_TWO_LAYER && l == 0 && z[a] < 0)
                z[a] = 0;
        }
        len = rows;
        memcpy(h, z, len * sizeof *h);
    }
    assert_int_equal(len, s->k);
    memcpy(f, h, s->k * sizeof *f);
    free(h);
    free(z);
}

/* Degree of homogeneity of f in θ: f(tθ) = t^deg f(θ) for t > 0. */
static double degree(const sgdstab_synth_params *par)
{
    return par->family == SGDSTAB_SYNTH_DEEP_LINEAR ? (double)par->depth
           : par->family == SGDSTAB_SYNTH_TWO_LAYER ? 2 : 1;
}

/* ------------------------------------------------------ tests per case */

/* A check of one case: s is its minimum, generated from par (the case's
 * parameters at the seed of the check). */
typedef void (*case_check)(const synth_case *c,
                           const sgdstab_synth_params *par,
                           const sgdstab_synth *s);

typedef struct {
    const char *what;
    case_check check;
    unsigned long seed;
} per_case;

/* The state of one test: a case and a check to run on it. */
typedef struct {
    const synth_case *c;
    const per_case *t;
} case_test;

static void test_case(void **state)
{
    const case_test *ct = *state;
    sgdstab_synth_params par = case_params(ct->c, ct->t->seed);
    sgdstab_synth *s = generate(&par);
    ct->t->check(ct->c, &par, s);
    sgdstab_synth_free(s);
}

/* Central differences of the model match J.  Along one coordinate of θ the
 * model is affine (it is linear in each matrix separately, and relu is
 * linear on each side of its kink, which no step crosses: asserted below),
 * so the difference quotient has no truncation error, only rounding:
 * about ε·max|f|·(terms)/h ≈ 1e-11 with h = 1e-4·max(1, |θ_j|).  Tolerance
 * 1e-8 relative to the size of f and J. */
static void check_jacobian(const synth_case *c,
                           const sgdstab_synth_params *par,
                           const sgdstab_synth *s)
{
    (void)par;
    size_t n = s->n, k = s->k, p = s->p, d = s->d;
    double hmax = 1e-4 * fmax(1, max_abs(s->theta, p));
    if (c->family == SGDSTAB_SYNTH_TWO_LAYER) {
        /* No kink within reach: |w_jᵀx_i| > h·max|x| for every neuron. */
        double margin = INFINITY, xmax = max_abs(s->X, n * d);
        for (size_t j = 0; j < c->width + c->extra; j++)
            for (size_t i = 0; i < n; i++)
                margin = fmin(margin, fabs(cblas_ddot((int)d, s->theta + j * d,
                                                      1, s->X + i * d, 1)));
        if (!(margin > 10 * hmax * xmax))
            fail_msg("relu margin %g too small for steps %g", margin, hmax);
    }
    double scale = fmax(1, fmax(max_abs(s->Y, n * k),
                                max_abs(s->J, n * k * p)));
    double *th = malloc(p * sizeof *th);
    assert_non_null(th);
    memcpy(th, s->theta, p * sizeof *th);
    double worst = 0;
    for (size_t j = 0; j < p; j++) {
        double h = 1e-4 * fmax(1, fabs(s->theta[j]));
        double up = s->theta[j] + h, down = s->theta[j] - h;
        th[j] = up;
        double *fp = predict(s, th, s->X, n);
        th[j] = down;
        double *fm = predict(s, th, s->X, n);
        th[j] = s->theta[j];
        for (size_t r = 0; r < n * k; r++)
            worst = fmax(worst, fabs((fp[r] - fm[r]) / (up - down) -
                                     s->J[r * p + j]));
        free(fp);
        free(fm);
    }
    if (worst > 1e-8 * scale)
        fail_msg("%s: |finite difference - J| = %g > 1e-8 x %g", c->name,
                 worst, scale);
    free(th);
}

/* The minimum interpolates the teacher: the reported residual and the model
 * by the book at θ* both reproduce Y; the library's model agrees with the
 * book at a random θ too. */
static void check_interpolates(const synth_case *c,
                               const sgdstab_synth_params *par,
                               const sgdstab_synth *s)
{
    (void)c;
    (void)par;
    size_t n = s->n, k = s->k, p = s->p;
    double scale = fmax(1, max_abs(s->Y, n * k));
    assert_true(s->residual <= 1e-12 * scale);
    double *f = malloc(k * sizeof *f), *theta = malloc(p * sizeof *theta);
    assert_true(f && theta);
    double r2 = 0, y2 = 0;
    for (size_t i = 0; i < n; i++) {
        ref_model(s, s->theta, s->X + i * s->d, f);
        for (size_t o = 0; o < k; o++) {
            double y = s->Y[i * k + o];
            tu_assert_close(f[o], y, 1e-12 * scale, "f(x_i) = y_i");
            r2 += (f[o] - y) * (f[o] - y);
            y2 += y * y;
        }
    }
    tu_assert_close(s->residual_rms, sqrt(r2 / (double)n), 1e-12 * scale,
                    "residual_rms");
    tu_assert_close(s->target_rms, sqrt(y2 / (double)n),
                    1e-14 * sqrt(y2 / (double)n), "target_rms");
    sgdstab_rng *rng = sgdstab_rng_alloc(99);
    sgdstab_rng_gaussian(rng, 1.0, p, theta);
    sgdstab_rng_free(rng);
    double *lib = predict(s, theta, s->X, n);
    for (size_t i = 0; i < n; i++) {
        ref_model(s, theta, s->X + i * s->d, f);
        for (size_t o = 0; o < k; o++)
            tu_assert_close(lib[i * k + o], f[o],
                            1e-12 * fmax(1, fabs(f[o])), "model at random θ");
    }
    free(lib);
    free(f);
    free(theta);
}

/* Euler's theorem: f is homogeneous of degree deg in θ, so
 * J_i θ = deg · f(x_i; θ) — a check of J's scaling that does not use
 * differences. */
static void check_euler(const synth_case *c, const sgdstab_synth_params *par,
                        const sgdstab_synth *s)
{
    (void)c;
    size_t nk = s->n * s->k;
    double *Jt = malloc(nk * sizeof *Jt);
    assert_non_null(Jt);
    cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)nk, (int)s->p, 1.0, s->J,
                (int)s->p, s->theta, 1, 0.0, Jt, 1);
    double deg = degree(par), scale = fmax(1, deg * max_abs(s->Y, nk));
    for (size_t r = 0; r < nk; r++)
        tu_assert_close(Jt[r], deg * s->Y[r], 1e-12 * scale, "J theta = deg f");
    free(Jt);
}

/* Same seed: the same bytes; another seed: other data and other bytes.  The
 * file reads back (problem loader, npz reader) with every array exact. */
static void check_file(const synth_case *c, const sgdstab_synth_params *par,
                       const sgdstab_synth *s)
{
    sgdstab_synth *again = generate(par);
    sgdstab_error err;
    char a[8192], b[8192];
    tu_tmp_path(a, sizeof a, "a.npz");
    tu_tmp_path(b, sizeof b, "b.npz");
    assert_int_equal(sgdstab_synth_write(s, a, &err), SGDSTAB_OK);
    assert_int_equal(sgdstab_synth_write(again, b, &err), SGDSTAB_OK);
    size_t la, lb;
    unsigned char *ba = tu_slurp(a, &la), *bb = tu_slurp(b, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(ba, bb, la);
    free(bb);
    sgdstab_synth_free(again);
    sgdstab_synth_params other = *par;
    other.seed = 15;
    again = generate(&other);
    assert_memory_not_equal(again->X, s->X, s->n * s->d * sizeof *s->X);
    assert_int_equal(sgdstab_synth_write(again, b, &err), SGDSTAB_OK);
    bb = tu_slurp(b, &lb);
    assert_true(la != lb || memcmp(ba, bb, la) != 0);
    free(ba);
    free(bb);
    sgdstab_synth_free(again);

    sgdstab_problem *prob;
    if (sgdstab_problem_load(a, NULL, &prob, &err) != SGDSTAB_OK)
        fail_msg("load: %s", err.msg);
    assert_int_equal(prob->n, s->n);
    assert_int_equal(prob->k, s->k);
    assert_int_equal(prob->p, s->p);
    assert_null(prob->H);
    assert_memory_equal(prob->J, s->J, s->n * s->k * s->p * sizeof *s->J);
    sgdstab_problem_free(prob);

    sgdstab_npz *z = sgdstab_npz_open(a, &err);
    assert_non_null(z);
    struct {
        const char *name;
        int ndim;
        size_t shape[3];
        const double *want;
    } arrays[] = {
        {"J", s->k == 1 ? 2 : 3,
         {s->n, s->k == 1 ? s->p : s->k, s->k == 1 ? 1 : s->p}, s->J},
        {"X", 2, {s->n, s->d, 1}, s->X},
        {"Y", 2, {s->n, s->k, 1}, s->Y},
        {"theta", 1, {s->p, 1, 1}, s->theta},
        {"F", 2, {c->width, s->d, 1}, s->F},
    };
    for (size_t i = 0; i < 5; i++) {
        int rfm_only = !strcmp(arrays[i].name, "F");
        if (rfm_only && c->family != SGDSTAB_SYNTH_RFM) {
            assert_false(sgdstab_npz_has(z, "F"));
            continue;
        }
        sgdstab_array arr;
        if (sgdstab_npz_read(z, arrays[i].name, &arr, &err) != SGDSTAB_OK)
            fail_msg("read %s: %s", arrays[i].name, err.msg);
        assert_int_equal(arr.ndim, arrays[i].ndim);
        for (int dim = 0; dim < 3; dim++)
            assert_int_equal(arr.shape[dim], arrays[i].shape[dim]);
        assert_string_equal(arr.descr, "<f8");
        assert_memory_equal(arr.data, arrays[i].want,
                            arr.size * sizeof *arr.data);
        sgdstab_array_free(&arr);
    }
    sgdstab_npz_close(z);
    unlink(a);
    unlink(b);
    assert_int_equal(tu_dir_entries(tu_tmpdir(), NULL, NULL), 0);
}

/* sgdstab_synth_meta_json with a file: the members of meta.json, then the
 * path (escaped) as "file". */
static void check_meta_file(const sgdstab_synth *s, const cJSON *meta)
{
    const char *file = "out dir/\"a\\b\".npz";
    char *text = sgdstab_synth_meta_json(s, file);
    cJSON *with = text ? cJSON_Parse(text) : NULL;
    assert_non_null(with);
    free(text);
    cJSON *last = cJSON_GetArrayItem(with, cJSON_GetArraySize(with) - 1);
    assert_string_equal(last->string, "file");
    assert_string_equal(cJSON_GetStringValue(last), file);
    cJSON_Delete(cJSON_DetachItemViaPointer(with, last));
    assert_true(cJSON_Compare(with, meta, 1));
    cJSON_Delete(with);
}

/* The member meta.json: the text of sgdstab_synth_meta_json, the parameters
 * that apply and no others, sizes, seed, loss, the residuals to the last
 * bit, blocks that tile θ. */
static void check_meta(const synth_case *c, const sgdstab_synth_params *par,
                       const sgdstab_synth *s)
{
    sgdstab_error err;
    char path[8192];
    tu_tmp_path(path, sizeof path, "meta.npz");
    assert_int_equal(sgdstab_synth_write(s, path, &err), SGDSTAB_OK);
    zip_t *za = zip_open(path, ZIP_RDONLY, NULL);
    assert_non_null(za);
    const char *order[] = {"J.npy", "X.npy", "Y.npy", "theta.npy", "F.npy",
                           "meta.json"};
    zip_int64_t count = zip_get_num_entries(za, 0), e = 0;
    for (size_t i = 0; i < 6; i++) {
        if (!strcmp(order[i], "F.npy") && c->family != SGDSTAB_SYNTH_RFM)
            continue;
        assert_true(e < count);
        zip_stat_t st;
        assert_int_equal(zip_stat_index(za, (zip_uint64_t)e++, 0, &st), 0);
        assert_string_equal(st.name, order[i]);
        assert_int_equal(st.comp_method, ZIP_CM_STORE);
    }
    assert_int_equal(e, count);
    zip_stat_t st;
    assert_int_equal(zip_stat(za, "meta.json", 0, &st), 0);
    char *text = calloc(st.size + 1, 1);
    zip_file_t *zf = zip_fopen(za, "meta.json", 0);
    assert_true(text && zf);
    assert_int_equal(zip_fread(zf, text, st.size), (zip_int64_t)st.size);
    zip_fclose(zf);
    zip_close(za);
    cJSON *meta = cJSON_Parse(text);
    assert_non_null(meta);
    char *lib = sgdstab_synth_meta_json(s, NULL);
    assert_non_null(lib);
    assert_string_equal(lib, text);
    free(lib);
    free(text);
    check_meta_file(s, meta);

    assert_string_equal(tu_jstr(meta, "family"),
                        sgdstab_synth_family_name(c->family));
    assert_int_equal(tu_jsize(meta, "n"), s->n);
    assert_int_equal(tu_jsize(meta, "k"), s->k);
    assert_int_equal(tu_jsize(meta, "p"), s->p);
    assert_int_equal(tu_jsize(meta, "d"), s->d);
    assert_int_equal(tu_jsize(meta, "seed"), 16);
    assert_string_equal(tu_jstr(meta, "loss"), "half-mean");
    assert_true(tu_jnum(meta, "max_residual") == s->residual);
    assert_true(tu_jnum(meta, "residual_rms") == s->residual_rms);
    if (s->target_rms > 0)
        assert_true(tu_jnum(meta, "target_rms") == s->target_rms);
    else
        assert_false(cJSON_HasObjectItem(meta, "target_rms"));
    assert_true(tu_jnum(meta, "alpha") == c->alpha);
    const char *spectrum = tu_jstr(meta, "spectrum");
    if (c->alpha == 0)
        assert_string_equal(spectrum, "iso");
    else
        assert_true(!strncmp(spectrum, "power:", 6) &&
                    strtod(spectrum + 6, NULL) == c->alpha);
    unsigned uses = sgdstab_synth_uses(c->family);
    const struct {
        unsigned bit;
        const char *key;
    } optional[] = {{SGDSTAB_SYNTH_USES_WIDTH, "width"},
                    {SGDSTAB_SYNTH_USES_DEPTH, "depth"},
                    {SGDSTAB_SYNTH_USES_ACTIVATION, "activation"},
                    {SGDSTAB_SYNTH_USES_RESCALE, "rescale"},
                    {SGDSTAB_SYNTH_USES_EXTRA, "extra"}};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(cJSON_HasObjectItem(meta, optional[i].key),
                         (uses & optional[i].bit) != 0);
    if (uses & SGDSTAB_SYNTH_USES_RESCALE)
        assert_true(tu_jnum(meta, "rescale") == c->rescale);
    size_t off = 0, l = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, tu_jget(meta, "theta_blocks")) {
        size_t rows, cols;
        ref_shape(par, l++, &rows, &cols);
        assert_int_equal(tu_jsize(b, "rows"), rows);
        assert_int_equal(tu_jsize(b, "cols"), cols);
        assert_int_equal(tu_jsize(b, "offset"), off);
        off += rows * cols;
    }
    assert_int_equal(l, ref_layers(par));
    assert_int_equal(off, s->p);
    assert_non_null(strstr(tu_jstr(meta, "command"), "--seed 16"));
    cJSON_Delete(meta);
    unlink(path);
}

/* ---------------------------------------------------- family properties */

/* ‖G‖_F with G = JᵀJ/n. */
static double gauss_newton_frobenius(const sgdstab_synth *s)
{
    size_t p = s->p;
    double *G = tu_gram(s->J, s->n, s->k, p);
    double sum = 0;
    for (size_t i = 0; i < p; i++)
        for (size_t j = i; j < p; j++)
            sum += (i == j ? 1 : 2) * G[i * p + j] * G[i * p + j];
    free(G);
    return sqrt(sum);
}

/* Members C = 0.5 and 3 of the rescaling family: same data, the same
 * function (on fresh inputs too), a different θ and a different ‖G‖_F. */
static void check_rescaling(sgdstab_synth_family family, size_t k,
                            size_t depth, size_t extra)
{
    synth_case c = {family, 10, 5, k, 4, depth, extra,
                    RELU, 0, 1, ""};
    sgdstab_synth_params par = case_params(&c, 21);
    sgdstab_synth *base = generate(&par);
    double g1 = gauss_newton_frobenius(base);
    size_t m = 13, nk = base->n * k;
    double *Xnew = malloc(m * base->d * sizeof *Xnew);
    assert_non_null(Xnew);
    sgdstab_rng *rng = sgdstab_rng_alloc(5);
    sgdstab_rng_gaussian(rng, 0.5, m * base->d, Xnew);
    sgdstab_rng_free(rng);
    double *f1 = predict(base, base->theta, Xnew, m);
    const double members[] = {0.5, 3};
    for (size_t t = 0; t < 2; t++) {
        par.rescale = members[t];
        sgdstab_synth *s = generate(&par);
        assert_memory_equal(s->X, base->X, base->n * base->d * sizeof *s->X);
        assert_memory_equal(s->Y, base->Y, nk * sizeof *s->Y);
        assert_true(s->residual <= 1e-12 * fmax(1, max_abs(s->Y, nk)));
        assert_memory_not_equal(s->theta, base->theta, s->p * sizeof *s->theta);
        double *f = predict(s, s->theta, Xnew, m);
        double scale = fmax(1, max_abs(f1, m * k));
        for (size_t r = 0; r < m * k; r++)
            tu_assert_close(f[r], f1[r], 1e-12 * scale, "same function");
        double g = gauss_newton_frobenius(s);
        if (!(fabs(g - g1) > 1e-3 * g1))
            fail_msg("C = %g: |G|_F = %.17g, as at C = 1 (%.17g)", members[t],
                     g, g1);
        free(f);
        sgdstab_synth_free(s);
    }
    free(f1);
    free(Xnew);
    sgdstab_synth_free(base);
}

static void test_rescaling(void **state)
{
    (void)state;
    check_rescaling(SGDSTAB_SYNTH_DEEP_LINEAR, 1, 2, 0);
    check_rescaling(SGDSTAB_SYNTH_DEEP_LINEAR, 3, 3, 0);
    check_rescaling(SGDSTAB_SYNTH_TWO_LAYER, 1, 0, 0);
    check_rescaling(SGDSTAB_SYNTH_TWO_LAYER, 3, 0, 2);
}

/* The deep-linear minimum at C = 1 is balanced: W_{l+1}ᵀW_{l+1} = W_l W_lᵀ,
 * and the product of its layers is a k×d matrix of rank min(k, d). */
static void test_balanced(void **state)
{
    (void)state;
    synth_case c = {SGDSTAB_SYNTH_DEEP_LINEAR, 6, 5, 3, 4, 4, 0,
                    RELU, 0, 1, ""};
    sgdstab_synth_params par = case_params(&c, 22);
    sgdstab_synth *s = generate(&par);
    size_t m = c.width;
    double *lhs = malloc(m * m * sizeof *lhs);
    double *rhs = malloc(m * m * sizeof *rhs);
    assert_true(lhs && rhs);
    for (size_t l = 0; l + 1 < c.depth; l++) {
        size_t r0, c0, r1, c1;
        ref_shape(&par, l, &r0, &c0);
        ref_shape(&par, l + 1, &r1, &c1);
        assert_int_equal(r0, m);
        assert_int_equal(c1, m);
        const double *W0 = s->theta + ref_offset(&par, l),
                     *W1 = s->theta + ref_offset(&par, l + 1);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)m,
                    (int)c0, 1.0, W0, (int)c0, W0, (int)c0, 0.0, lhs, (int)m);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)m, (int)m,
                    (int)r1, 1.0, W1, (int)m, W1, (int)m, 0.0, rhs, (int)m);
        double scale = fmax(1, max_abs(lhs, m * m));
        for (size_t j = 0; j < m * m; j++)
            tu_assert_close(lhs[j], rhs[j], 1e-12 * scale, "balanced");
    }
    free(lhs);
    free(rhs);
    sgdstab_synth_free(s);
}

/* Inputs: column variances σ_j² ∝ j^(−α) with Σ_j σ_j² = 1.  Sampling error
 * of a variance from n draws is σ_j²·√(2/n) ≈ 2.2% at n = 4000; allowed 5
 * standard errors (a fixed seed: the outcome is deterministic). */
static void test_inputs(void **state)
{
    (void)state;
    const double alphas[] = {0, 1, 2.5};
    for (size_t t = 0; t < 3; t++) {
        synth_case c = {SGDSTAB_SYNTH_LINEAR, 4000, 6, 1, 0, 0, 0,
                        SGDSTAB_ACTIVATION_RELU, alphas[t], 1, ""};
        sgdstab_synth_params par = case_params(&c, 23);
        sgdstab_synth *s = generate(&par);
        double total = 0;
        for (size_t j = 1; j <= c.d; j++)
            total += pow((double)j, -alphas[t]);
        for (size_t j = 0; j < c.d; j++) {
            double var = 0, want = pow((double)(j + 1), -alphas[t]) / total;
            for (size_t i = 0; i < c.n; i++)
                var += s->X[i * c.d + j] * s->X[i * c.d + j] / (double)c.n;
            tu_assert_close(var, want, 5 * want * sqrt(2.0 / (double)c.n),
                            "input variance");
        }
        sgdstab_synth_free(s);
    }
}

/* A synthetic problem becomes a validated sgdstab_problem without files. */
static void test_problem(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        sgdstab_synth_params par = case_params(&CASES[i], 24);
        sgdstab_synth *s = generate(&par);
        sgdstab_problem *prob;
        sgdstab_error err;
        assert_int_equal(sgdstab_synth_problem(s, &prob, &err), SGDSTAB_OK);
        assert_int_equal(prob->n, s->n);
        assert_int_equal(prob->k, s->k);
        assert_int_equal(prob->p, s->p);
        assert_null(prob->H);
        assert_memory_equal(prob->J, s->J, s->n * s->k * s->p * sizeof *s->J);
        assert_non_null(strstr(prob->source,
                               sgdstab_synth_family_name(par.family)));
        sgdstab_problem_free(prob);
        sgdstab_synth_free(s);
    }
}

/* ----------------------------------------------------- parameters, names */

static void expect_invalid(size_t i, const sgdstab_synth_params *par,
                           const char *needle)
{
    sgdstab_error err;
    int rc = sgdstab_synth_check(par, &err);
    if (rc == SGDSTAB_OK)
        fail_msg("case %zu: accepted; expected an error about '%s'", i,
                 needle);
    tu_check_failure(rc, &err, needle, NULL);
    assert_int_equal(rc, SGDSTAB_EINVAL);
    sgdstab_synth *s;
    tu_dirty(&s, sizeof s);  /* must come back NULL */
    rc = sgdstab_synth_generate(par, &s, &err);
    tu_check_failure(rc, &err, needle, NULL);
    assert_null(s);
}

/* The fields of sgdstab_synth_params a case of test_check sets. */
enum {
    SET_SAMPLES = 1,
    SET_INPUTS = 2,
    SET_OUTPUTS = 4,
    SET_WIDTH = 8,
    SET_DEPTH = 16,
    SET_EXTRA = 32,
    SET_ACTIVATION = 64,
    SET_ALPHA = 128,
    SET_RESCALE = 256,
    SET_FAMILY = 512
};

/* par with the fields named in set taken from v. */
static sgdstab_synth_params with_fields(sgdstab_synth_params par,
                                        unsigned set,
                                        const sgdstab_synth_params *v)
{
    if (set & SET_SAMPLES) par.samples = v->samples;
    if (set & SET_INPUTS) par.inputs = v->inputs;
    if (set & SET_OUTPUTS) par.outputs = v->outputs;
    if (set & SET_WIDTH) par.width = v->width;
    if (set & SET_DEPTH) par.depth = v->depth;
    if (set & SET_EXTRA) par.extra = v->extra;
    if (set & SET_ACTIVATION) par.activation = v->activation;
    if (set & SET_ALPHA) par.alpha = v->alpha;
    if (set & SET_RESCALE) par.rescale = v->rescale;
    if (set & SET_FAMILY) par.family = v->family;
    return par;
}

/* The defaults of each family with a few fields changed: refused with an
 * error that contains needle, or accepted where needle is NULL. */
static void test_check(void **state)
{
    (void)state;
    const sgdstab_synth_family LIN = SGDSTAB_SYNTH_LINEAR,
                               RFM = SGDSTAB_SYNTH_RFM,
                               DEEP = SGDSTAB_SYNTH_DEEP_LINEAR,
                               TWO = SGDSTAB_SYNTH_TWO_LAYER;
    const struct {
        sgdstab_synth_family family;
        unsigned set;
        sgdstab_synth_params v;
        const char *needle;
    } cases[] = {
        {LIN, 0, {0}, NULL},
        {LIN, SET_SAMPLES, {.samples = 0}, "samples"},
        {LIN, SET_OUTPUTS, {.outputs = 0}, "outputs"},
        {LIN, SET_ALPHA, {.alpha = -1}, "alpha"},
        {LIN, SET_ALPHA, {.alpha = NAN}, "alpha"},
        {LIN, SET_FAMILY, {.family = (sgdstab_synth_family)7}, "family"},
        /* Parameters a family does not use are ignored. */
        {LIN, SET_WIDTH | SET_DEPTH | SET_RESCALE | SET_ACTIVATION,
         {.width = 0, .depth = 0, .rescale = -1,
          .activation = (sgdstab_activation)9}, NULL},

        {RFM, SET_WIDTH, {.width = 0}, "width"},
        {RFM, SET_ACTIVATION, {.activation = (sgdstab_activation)9},
         "activation"},
        {RFM, SET_WIDTH | SET_INPUTS, {.width = 1u << 20, .inputs = 1u << 10},
         "F would hold"},
        {RFM, SET_SAMPLES | SET_INPUTS | SET_WIDTH,
         {.samples = (size_t)1 << 20, .inputs = (size_t)1 << 9, .width = 1},
         "X would hold"},

        {DEEP, SET_DEPTH, {.depth = 1}, "depth"},
        {DEEP, SET_RESCALE, {.rescale = 0}, "rescale"},
        {DEEP, SET_RESCALE, {.rescale = INFINITY}, "rescale"},
        {DEEP, SET_OUTPUTS | SET_INPUTS | SET_WIDTH,
         {.outputs = 5, .inputs = 7, .width = 4}, "min(outputs, inputs) = 5"},
        {DEEP, SET_OUTPUTS | SET_INPUTS | SET_WIDTH,
         {.outputs = 5, .inputs = 7, .width = 5}, NULL},
        {DEEP, SET_DEPTH, {.depth = SIZE_MAX}, "theta would hold more than"},

        {TWO, SET_RESCALE, {.rescale = NAN}, "rescale"},
        {TWO, SET_EXTRA, {.extra = SIZE_MAX}, "theta would hold more than"},
        {TWO, SET_SAMPLES | SET_WIDTH | SET_EXTRA,
         {.samples = 10000, .width = 1000, .extra = 1000},
         "J would hold n*k*p = 10000*1*42000"},

        {LIN, SET_SAMPLES | SET_OUTPUTS,
         {.samples = SIZE_MAX / 2, .outputs = 4}, "J would hold"},
    };
    sgdstab_synth_params defaults;
    sgdstab_synth_params_init(&defaults);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sgdstab_synth_params par = defaults;
        par.family = cases[i].family;
        par = with_fields(par, cases[i].set, &cases[i].v);
        if (cases[i].needle) {
            expect_invalid(i, &par, cases[i].needle);
        } else {
            sgdstab_error err;
            int rc = sgdstab_synth_check(&par, &err);
            if (rc != SGDSTAB_OK)
                fail_msg("case %zu: status %d, expected SGDSTAB_OK: %s", i, rc,
                         err.msg);
        }
    }
}

static void test_names(void **state)
{
    (void)state;
    const char *names[] = {"linear", "rfm", "deep-linear", "two-layer"};
    for (int i = 0; i < 4; i++) {
        sgdstab_synth_family f;
        assert_int_equal(sgdstab_synth_family_parse(names[i], &f), 0);
        assert_int_equal(f, i);
        assert_string_equal(sgdstab_synth_family_name(f), names[i]);
    }
    sgdstab_synth_family f = SGDSTAB_SYNTH_RFM;
    assert_int_equal(sgdstab_synth_family_parse("Linear", &f), -1);
    assert_int_equal(sgdstab_synth_family_parse("", &f), -1);
    assert_int_equal(f, SGDSTAB_SYNTH_RFM);
    sgdstab_activation a;
    assert_int_equal(sgdstab_activation_parse("tanh", &a), 0);
    assert_int_equal(a, SGDSTAB_ACTIVATION_TANH);
    assert_string_equal(sgdstab_activation_name(a), "tanh");
    assert_int_equal(sgdstab_activation_parse("relu", &a), 0);
    assert_int_equal(a, SGDSTAB_ACTIVATION_RELU);
    assert_int_equal(sgdstab_activation_parse("sigmoid", &a), -1);

    double alpha = -1;
    assert_int_equal(sgdstab_synth_spectrum_parse("iso", &alpha), 0);
    assert_true(alpha == 0);
    assert_int_equal(sgdstab_synth_spectrum_parse("power:1.5", &alpha), 0);
    assert_true(alpha == 1.5);
    assert_int_equal(sgdstab_synth_spectrum_parse("power:0", &alpha), 0);
    assert_true(alpha == 0);
    const char *bad[] = {"power", "power:", "power:-1", "power:nan",
                         "power:inf", "power:1x", "power:1e999", "iso2", "",
                         "Power:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        alpha = 7;
        if (sgdstab_synth_spectrum_parse(bad[i], &alpha) != -1)
            fail_msg("spectrum '%s' accepted", bad[i]);
        assert_true(alpha == 7);
    }
    assert_int_equal(sgdstab_synth_uses(SGDSTAB_SYNTH_LINEAR), 0);
}

/* ------------------------------------------------------- the npz writer */

static sgdstab_array make_array(int ndim, size_t s0, size_t s1, size_t s2,
                                double first)
{
    sgdstab_array a = tu_array(ndim, s0, s1, s2, "<f8", NULL);
    for (size_t j = 0; j < a.size; j++)
        a.data[j] = first + (double)j / 3;
    return a;
}

static void test_npz_roundtrip(void **state)
{
    (void)state;
    sgdstab_array a1 = make_array(1, 5, 1, 1, -2),
                  a2 = make_array(2, 3, 4, 1, 0.25),
                  a3 = make_array(3, 2, 3, 4, 1e300);
    const char raw[] = "{\"any\": \"bytes\"}";
    sgdstab_npz_member m[] = {{"one", &a1, NULL, 0}, {"two", &a2, NULL, 0},
                              {"notes.txt", NULL, raw, sizeof raw - 1},
                              {"three", &a3, NULL, 0}};
    sgdstab_error err;
    char path[8192], again[8192];
    tu_tmp_path(path, sizeof path, "round.npz");
    assert_int_equal(sgdstab_npz_write(path, m, 4, &err), SGDSTAB_OK);
    sgdstab_npz *z = sgdstab_npz_open(path, &err);
    assert_non_null(z);
    const sgdstab_array *want[] = {&a1, &a2, &a3};
    const char *names[] = {"one", "two", "three"};
    for (size_t i = 0; i < 3; i++) {
        sgdstab_array got;
        assert_int_equal(sgdstab_npz_read(z, names[i], &got, &err), SGDSTAB_OK);
        assert_int_equal(got.ndim, want[i]->ndim);
        assert_memory_equal(got.shape, want[i]->shape,
                            (size_t)got.ndim * sizeof *got.shape);
        assert_memory_equal(got.data, want[i]->data,
                            got.size * sizeof *got.data);
        sgdstab_array_free(&got);
    }
    assert_false(sgdstab_npz_has(z, "notes"));
    sgdstab_npz_close(z);

    zip_t *za = zip_open(path, ZIP_RDONLY, NULL);
    assert_non_null(za);
    char buf[64] = {0};
    zip_file_t *zf = zip_fopen(za, "notes.txt", 0);
    assert_non_null(zf);
    assert_int_equal(zip_fread(zf, buf, sizeof buf), sizeof raw - 1);
    assert_string_equal(buf, raw);
    zip_fclose(zf);
    zip_close(za);

    /* Equal contents, equal bytes (no clock in the archive). */
    size_t l1, l2;
    unsigned char *b1 = tu_slurp(path, &l1);
    sleep(1);
    tu_tmp_path(again, sizeof again, "again.npz");
    assert_int_equal(sgdstab_npz_write(again, m, 4, &err), SGDSTAB_OK);
    unsigned char *b2 = tu_slurp(again, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(b1, b2, l1);
    free(b1);
    free(b2);
    unlink(again);
    unlink(path);
    sgdstab_array_free(&a1);
    sgdstab_array_free(&a2);
    sgdstab_array_free(&a3);
    assert_int_equal(tu_dir_entries(tu_tmpdir(), NULL, NULL), 0);
}

/* Failures leave nothing behind and an existing file untouched. */
static void test_npz_failures(void **state)
{
    (void)state;
    sgdstab_array a = make_array(2, 2, 2, 1, 0);
    sgdstab_npz_member m[] = {{"a", &a, NULL, 0}, {"a", &a, NULL, 0}};
    sgdstab_error err;
    char path[8192];
    tu_tmp_path(path, sizeof path, "no/such/dir/x.npz");
    int rc = sgdstab_npz_write(path, m, 1, &err);
    tu_check_failure(rc, &err, "x.npz", NULL);
    assert_int_equal(rc, SGDSTAB_EIO);

    tu_tmp_path(path, sizeof path, "keep.npz");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("old contents", f);
    fclose(f);
    rc = sgdstab_npz_write(path, m, 0, &err);
    tu_check_failure(rc, &err, "keep.npz", "at least one member", NULL);
    rc = sgdstab_npz_write(path, m, 2, &err);  /* the same name twice */
    tu_check_failure(rc, &err, "keep.npz", "a.npy", NULL);
    a.ndim = 0;
    rc = sgdstab_npz_write(path, m, 1, &err);
    tu_check_failure(rc, &err, "keep.npz", "0-dimensional", NULL);
    a.ndim = 2;
    char long_name[300];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    m[0].name = long_name;
    rc = sgdstab_npz_write(path, m, 1, &err);
    tu_check_failure(rc, &err, "too long", NULL);
    size_t len;
    unsigned char *kept = tu_slurp(path, &len);
    assert_int_equal(len, strlen("old contents"));
    assert_memory_equal(kept, "old contents", len);
    free(kept);
    int found;
    assert_int_equal(tu_dir_entries(tu_tmpdir(), "keep.npz", &found), 1);
    assert_true(found);
    unlink(path);
    sgdstab_array_free(&a);
}

/* Writing a synthetic problem to a directory that does not exist fails with
 * one line naming the file. */
static void test_write_failure(void **state)
{
    (void)state;
    sgdstab_synth_params par;
    sgdstab_synth_params_init(&par);
    par.samples = 5;
    par.inputs = 3;
    sgdstab_synth *s = generate(&par);
    sgdstab_error err;
    char path[8192];
    tu_tmp_path(path, sizeof path, "missing/out.npz");
    int rc = sgdstab_synth_write(s, path, &err);
    tu_check_failure(rc, &err, "out.npz", NULL);
    assert_int_equal(rc, SGDSTAB_EIO);
    assert_int_equal(tu_dir_entries(tu_tmpdir(), NULL, NULL), 0);
    sgdstab_synth_free(s);
}

int main(void)
{
    const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_rescaling),
        cmocka_unit_test(test_balanced),
        cmocka_unit_test(test_inputs),
        cmocka_unit_test(test_problem),
    };
    const struct CMUnitTest files[] = {
        cmocka_unit_test(test_npz_roundtrip),
        cmocka_unit_test(test_npz_failures),
        cmocka_unit_test(test_write_failure),
    };
    int failed = cmocka_run_group_tests_name("synth", fixed, NULL, NULL);
    failed += cmocka_run_group_tests_name("npz write", files, tu_tmpdir_setup,
                                          tu_tmpdir_teardown);

    static const per_case checks[] = {
        {"jacobian = finite differences", check_jacobian, 11},
        {"interpolates the teacher", check_interpolates, 12},
        {"Euler: J theta = deg f", check_euler, 13},
        {"file: deterministic, reads back", check_file, 14},
        {"meta.json", check_meta, 16}};
#define NCHECKS (sizeof checks / sizeof checks[0])
    static case_test states[NCASES * NCHECKS];
    tu_tests cases = {0};
    char name[256];
    for (size_t i = 0; i < NCASES; i++) {
        name_case(&CASES[i]);
        for (size_t t = 0; t < NCHECKS; t++) {
            case_test *ct = &states[i * NCHECKS + t];
            *ct = (case_test){&CASES[i], &checks[t]};
            snprintf(name, sizeof name, "%s: %s", CASES[i].name,
                     checks[t].what);
            tu_add(&cases, name, test_case, ct);
        }
    }
    if (tu_tmpdir_setup(NULL) != 0)
        return 1;
    failed += tu_run("synth families", cases.t, cases.n);
    tu_tmpdir_teardown(NULL);
    tu_tests_free(&cases);
    tu_cleanup();
    return failed ? 1 : 0;
}
