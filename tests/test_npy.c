/* Tests of the .npy/.npz module (include/sgdstab/npy.h).
 *
 * Expected contents come from the fixture manifest written by NumPy and from
 * the value formula, which this file recomputes on its own (tu_formula). */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sgdstab/npy.h"

/* ------------------------------------------------------------ helpers */

static size_t shape_from_json(const cJSON *shape, size_t dims[3])
{
    size_t nd = 0;
    const cJSON *d;
    assert_true(cJSON_IsArray(shape));
    cJSON_ArrayForEach(d, shape) {
        assert_true(nd < 3);
        dims[nd++] = (size_t)d->valuedouble;
    }
    for (size_t i = nd; i < 3; i++)
        dims[i] = 1;
    return nd;
}

/* The descr a reader reports for a header whose descr is stored: "as
 * stored"; for the byte-order-free '|f8' and native '=f8' accept the
 * explicit little-endian spelling too (this test runs little-endian). */
static void check_descr(const char *got, const char *stored)
{
    if (!strcmp(got, stored))
        return;
    if ((stored[0] == '|' || stored[0] == '=') && got[0] == '<' &&
        !strcmp(got + 1, stored + 1))
        return;
    fail_msg("descr '%s', expected '%s'", got, stored);
}

/* a must be a formula array of the given shape, in C order. */
static void check_formula_array(const sgdstab_array *a, size_t nd,
                                const size_t dims[3], const char *descr,
                                const char *what)
{
    assert_non_null(a->data);
    if ((size_t)a->ndim != nd)
        fail_msg("%s: ndim %d, expected %zu", what, a->ndim, nd);
    size_t size = 1;
    for (size_t i = 0; i < 3; i++) {
        if (a->shape[i] != dims[i])
            fail_msg("%s: shape[%zu] = %zu, expected %zu", what, i,
                     a->shape[i], dims[i]);
        size *= dims[i];
    }
    assert_int_equal(a->size, size);
    if (descr)
        check_descr(a->descr, descr);
    for (size_t f = 0; f < size; f++)
        if (a->data[f] != tu_formula(f))
            fail_msg("%s: data[%zu] = %.17g, expected %.17g", what, f,
                     a->data[f], tu_formula(f));
}

static void check_symformula_array(const sgdstab_array *a, size_t p,
                                   const char *descr, const char *what)
{
    assert_non_null(a->data);
    assert_int_equal(a->ndim, 2);
    assert_int_equal(a->shape[0], p);
    assert_int_equal(a->shape[1], p);
    assert_int_equal(a->size, p * p);
    if (descr)
        check_descr(a->descr, descr);
    for (size_t i = 0; i < p; i++)
        for (size_t j = 0; j < p; j++)
            if (a->data[i * p + j] != tu_symformula(p, i, j))
                fail_msg("%s: H[%zu][%zu] = %.17g, expected %.17g", what, i,
                         j, a->data[i * p + j], tu_symformula(p, i, j));
}

/* ------------------------------------------------- valid .npy fixtures */

static void test_valid_npy(void **state)
{
    const cJSON *e = *state;
    const char *name = tu_jstr(e, "file");
    const char *descr = tu_jstr(e, "descr");
    size_t dims[3];
    size_t nd = shape_from_json(tu_jget(e, "shape"), dims);
    sgdstab_error err;
    sgdstab_array a;

    /* From the file. */
    tu_dirty(&a, sizeof a);
    int rc = sgdstab_npy_read(tu_path(name), &a, &err);
    if (rc != SGDSTAB_OK)
        fail_msg("%s: status %d: %s", name, rc, err.msg);
    check_formula_array(&a, nd, dims, descr, name);
    sgdstab_array_free(&a);
    assert_null(a.data);

    /* From memory; the buffer is released before the values are checked,
     * so the array must own a copy. */
    size_t len;
    unsigned char *buf = tu_slurp(tu_path(name), &len);
    tu_dirty(&a, sizeof a);
    rc = sgdstab_npy_read_buffer(buf, len, "in-memory copy", &a, &err);
    memset(buf, 0xFF, len);
    free(buf);
    if (rc != SGDSTAB_OK)
        fail_msg("%s (buffer): status %d: %s", name, rc, err.msg);
    check_formula_array(&a, nd, dims, descr, name);
    sgdstab_array_free(&a);
}

