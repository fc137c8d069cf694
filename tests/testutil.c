#include "testutil.h"

#include <cblas.h>
#include <dirent.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sgdstab/rng.h"

static cJSON *manifest;
static char **paths;
static size_t npaths, cappaths;

const char *tu_fixtures(void)
{
    const char *d = getenv("SGDSTAB_FIXTURES");
    if (!d || !*d) {
        fprintf(stderr, "SGDSTAB_FIXTURES is not set: run through meson test\n");
        exit(99);
    }
    return d;
}

const char *tu_path(const char *name)
{
    const char *d = tu_fixtures();
    size_t len = strlen(d) + strlen(name) + 2;
    char *p = malloc(len);
    assert_non_null(p);
    snprintf(p, len, "%s/%s", d, name);
    if (npaths == cappaths) {
        cappaths = cappaths ? 2 * cappaths : 64;
        paths = realloc(paths, cappaths * sizeof *paths);
        assert_non_null(paths);
    }
    paths[npaths++] = p;
    return p;
}

const cJSON *tu_manifest(void)
{
    if (!manifest) {
        size_t len;
        const char *d = tu_fixtures();
        char path[4096];
        snprintf(path, sizeof path, "%s/manifest.json", d);
        FILE *f = fopen(path, "rb");
        if (!f) {
            fprintf(stderr, "cannot open %s\n", path);
            exit(99);
        }
        fseek(f, 0, SEEK_END);
        len = (size_t)ftell(f);
        fseek(f, 0, SEEK_SET);
        char *text = malloc(len + 1);
        if (!text || fread(text, 1, len, f) != len) {
            fprintf(stderr, "cannot read %s\n", path);
            exit(99);
        }
        fclose(f);
        text[len] = 0;
        manifest = cJSON_Parse(text);
        free(text);
        if (!manifest) {
            fprintf(stderr, "%s is not valid JSON\n", path);
            exit(99);
        }
    }
    return manifest;
}

const cJSON *tu_list(const char *key)
{
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(tu_manifest(), key);
    if (!cJSON_IsArray(l)) {
        fprintf(stderr, "manifest has no list '%s'\n", key);
        exit(99);
    }
    return l;
}

void tu_cleanup(void)
{
    cJSON_Delete(manifest);
    manifest = NULL;
    for (size_t i = 0; i < npaths; i++)
        free(paths[i]);
    free(paths);
    paths = NULL;
    npaths = cappaths = 0;
}

double tu_formula(size_t f)
{
    return (double)((37 * f) % 101) / 8.0 - 6.0;
}

double tu_symformula(size_t p, size_t i, size_t j)
{
    return i <= j ? tu_formula(i * p + j) : tu_formula(j * p + i);
}

unsigned char *tu_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open fixture %s", path);
    size_t cap = 4096, n = 0;
    unsigned char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap);
        assert_non_null(buf);
    }
    fclose(f);
    *len = n;
    return buf;
}

static char tmpdir[4096];

int tu_tmpdir_setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    int len = snprintf(tmpdir, sizeof tmpdir, "%s/sgdstab-test-XXXXXX",
                       base && *base ? base : "/tmp");
    return len > 0 && (size_t)len < sizeof tmpdir && mkdtemp(tmpdir) ? 0 : -1;
}

int tu_tmpdir_teardown(void **state)
{
    (void)state;
    DIR *d = opendir(tmpdir);
    if (!d)
        return -1;
    struct dirent *de;
    char path[8192];
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            unlink(tu_tmp_path(path, sizeof path, de->d_name));
    closedir(d);
    return rmdir(tmpdir);
}

const char *tu_tmpdir(void)
{
    return tmpdir;
}

char *tu_tmp_path(char *path, size_t size, const char *name)
{
    snprintf(path, size, "%s/%s", tmpdir, name);
    return path;
}

