/* The dense symmetric eigen-helper (src/symeig.h) against matrices of known
 * spectrum A = Q·diag(λ)·Qᵀ, Q a random orthogonal matrix: eigenvalues in
 * ascending order, unit eigenvectors in the columns that match Q's up to
 * sign, leading dimensions beyond n, the upper triangle alone read, index
 * ranges, and failures that name the matrix and leave NaN. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "symeig.h"
#include "testutil.h"

enum { N = 7, PAD = 3 };

/* Distinct, both signs, one zero; the smallest gap 0.25 keeps every
 * eigenvector well conditioned (its error about ε‖A‖/gap). */
static const double LAMBDA[N] = {-3, -1.5, -0.25, 0, 0.5, 2, 7};
static const double TOL = 1e-12;

/* A (n×n) copied into rows lda apart, the padding and the strictly lower
 * triangle NaN: the helper must read neither. */
static double *padded(const double *A, size_t lda)
{
    double *B = malloc(N * lda * sizeof *B);
    assert_non_null(B);
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < lda; j++)
            B[i * lda + j] = j >= i && j < N ? A[i * N + j] : NAN;
    return B;
}

/* Column c of V (rows ldv apart) is a unit vector ±(column j of Q). */
static void check_vector(const double *V, size_t ldv, size_t c,
                         const double *Q, size_t j)
{
    double dot = 0, norm = 0;
    for (size_t i = 0; i < N; i++) {
        dot += V[i * ldv + c] * Q[i * N + j];
        norm += V[i * ldv + c] * V[i * ldv + c];
    }
    tu_assert_close(sqrt(norm), 1, TOL, "eigenvector norm");
    tu_assert_close(fabs(dot), 1, 1e-11, "eigenvector against Q");
}

static void test_all(void **state)
{
    (void)state;
    double A[N * N], Q[N * N], w[N];
    tu_spectral_matrix(N, LAMBDA, 11, A, Q);
    const symeig_driver drivers[] = {SYMEIG_DSYEV, SYMEIG_DSYEVD};
    for (size_t d = 0; d < 2; d++)
        for (int vectors = 0; vectors < 2; vectors++)
            for (size_t lda = N; lda <= N + PAD; lda += PAD) {
                double *B = padded(A, lda);
                sgdstab_error err;
                assert_int_equal(symeig_all(drivers[d], N, B, lda, w, vectors,
                                            &err, "A"),
                                 SGDSTAB_OK);
                for (size_t j = 0; j < N; j++) {
                    tu_assert_close(w[j], LAMBDA[j], TOL * 7, "eigenvalue");
                    if (vectors)
                        check_vector(B, lda, j, Q, j);
                }
                for (size_t i = 0; i < N; i++)
                    for (size_t j = N; j < lda; j++)
                        assert_true(isnan(B[i * lda + j]));
                free(B);
            }
}

static void test_range(void **state)
{
    (void)state;
    double A[N * N], Q[N * N];
    tu_spectral_matrix(N, LAMBDA, 12, A, Q);
    const size_t ranges[][2] = {{N - 1, N - 1}, {0, 0}, {2, 4}, {0, N - 1}};
    for (size_t t = 0; t < 4; t++)
        for (int vectors = 0; vectors < 2; vectors++) {
            size_t lo = ranges[t][0], hi = ranges[t][1], count = hi - lo + 1;
            double *B = padded(A, N + PAD), w[N], Z[N * N];
            sgdstab_error err;
            assert_int_equal(symeig_range(N, B, N + PAD, lo, hi, w,
                                          vectors ? Z : NULL, &err, "A"),
                             SGDSTAB_OK);
            for (size_t c = 0; c < count; c++) {
                tu_assert_close(w[c], LAMBDA[lo + c], TOL * 7, "eigenvalue");
                if (vectors)
                    check_vector(Z, count, c, Q, lo + c);
            }
            free(B);
        }
}

/* A NaN in the upper triangle: an error naming the matrix as formatted,
 * the driver, and NaN eigenvalues; err may be NULL. */
static void test_failure(void **state)
{
    (void)state;
    double A[N * N], w[N];
    tu_spectral_matrix(N, LAMBDA, 13, A, NULL);
    A[1 * N + 3] = NAN;
    const symeig_driver drivers[] = {SYMEIG_DSYEV, SYMEIG_DSYEVD};
    const char *names[] = {"dsyev ", "dsyevd "};
    for (size_t d = 0; d < 2; d++) {
        double B[N * N];
        memcpy(B, A, sizeof B);
        sgdstab_error err;
        int st = symeig_all(drivers[d], N, B, N, w, 1, &err, "matrix %d", 42);
        tu_check_failure(st, &err, "matrix 42: ", names[d], NULL);
        for (size_t j = 0; j < N; j++)
            assert_true(isnan(w[j]));
        memcpy(B, A, sizeof B);
        assert_int_not_equal(symeig_all(drivers[d], N, B, N, w, 0, NULL, "B"),
                             SGDSTAB_OK);
    }
    double B[N * N], Z[2 * N];
    memcpy(B, A, sizeof B);
    sgdstab_error err;
    int st = symeig_range(N, B, N, 3, 4, w, Z, &err, "the %s block", "top");
    tu_check_failure(st, &err, "the top block: ", "dsyevr", NULL);
    assert_true(isnan(w[0]) && isnan(w[1]));
    memcpy(B, A, sizeof B);
    assert_int_not_equal(symeig_range(N, B, N, 0, 0, w, NULL, NULL, "B"),
                         SGDSTAB_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all),
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