/* ------------------------------------------------- valid .npz fixtures */

static void check_npz_contents(sgdstab_npz *z, const cJSON *e,
                               const char *label)
{
    const cJSON *Je = tu_jget(e, "J");
    const cJSON *He = tu_jget(e, "H");
    sgdstab_error err;
    sgdstab_array a;
    size_t dims[3];

    assert_true(sgdstab_npz_has(z, "J"));
    assert_int_equal(!!sgdstab_npz_has(z, "H"), !cJSON_IsNull(He));
    assert_false(sgdstab_npz_has(z, "K"));
    assert_false(sgdstab_npz_has(z, "j"));
    assert_false(sgdstab_npz_has(z, ""));

    size_t nd = shape_from_json(tu_jget(Je, "shape"), dims);
    for (int twice = 0; twice < 2; twice++) {  /* a handle reads again */
        tu_dirty(&a, sizeof a);
        int rc = sgdstab_npz_read(z, "J", &a, &err);
        if (rc != SGDSTAB_OK)
            fail_msg("%s: J: status %d: %s", label, rc, err.msg);
        check_formula_array(&a, nd, dims, tu_jstr(Je, "descr"), label);
        sgdstab_array_free(&a);
    }
    if (!cJSON_IsNull(He)) {
        nd = shape_from_json(tu_jget(He, "shape"), dims);
        assert_int_equal(nd, 2);
        tu_dirty(&a, sizeof a);
        int rc = sgdstab_npz_read(z, "H", &a, &err);
        if (rc != SGDSTAB_OK)
            fail_msg("%s: H: status %d: %s", label, rc, err.msg);
        check_symformula_array(&a, dims[0], tu_jstr(He, "descr"), label);
        sgdstab_array_free(&a);
    }

    /* A missing member: EFORMAT naming the archive and the array. */
    tu_dirty(&a, sizeof a);
    int rc = sgdstab_npz_read(z, "nosucharray", &a, &err);
    tu_check_failure(rc, &err, label, "nosucharray", NULL);
    assert_int_equal(rc, SGDSTAB_EFORMAT);
    assert_null(a.data);
}

static void test_valid_npz(void **state)
{
    const cJSON *e = *state;
    const char *name = tu_jstr(e, "file");
    sgdstab_error err;

    sgdstab_npz *z = sgdstab_npz_open(tu_path(name), &err);
    if (!z)
        fail_msg("%s: %s", name, err.msg);
    check_npz_contents(z, e, name);
    sgdstab_npz_close(z);

    size_t len;
    unsigned char *buf = tu_slurp(tu_path(name), &len);
    z = sgdstab_npz_open_buffer(buf, len, "npz-in-memory", &err);
    if (!z) {
        free(buf);
        fail_msg("%s (buffer): %s", name, err.msg);
    }
    check_npz_contents(z, e, "npz-in-memory");
    sgdstab_npz_close(z);
    free(buf);
}

/* ---------------------------------------------------- malformed inputs */

/* One test per malformed fixture, at the level the manifest names.  The
 * wording ("cli_any") is checked where the manifest promises it: for
 * sgdstab_problem_load (test_problem.c) and the CLI (test_cli.sh). */
static void test_bad_npy_level(const cJSON *e, const char *name)
{
    int want = tu_status_code(tu_jget(e, "status"));
    sgdstab_error err;
    sgdstab_array a;

    tu_dirty(&a, sizeof a);
    int rc = sgdstab_npy_read(tu_path(name), &a, &err);
    tu_check_failure(rc, &err, name, NULL);
    assert_null(a.data);
    if (want >= 0 && rc != want)
        fail_msg("%s: status %d (%s), expected %d (%s): %s", name, rc,
                 sgdstab_strstatus(rc), want, sgdstab_strstatus(want),
                 err.msg);

    size_t len;
    unsigned char *buf = tu_slurp(tu_path(name), &len);
    char label[256];
    snprintf(label, sizeof label, "label<%s>", name);
    tu_dirty(&a, sizeof a);
    rc = sgdstab_npy_read_buffer(buf, len, label, &a, &err);
    free(buf);
    tu_check_failure(rc, &err, label, NULL);
    assert_null(a.data);
    if (want >= 0)
        assert_int_equal(rc, want);
}