size_t tu_dir_entries(const char *dir, const char *want, int *found)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    int seen = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        n++;
        if (want && !strcmp(de->d_name, want))
            seen = 1;
        else
            print_message("  entry in output dir: %s\n", de->d_name);
    }
    closedir(d);
    if (found)
        *found = seen;
    return n;
}

sgdstab_array tu_array(int nd, size_t s0, size_t s1, size_t s2,
                       const char *descr, const double *vals)
{
    sgdstab_array a;
    memset(&a, 0, sizeof a);
    a.ndim = nd;
    a.shape[0] = s0;
    a.shape[1] = nd >= 2 ? s1 : 1;
    a.shape[2] = nd >= 3 ? s2 : 1;
    a.size = a.shape[0] * a.shape[1] * a.shape[2];
    snprintf(a.descr, sizeof a.descr, "%s", descr);
    if (a.size) {
        a.data = malloc(a.size * sizeof *a.data);
        assert_non_null(a.data);
        if (vals)
            memcpy(a.data, vals, a.size * sizeof *a.data);
        else
            for (size_t f = 0; f < a.size; f++)
                a.data[f] = tu_formula(f);
    }
    return a;
}

void tu_dirty(void *p, size_t size)
{
    memset(p, 0xA5, size);
}

void tu_check_failure(int rc, const sgdstab_error *err, ...)
{
    if (rc == SGDSTAB_OK)
        fail_msg("expected a failure, got SGDSTAB_OK");
    assert_int_equal(err->status, rc);
    size_t len = strnlen(err->msg, sizeof err->msg);
    if (len == 0 || len == sizeof err->msg)
        fail_msg("error message empty or not terminated");
    if (strchr(err->msg, '\n') || strchr(err->msg, '\r'))
        fail_msg("error message is not one line: \"%s\"", err->msg);
    va_list ap;
    va_start(ap, err);
    const char *needle;
    while ((needle = va_arg(ap, const char *)) != NULL)
        if (!strstr(err->msg, needle)) {
            va_end(ap);
            fail_msg("error message \"%s\" does not contain \"%s\"", err->msg,
                     needle);
        }
    va_end(ap);
}

void tu_check_any(const char *msg, const cJSON *any)
{
    if (!cJSON_IsArray(any) || cJSON_GetArraySize(any) == 0)
        return;
    const cJSON *s;
    cJSON_ArrayForEach(s, any) {
        if (cJSON_IsString(s) && strstr(msg, s->valuestring))
            return;
    }
    char *want = cJSON_PrintUnformatted(any);
    print_error("message \"%s\" contains none of %s\n", msg, want);
    free(want);
    fail();
}

int tu_status_code(const cJSON *name)
{
    static const struct { const char *s; int code; } map[] = {
        {"EIO", SGDSTAB_EIO},       {"EFORMAT", SGDSTAB_EFORMAT},
        {"ESHAPE", SGDSTAB_ESHAPE}, {"EVALUE", SGDSTAB_EVALUE},
        {"EINVAL", SGDSTAB_EINVAL}, {"ENOMEM", SGDSTAB_ENOMEM},
        {"ENUMERIC", SGDSTAB_ENUMERIC}};
    if (!cJSON_IsString(name))
        return -1;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(map[i].s, name->valuestring))
            return map[i].code;
    return -1;
}

const cJSON *tu_jget(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        fail_msg("manifest entry has no key '%s'", key);
    return v;
}

size_t tu_jsize(const cJSON *obj, const char *key)
{
    const cJSON *v = tu_jget(obj, key);
    assert_true(cJSON_IsNumber(v) && v->valuedouble >= 0);
    return (size_t)v->valuedouble;
}

