/* The initial second moment (second_moment.h) on matrices of known spectrum
 * S_0 = Q·diag(λ)·Qᵀ: positive semidefinite ones accepted with L Lᵀ = S_0,
 * negative eigenvalues within the tolerance set to zero as documented, one
 * of −0.5 refused with that number and the file in the message, from memory
 * and from .npy files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sgdstab/npy.h"
#include "sgdstab/second_moment.h"
#include "testutil.h"

enum { P = 5 };

/* max |(L Lᵀ)_ij − want_ij|. */
static double factor_error(const sgdstab_second_moment *s, const double *want)
{
    double e = 0;
    for (size_t i = 0; i < P; i++)
        for (size_t j = 0; j < P; j++) {
            double v = 0;
            for (size_t c = 0; c < P; c++)
                v += s->L[i * P + c] * s->L[j * P + c];
            e = fmax(e, fabs(v - want[i * P + j]));
        }
    return e;
}

/* Singular and PSD: kept as given, L Lᵀ = S_0. */
static void test_psd(void **state)
{
    (void)state;
    const double lambda[P] = {0, 1e-3, 0.5, 2, 3};
    double S[P * P];
    tu_spectral_matrix(P, lambda, 21, S, NULL);
    sgdstab_second_moment *s;
    sgdstab_error err;
    assert_int_equal(sgdstab_second_moment_from_matrix(S, P, NULL, &s, &err),
                     SGDSTAB_OK);
    assert_int_equal(s->p, P);
    assert_memory_equal(s->S, S, sizeof S);
    tu_assert_close(factor_error(s, S), 0, 1e-12, "L L^T against S_0");
    sgdstab_second_moment_free(s);
}

/* −1e-13·max|λ| is within the tolerance: accepted, and the factor is that
 * of S_0 with the eigenvalue set to zero. */
static void test_within_tolerance(void **state)
{
    (void)state;
    const double lambda[P] = {-3e-13, 0.25, 1, 2, 3};
    const double clipped[P] = {0, 0.25, 1, 2, 3};
    double S[P * P], S0[P * P];
    tu_spectral_matrix(P, lambda, 22, S, NULL);
    tu_spectral_matrix(P, clipped, 22, S0, NULL);
    sgdstab_second_moment *s;
    sgdstab_error err;
    assert_int_equal(sgdstab_second_moment_from_matrix(S, P, "S.npy", &s,
                                                       &err),
                     SGDSTAB_OK);
    tu_assert_close(factor_error(s, S0), 0, 1e-12, "L L^T, eigenvalue zeroed");
    sgdstab_second_moment_free(s);
}

static void test_not_psd(void **state)
{
    (void)state;
    const double lambda[P] = {-0.5, 0.25, 1, 2, 3};
    double S[P * P];
    tu_spectral_matrix(P, lambda, 23, S, NULL);
    sgdstab_second_moment *s;
    tu_dirty(&s, sizeof s);
    sgdstab_error err;
    int st = sgdstab_second_moment_from_matrix(S, P, "mine", &s, &err);
    assert_int_equal(st, SGDSTAB_EVALUE);
    tu_check_failure(st, &err, "mine: S_0 is not positive semidefinite",
                     "smallest eigenvalue -0.5,", NULL);
    assert_null(s);
    st = sgdstab_second_moment_from_matrix(S, P, NULL, &s, &err);
    tu_check_failure(st, &err, "S_0 is not positive semidefinite", NULL);
    assert_int_equal(strncmp(err.msg, "S_0", 3), 0);
}

/* Only the upper triangle is read; a non-finite entry there is refused. */
static void test_triangle(void **state)
{
    (void)state;
    const double lambda[P] = {0.5, 0.75, 1, 2, 3};
    double S[P * P], U[P * P];
    tu_spectral_matrix(P, lambda, 24, S, NULL);
    memcpy(U, S, sizeof S);
    U[3 * P + 1] = NAN;
    sgdstab_second_moment *s;
    sgdstab_error err;
    assert_int_equal(sgdstab_second_moment_from_matrix(U, P, NULL, &s, &err),
                     SGDSTAB_OK);
    assert_memory_equal(s->S, S, sizeof S);
    sgdstab_second_moment_free(s);
    U[1 * P + 3] = INFINITY;
    int st = sgdstab_second_moment_from_matrix(U, P, "U", &s, &err);
    assert_int_equal(st, SGDSTAB_EVALUE);
    tu_check_failure(st, &err, "U: S_0 has a non-finite entry at (1, 3)",
                     NULL);
    st = sgdstab_second_moment_from_matrix(U, 0, NULL, &s, &err);
    assert_int_equal(st, SGDSTAB_EINVAL);
}

/* S written as a (P, P) .npy file; its path. */
static const char *save(const char *name, double *S)
{
    static char path[512];
    tu_tmp_path(path, sizeof path, name);
    sgdstab_array a = {.ndim = 2, .shape = {P, P, 1}, .size = P * P,
                       .data = S, .descr = "<f8"};
    sgdstab_error err;
    assert_int_equal(sgdstab_npy_write(path, &a, &err), SGDSTAB_OK);
    return path;
}

static void test_load(void **state)
{
    (void)state;
    const double good[P] = {0, 0.1, 1, 2, 3}, bad[P] = {-0.5, 0.1, 1, 2, 3};
    double S[P * P];
    tu_spectral_matrix(P, good, 25, S, NULL);
    sgdstab_second_moment *s;
    sgdstab_error err;
    const char *path = save("good.npy", S);
    assert_int_equal(sgdstab_second_moment_load(path, P, &s, &err),
                     SGDSTAB_OK);
    tu_assert_close(factor_error(s, S), 0, 1e-12, "L L^T against S_0");
    sgdstab_second_moment_free(s);
    int st = sgdstab_second_moment_load(path, P + 1, &s, &err);
    assert_int_equal(st, SGDSTAB_ESHAPE);
    tu_check_failure(st, &err, path, NULL);
    assert_null(s);

    tu_spectral_matrix(P, bad, 26, S, NULL);
    path = save("bad.npy", S);
    st = sgdstab_second_moment_load(path, P, &s, &err);
    assert_int_equal(st, SGDSTAB_EVALUE);
    tu_check_failure(st, &err, "not positive semidefinite", "-0.5", NULL);
    assert_int_equal(strncmp(err.msg, path, strlen(path)), 0);
    assert_null(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_psd),
        cmocka_unit_test(test_within_tolerance),
        cmocka_unit_test(test_not_psd),
        cmocka_unit_test(test_triangle),
        cmocka_unit_test(test_load),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