static void check_bad_npz(sgdstab_npz *z, const sgdstab_error *openerr,
                          const cJSON *e, const char *label)
{
    int want = tu_status_code(tu_jget(e, "status"));
    sgdstab_error err;
    int rc;
    if (!z) {
        rc = openerr->status;
        err = *openerr;
        tu_check_failure(rc, &err, label, NULL);
    } else {
        if (!strcmp(tu_jstr(e, "file"), "no_J.npz")) {
            assert_false(sgdstab_npz_has(z, "J"));
            assert_true(sgdstab_npz_has(z, "H"));
        }
        sgdstab_array a;
        tu_dirty(&a, sizeof a);
        rc = sgdstab_npz_read(z, "J", &a, &err);
        sgdstab_npz_close(z);
        tu_check_failure(rc, &err, label, NULL);
        assert_null(a.data);
    }
    if (want >= 0 && rc != want)
        fail_msg("%s: status %d (%s), expected %d (%s): %s", label, rc,
                 sgdstab_strstatus(rc), want, sgdstab_strstatus(want),
                 err.msg);
}

static void test_bad_npz_level(const cJSON *e, const char *name)
{
    sgdstab_error err;
    sgdstab_npz *z = sgdstab_npz_open(tu_path(name), &err);
    check_bad_npz(z, &err, e, name);

    size_t len;
    unsigned char *buf = tu_slurp(tu_path(name), &len);
    z = sgdstab_npz_open_buffer(buf, len, "zip-label", &err);
    check_bad_npz(z, &err, e, "zip-label");
    free(buf);
}

/* Problem-level cases are well-formed files: reading them must work (the
 * failure belongs to validation, see test_problem.c). */
static void test_bad_problem_level(const char *name)
{
    sgdstab_error err;
    sgdstab_array a;
    size_t len;
    unsigned char *buf = tu_slurp(tu_path(name), &len);
    int is_zip = len >= 2 && buf[0] == 'P' && buf[1] == 'K';
    free(buf);
    if (!is_zip) {
        tu_dirty(&a, sizeof a);
        int rc = sgdstab_npy_read(tu_path(name), &a, &err);
        if (rc != SGDSTAB_OK)
            fail_msg("%s: a well-formed .npy must read: %s", name, err.msg);
        sgdstab_array_free(&a);
        return;
    }
    sgdstab_npz *z = sgdstab_npz_open(tu_path(name), &err);
    if (!z)
        fail_msg("%s: %s", name, err.msg);
    const char *names[] = {"J", "H"};
    for (int i = 0; i < 2; i++) {
        if (!sgdstab_npz_has(z, names[i]))
            continue;
        tu_dirty(&a, sizeof a);
        int rc = sgdstab_npz_read(z, names[i], &a, &err);
        if (rc != SGDSTAB_OK) {
            sgdstab_npz_close(z);
            fail_msg("%s: member %s must read: %s", name, names[i], err.msg);
        }
        sgdstab_array_free(&a);
    }
    sgdstab_npz_close(z);
}

static void test_bad(void **state)
{
    const cJSON *e = *state;
    const char *name = tu_jstr(e, "file");
    const char *level = tu_jstr(e, "level");
    if (!strcmp(level, "npy"))
        test_bad_npy_level(e, name);
    else if (!strcmp(level, "npz"))
        test_bad_npz_level(e, name);
    else if (!strcmp(level, "problem"))
        test_bad_problem_level(name);
    /* "any": only checked by test_problem and the CLI test */
}