double tu_jnum(const cJSON *obj, const char *key)
{
    const cJSON *v = tu_jget(obj, key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

const char *tu_jstr(const cJSON *obj, const char *key)
{
    const cJSON *v = tu_jget(obj, key);
    if (cJSON_IsNull(v))
        return NULL;
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

int tu_jbool(const cJSON *obj, const char *key)
{
    const cJSON *v = tu_jget(obj, key);
    assert_true(cJSON_IsBool(v));
    return cJSON_IsTrue(v);
}

void tu_assert_close_(double a, double b, double tol, const char *what,
                      const char *file, int line)
{
    if (!(fabs(a - b) <= tol)) {
        print_error("%s:%d: %s: got %.17g, expected %.17g (|diff| %.3g > "
                    "tol %.3g)\n", file, line, what, a, b, fabs(a - b), tol);
        fail();
    }
}

void tu_spectral_matrix(size_t n, const double *lambda, unsigned long seed,
                        double *A, double *Q)
{
    double *U = malloc(n * n * sizeof *U);  /* column j at U + j·n */
    sgdstab_rng *rng = sgdstab_rng_alloc(seed);
    assert_non_null(U);
    assert_non_null(rng);
    sgdstab_rng_gaussian(rng, 1.0, n * n, U);
    sgdstab_rng_free(rng);
    for (size_t j = 0; j < n; j++) {
        double *u = U + j * n;
        for (int pass = 0; pass < 2; pass++)
            for (size_t l = 0; l < j; l++) {
                double d = 0;
                for (size_t i = 0; i < n; i++)
                    d += U[l * n + i] * u[i];
                for (size_t i = 0; i < n; i++)
                    u[i] -= d * U[l * n + i];
            }
        double norm = 0;
        for (size_t i = 0; i < n; i++)
            norm += u[i] * u[i];
        for (size_t i = 0; i < n; i++)
            u[i] /= sqrt(norm);
    }
    for (size_t i = 0; i < n; i++)
        for (size_t l = i; l < n; l++) {
            double s = 0;
            for (size_t j = 0; j < n; j++)
                s += U[j * n + i] * lambda[j] * U[j * n + l];
            A[i * n + l] = A[l * n + i] = s;
        }
    if (Q)
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++)
                Q[i * n + j] = U[j * n + i];
    free(U);
}

void tu_assert_close_rel_(double a, double b, double rtol, const char *what,
                          const char *file, int line)
{
    if (!(fabs(a - b) <= rtol * fabs(b))) {
        print_error("%s:%d: %s: got %.17g, expected %.17g (relative "
                    "difference %.3g > rtol %.3g)\n", file, line, what, a, b,
                    fabs(a - b) / fabs(b), rtol);
        fail();
    }
}

const sgdstab_sampling tu_samplings[3] = {SGDSTAB_SAMPLING_WITHOUT,
                                          SGDSTAB_SAMPLING_WITH,
                                          SGDSTAB_SAMPLING_BERNOULLI};

double *tu_random_J(sgdstab_rng *rng, size_t n, size_t k, size_t p,
                    double scale)
{
    double *J = malloc(n * k * p * sizeof *J);
    assert_non_null(J);
    sgdstab_rng_gaussian(rng, scale / sqrt((double)p), n * k * p, J);
    return J;
}

sgdstab_problem *tu_problem(const char *label, size_t n, size_t k, size_t p,
                            const double *J, const double *H)
{
    sgdstab_array Ja = tu_array(3, n, k, p, "<f8", J);
    sgdstab_array Ha = H ? tu_array(2, p, p, 1, "<f8", H)
                         : (sgdstab_array){.ndim = 0};
    sgdstab_problem *prob;
    sgdstab_error err;
    if (sgdstab_problem_from_arrays(label, &Ja, H ? &Ha : NULL, NULL, &prob,
                                    &err) != SGDSTAB_OK)
        fail_msg("problem %s: %s", label, err.msg);
    return prob;
}

sgdstab_problem *tu_random_problem(size_t n, size_t k, size_t p, double scale,
                                   unsigned long seed)
{
    sgdstab_rng *rng = sgdstab_rng_alloc(seed);
    assert_non_null(rng);
    double *J = tu_random_J(rng, n, k, p, scale);
    sgdstab_rng_free(rng);
    sgdstab_problem *prob = tu_problem("random", n, k, p, J, NULL);
    free(J);
    return prob;
}

sgdstab_reduced *tu_reduce(const sgdstab_problem *prob)
{
    sgdstab_reduced *red;
    sgdstab_error err;
    if (sgdstab_reduce(prob, NULL, &red, &err) != SGDSTAB_OK)
        fail_msg("reduce: %s", err.msg);
    return red;
}

tu_fixture tu_fixture_of(sgdstab_problem *prob)
{
    return (tu_fixture){prob, tu_reduce(prob)};
}

void tu_fixture_free(tu_fixture *f)
{
    sgdstab_reduced_free(f->red);
    sgdstab_problem_free(f->prob);
}

double *tu_gram(const double *J, size_t n, size_t k, size_t p)
{
    double *G = calloc(p * p, sizeof *G);
    assert_non_null(G);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)p, (int)(n * k),
                1.0 / (double)n, J, (int)p, 0.0, G, (int)p);
    return G;
}

