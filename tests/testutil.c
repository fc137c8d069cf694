#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int tu_make_tmpdir(char *dir, size_t size, const char *tag)
{
    const char *base = getenv("TMPDIR");
    int len = snprintf(dir, size, "%s/sgdstab-test-%s-XXXXXX",
                       base && *base ? base : "/tmp", tag);
    return len > 0 && (size_t)len < size && mkdtemp(dir) ? 0 : -1;
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