/* The manifest must keep every case this suite promises to test. */
static void test_manifest_has_cases(void **state)
{
    (void)state;
    static const char *required[] = {
        "bad_magic.npy", "trunc_header.npy", "trunc_data.npy",
        "huge_shape.npy", "overflow_shape.npy", "dtype_i4.npy",
        "dtype_c16.npy", "dtype_struct.npy", "nonfinite_J.npy",
        "nonfinite_H.npz", "asym_H.npz", "shape_mismatch.npz", "no_J.npz",
        "five_d.npy", "zero_d.npy", "header_unknown_key.npy",
        "header_dup_key.npy", "header_too_long.npy", "corrupt_zip.npz",
        "empty.npy"};
    const cJSON *bad = tu_list("bad");
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        int found = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, bad) {
            if (!strcmp(tu_jstr(e, "file"), required[i]))
                found = 1;
        }
        if (!found)
            fail_msg("manifest lacks malformed case %s", required[i]);
    }
    /* Coverage of the valid set: 3 versions x 5 dtypes x C/F x 1-3 dims. */
    assert_true(cJSON_GetArraySize(tu_list("npy")) >= 75);
    assert_true(cJSON_GetArraySize(tu_list("npz")) >= 4);
}

static void test_missing_file(void **state)
{
    (void)state;
    sgdstab_error err;
    sgdstab_array a;
    const char *path = tu_path("does_not_exist.npy");
    tu_dirty(&a, sizeof a);
    int rc = sgdstab_npy_read(path, &a, &err);
    tu_check_failure(rc, &err, "does_not_exist.npy", NULL);
    assert_int_equal(rc, SGDSTAB_EIO);
    assert_null(a.data);

    sgdstab_npz *z = sgdstab_npz_open(tu_path("does_not_exist.npz"), &err);
    if (z) {
        sgdstab_npz_close(z);
        fail_msg("a missing file was opened as a .npz archive");
    }
    tu_check_failure(err.status, &err, "does_not_exist.npz", NULL);
    if (err.status != SGDSTAB_EIO)
        fail_msg("sgdstab_npz_open of a missing file: status %d (%s), "
                 "expected SGDSTAB_EIO: %s", err.status,
                 sgdstab_strstatus(err.status), err.msg);
}

/* A .npy is not an archive and an archive is not a .npy. */
static void test_kind_mismatch(void **state)
{
    (void)state;
    sgdstab_error err;
    sgdstab_array a;
    sgdstab_npz *z = sgdstab_npz_open(tu_path("save_default.npy"), &err);
    if (z) {
        sgdstab_npz_close(z);
        fail_msg("a .npy file opened as an archive");
    }
    tu_check_failure(err.status, &err, "save_default.npy", NULL);

    tu_dirty(&a, sizeof a);
    int rc = sgdstab_npy_read(tu_path("npz_stored.npz"), &a, &err);
    tu_check_failure(rc, &err, "npz_stored.npz", NULL);
    assert_null(a.data);
}

/* A zero-length buffer, with and without a pointer. */
static void test_empty_buffer(void **state)
{
    (void)state;
    static const unsigned char nothing[1] = {0};
    sgdstab_error err;
    sgdstab_array a;
    tu_dirty(&a, sizeof a);
    int rc = sgdstab_npy_read_buffer(nothing, 0, "nothing", &a, &err);
    tu_check_failure(rc, &err, "nothing", NULL);
    assert_null(a.data);
    sgdstab_npz *z = sgdstab_npz_open_buffer(nothing, 0, "nothing.npz", &err);
    if (z) {
        sgdstab_npz_close(z);
        fail_msg("a zero-length buffer was opened as a .npz archive");
    }
    tu_check_failure(err.status, &err, "nothing.npz", NULL);
}

/* Every proper prefix of a valid file is rejected, never read past. */
static void test_every_truncation(void **state)
{
    (void)state;
    const char *names[] = {"v1_lef4_F_3d.npy", "v2_bef8_C_2d.npy",
                           "v3_lef2_F_2d.npy"};
    for (size_t k = 0; k < 3; k++) {
        size_t len;
        unsigned char *buf = tu_slurp(tu_path(names[k]), &len);
        for (size_t cut = 0; cut < len; cut++) {
            /* an exact-size heap copy, so ASan sees any overread */
            unsigned char *part = malloc(cut ? cut : 1);
            assert_non_null(part);
            memcpy(part, buf, cut);
            sgdstab_error err;
            sgdstab_array a;
            tu_dirty(&a, sizeof a);
            int rc = sgdstab_npy_read_buffer(part, cut, "prefix", &a, &err);
            free(part);
            if (rc == SGDSTAB_OK) {
                sgdstab_array_free(&a);
                free(buf);
                fail_msg("%s cut to %zu of %zu bytes was accepted", names[k],
                         cut, len);
            }
            assert_null(a.data);
            tu_check_failure(rc, &err, "prefix", NULL);
        }
        free(buf);
    }
}