void tu_gram_eigenvalues(const sgdstab_problem *prob, double *w)
{
    size_t p = prob->p;
    double *G = tu_gram(prob->J, prob->n, prob->k, p);
    assert_int_equal(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', (lapack_int)p,
                                   G, (lapack_int)p, w),
                     0);
    free(G);
}

sgdstab_sim_options tu_sim_options(double lr, size_t batch, size_t steps,
                                   size_t runs)
{
    sgdstab_sim_options o;
    memset(&o, 0, sizeof o);
    sgdstab_config_init(&o.config);
    o.config.lr = lr;
    o.config.batch = batch;
    o.steps = steps;
    o.runs = runs;
    o.seed = 5;
    return o;
}

int tu_run(const char *group, struct CMUnitTest *tests, size_t n)
{
    return _cmocka_run_group_tests(group, tests, n, NULL, NULL);
}

void tu_add(tu_tests *ts, const char *name, CMUnitTestFunction fn,
            void *state)
{
    if (ts->n == ts->cap) {
        ts->cap = ts->cap ? 2 * ts->cap : 64;
        ts->t = realloc(ts->t, ts->cap * sizeof *ts->t);
        ts->names = realloc(ts->names, ts->cap * sizeof *ts->names);
        if (!ts->t || !ts->names)
            abort();
    }
    char *copy = strdup(name);
    if (!copy)
        abort();
    ts->names[ts->n] = copy;
    ts->t[ts->n] = (struct CMUnitTest){copy, fn, NULL, NULL, state};
    ts->n++;
}

void tu_tests_free(tu_tests *ts)
{
    for (size_t i = 0; i < ts->n; i++)
        free(ts->names[i]);
    free(ts->names);
    free(ts->t);
    memset(ts, 0, sizeof *ts);
}

void tu_engine_free(tu_engine *e)
{
    sgdstab_stability_free(e->s);
    sgdstab_reduced_free(e->red);
    sgdstab_problem_free(e->prob);
}

void tu_kron_add(const double *M, size_t p, double w, double *K)
{
    size_t p2 = p * p;
    for (size_t a = 0; a < p; a++)
        for (size_t b = 0; b < p; b++)
            for (size_t c = 0; c < p; c++)
                for (size_t d = 0; d < p; d++)
                    K[(a * p + b) * p2 + c * p + d] +=
                        w * M[a * p + c] * M[b * p + d];
}

double tu_subset_weight(sgdstab_sampling smp, size_t n, size_t B,
                        size_t size)
{
    if (smp == SGDSTAB_SAMPLING_WITHOUT)
        return size == B ? 1.0 : 0.0;
    double q = (double)B / (double)n;
    return pow(q, (double)size) * pow(1 - q, (double)(n - size));
}