/* ---------------------------------------------------------- small API */

static void test_itemsize_epsilon(void **state)
{
    (void)state;
    static const struct {
        const char *descr;
        size_t itemsize;  /* 0: not a dtype the module reads */
    } sizes[] = {{"<f8", 8},  {">f8", 8},  {"<f4", 4}, {">f4", 4},
                 {"<f2", 2},  {">f2", 2},  {"<i4", 0}, {"<i8", 0},
                 {"<c16", 0}, {"<f16", 0}, {"<u2", 0}, {"", 0},
                 {"<f8junk", 0}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t got = sgdstab_npy_itemsize(sizes[i].descr);
        if (got != sizes[i].itemsize)
            fail_msg("sgdstab_npy_itemsize(\"%s\") = %zu, expected %zu",
                     sizes[i].descr, got, sizes[i].itemsize);
    }

    /* The epsilons by <float.h>, then NumPy's own values (manifest). */
    const struct {
        const char *descr;
        double eps;
    } eps[] = {{"<f8", DBL_EPSILON},         {">f8", DBL_EPSILON},
               {"<f4", (double)FLT_EPSILON}, {">f4", (double)FLT_EPSILON},
               {"<f2", ldexp(1.0, -10)}};
    for (size_t i = 0; i < sizeof eps / sizeof eps[0]; i++) {
        double got = sgdstab_npy_epsilon(eps[i].descr);
        if (got != eps[i].eps)
            fail_msg("sgdstab_npy_epsilon(\"%s\") = %.17g, expected %.17g",
                     eps[i].descr, got, eps[i].eps);
    }
    const cJSON *numpy = tu_jget(tu_manifest(), "eps");
    static const char *const numpy_eps[][2] = {
        {"<f8", "f8"}, {"<f4", "f4"}, {"<f2", "f2"}};  /* dtype, manifest key */
    for (size_t i = 0; i < 3; i++) {
        double got = sgdstab_npy_epsilon(numpy_eps[i][0]),
               want = tu_jnum(numpy, numpy_eps[i][1]);
        if (got != want)
            fail_msg("sgdstab_npy_epsilon(\"%s\") = %.17g, NumPy has %.17g",
                     numpy_eps[i][0], got, want);
    }
}

static void test_array_free(void **state)
{
    (void)state;
    sgdstab_array_free(NULL);
    sgdstab_array a;
    sgdstab_error err;
    tu_dirty(&a, sizeof a);
    assert_int_equal(sgdstab_npy_read(tu_path("save_default.npy"), &a, &err),
                     SGDSTAB_OK);
    sgdstab_array_free(&a);
    assert_null(a.data);
    sgdstab_array_free(&a);  /* empty again: harmless */
    assert_null(a.data);
}

/* ------------------------------------------------------------ writing */

static double le_double(const unsigned char *b)
{
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--)
        u = u << 8 | b[i];
    double x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* Ask NumPy whether the file is what it expects: shape, '<f8', C order,
 * values of the formula. */
static void numpy_check(const char *path, const char *shape_tuple)
{
    const char *py = getenv("SGDSTAB_PYTHON");
    if (!py || !*py) {
        print_message("SGDSTAB_PYTHON not set: NumPy cross-check skipped\n");
        return;
    }
    char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "'%s' -c '\n"
             "import sys, numpy as np\n"
             "p = sys.argv[1]\n"
             "with open(p, \"rb\") as f:\n"
             "    assert np.lib.format.read_magic(f) == (1, 0)\n"
             "    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)\n"
             "assert shape == %s, shape\n"
             "assert not fortran\n"
             "assert dtype == np.dtype(\"<f8\") and dtype.str == \"<f8\"\n"
             "a = np.load(p, allow_pickle=False)\n"
             "f = np.arange(a.size)\n"
             "want = (((37 * f) %% 101) / 8.0 - 6.0).reshape(shape)\n"
             "assert np.array_equal(a, want)\n"
             "' '%s'",
             py, shape_tuple, path);
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("NumPy rejected %s (status %d)", path, rc);
}

static void roundtrip(int nd, size_t s0, size_t s1, size_t s2,
                      const char *shape_tuple)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/out%d.npy", tu_tmpdir(), nd);
    sgdstab_array a, b;
    sgdstab_error err;
    a = tu_array(nd, s0, s1, s2, "<f8", NULL);
    int rc = sgdstab_npy_write(path, &a, &err);
    if (rc != SGDSTAB_OK)
        fail_msg("write %s: %s", path, err.msg);

    /* Header bytes, as NumPy writes them. */
    size_t len;
    unsigned char *buf = tu_slurp(path, &len);
    assert_true(len >= 10);
    assert_memory_equal(buf, "\x93NUMPY\x01\x00", 8);
    size_t hlen = buf[8] | (size_t)buf[9] << 8;
    assert_int_equal((10 + hlen) % 64, 0);
    assert_int_equal(len, 10 + hlen + 8 * a.size);
    assert_int_equal(buf[10 + hlen - 1], '\n');
    char header[65536];
    memcpy(header, buf + 10, hlen);
    header[hlen] = 0;
    assert_non_null(strstr(header, "'descr': '<f8'"));
    assert_non_null(strstr(header, "'fortran_order': False"));
    assert_non_null(strstr(header, "'shape': "));
    assert_true(header[0] == '{');
    /* Data: little-endian float64, C order. */
    for (size_t f = 0; f < a.size; f++)
        if (le_double(buf + 10 + hlen + 8 * f) != tu_formula(f))
            fail_msg("written value %zu is %.17g", f,
                     le_double(buf + 10 + hlen + 8 * f));
    free(buf);

    /* Our own reader gets the array back. */
    tu_dirty(&b, sizeof b);
    rc = sgdstab_npy_read(path, &b, &err);
    if (rc != SGDSTAB_OK)
        fail_msg("read back %s: %s", path, err.msg);
    size_t dims[3] = {s0, s1, s2};
    check_formula_array(&b, (size_t)nd, dims, "<f8", "round trip");
    sgdstab_array_free(&b);
    sgdstab_array_free(&a);

    numpy_check(path, shape_tuple);

    /* Written atomically: nothing but the file is left in the directory. */
    int found;
    char want[64];
    snprintf(want, sizeof want, "out%d.npy", nd);
    size_t n = tu_dir_entries(tu_tmpdir(), want, &found);
    assert_true(found);
    assert_int_equal(n, 1);
    unlink(path);
}

static void test_write_1d(void **state)
{
    (void)state;
    roundtrip(1, 7, 1, 1, "(7,)");
}

static void test_write_2d(void **state)
{
    (void)state;
    roundtrip(2, 5, 3, 1, "(5, 3)");
}

static void test_write_3d(void **state)
{
    (void)state;
    roundtrip(3, 4, 2, 3, "(4, 2, 3)");
}

/* Overwriting an existing file replaces it; every double survives bit for
 * bit (signed zero, subnormals, extremes). */
static void test_write_overwrite_bits(void **state)
{
    (void)state;
    char path[8192];
    tu_tmp_path(path, sizeof path, "bits.npy");
    sgdstab_array a, b;
    sgdstab_error err;
    a = tu_array(2, 4, 3, 1, "<f8", NULL);
    assert_int_equal(sgdstab_npy_write(path, &a, &err), SGDSTAB_OK);
    sgdstab_array_free(&a);

    const double vals[] = {-0.0, 0.0, 4.9406564584124654e-324, -DBL_MIN,
                           DBL_MAX, -DBL_MAX, 1.0 / 3.0, -2.5e-300,
                           0x1.fffffffffffffp-1, 1e308, 3.0, -7.0};
    a = tu_array(3, 2, 3, 2, "<f8", NULL);
    memcpy(a.data, vals, sizeof vals);
    assert_int_equal(sgdstab_npy_write(path, &a, &err), SGDSTAB_OK);
    tu_dirty(&b, sizeof b);
    assert_int_equal(sgdstab_npy_read(path, &b, &err), SGDSTAB_OK);
    assert_int_equal(b.ndim, 3);
    assert_int_equal(b.shape[0], 2);
    assert_int_equal(b.shape[1], 3);
    assert_int_equal(b.shape[2], 2);
    assert_int_equal(b.size, 12);
    assert_memory_equal(b.data, vals, sizeof vals);
    sgdstab_array_free(&a);
    sgdstab_array_free(&b);
    int found;
    assert_int_equal(tu_dir_entries(tu_tmpdir(), "bits.npy", &found), 1);
    assert_true(found);
    unlink(path);
}

static void test_write_failures(void **state)
{
    (void)state;
    char path[8192];
    sgdstab_array a;
    sgdstab_error err;
    a = tu_array(2, 5, 3, 1, "<f8", NULL);

    /* A directory that does not exist. */
    tu_tmp_path(path, sizeof path, "no/such/dir/x.npy");
    int rc = sgdstab_npy_write(path, &a, &err);
    tu_check_failure(rc, &err, "x.npy", NULL);
    assert_int_equal(rc, SGDSTAB_EIO);

    /* Arrays the format cannot hold: 0 or 5 dimensions. */
    tu_tmp_path(path, sizeof path, "bad.npy");
    a.ndim = 0;
    rc = sgdstab_npy_write(path, &a, &err);
    tu_check_failure(rc, &err, NULL);
    a.ndim = SGDSTAB_NPY_MAX_DIMS + 1;
    rc = sgdstab_npy_write(path, &a, &err);
    tu_check_failure(rc, &err, NULL);
    a.ndim = 2;
    sgdstab_array_free(&a);

    int found;
    assert_int_equal(tu_dir_entries(tu_tmpdir(), NULL, &found), 0);
}

/* ------------------------------------------------------------- main */

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_manifest_has_cases),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_kind_mismatch),
        cmocka_unit_test(test_empty_buffer),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_itemsize_epsilon),
        cmocka_unit_test(test_array_free),
    };
    static const struct CMUnitTest writing[] = {
        cmocka_unit_test(test_write_1d),
        cmocka_unit_test(test_write_2d),
        cmocka_unit_test(test_write_3d),
        cmocka_unit_test(test_write_overwrite_bits),
        cmocka_unit_test(test_write_failures),
    };
    int failed = cmocka_run_group_tests_name("npy basics", fixed, NULL, NULL);
    failed += cmocka_run_group_tests_name("npy write", writing,
                                          tu_tmpdir_setup, tu_tmpdir_teardown);

    tu_tests valid = {0}, bad = {0};
    const cJSON *e;
    char name[512];
    cJSON_ArrayForEach(e, tu_list("npy")) {
        snprintf(name, sizeof name, "npy_read %s",
                 cJSON_GetObjectItem(e, "file")->valuestring);
        tu_add(&valid, name, test_valid_npy, (void *)e);
    }
    cJSON_ArrayForEach(e, tu_list("npz")) {
        snprintf(name, sizeof name, "npz_read %s",
                 cJSON_GetObjectItem(e, "file")->valuestring);
        tu_add(&valid, name, test_valid_npz, (void *)e);
    }
    cJSON_ArrayForEach(e, tu_list("bad")) {
        snprintf(name, sizeof name, "malformed %s (%s level)",
                 cJSON_GetObjectItem(e, "file")->valuestring,
                 cJSON_GetObjectItem(e, "level")->valuestring);
        tu_add(&bad, name, test_bad, (void *)e);
    }
    failed += tu_run("npy valid fixtures", valid.t, valid.n);
    failed += tu_run("npy malformed fixtures", bad.t, bad.n);
    tu_tests_free(&valid);
    tu_tests_free(&bad);
    tu_cleanup();
    return failed ? 1 : 0;
}
