/* Weighted least-squares lines through (x, ln y) (fit.h) against closed
 * forms: exact exponentials and power laws, a textbook regression worked by
 * hand, integer weights as repeated points, and the points left out. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>

#include "sgdstab/fit.h"

static void assert_close(double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol * fmax(1, fabs(want))))
        fail_msg("got %.17g, want %.17g", got, want);
}

/* y = 3·t^(−1.7) on log-spaced t: the fit in x = ln t is exact. */
static void test_power_law_exact(void **state)
{
    (void)state;
    double x[6], y[6];
    for (int i = 0; i < 6; i++) {
        x[i] = log(pow(10, 0.5 * i));
        y[i] = 3 * exp(-1.7 * x[i]);
    }
    sgdstab_line_fit fit;
    sgdstab_fit_log_line(x, y, NULL, 6, &fit);
    assert_int_equal(fit.points, 6);
    assert_close(fit.slope, -1.7, 1e-13);
    assert_close(sgdstab_fit_log_at(&fit, 0), log(3), 1e-13);
    assert_true(fit.chi2_per_dof < 1e-26);
}

/* x = 1..5, ln y = 2 4 5 4 5: slope 0.6, intercept 2.2, residual sum of
 * squares 2.4 over 3 degrees of freedom, Σ(x − x̄)² = 10. */
static void test_textbook_regression(void **state)
{
    (void)state;
    double x[] = {1, 2, 3, 4, 5}, ly[] = {2, 4, 5, 4, 5}, y[5];
    for (int i = 0; i < 5; i++)
        y[i] = exp(ly[i]);
    sgdstab_line_fit fit;
    sgdstab_fit_log_line(x, y, NULL, 5, &fit);
    assert_close(fit.slope, 0.6, 1e-14);
    assert_close(sgdstab_fit_log_at(&fit, 0), 2.2, 1e-14);
    assert_close(fit.chi2_per_dof, 0.8, 1e-14);
    assert_close(fit.slope_stderr, 1 / sqrt(10.0), 1e-14);
    assert_close(fit.x_mean, 3, 1e-15);
    assert_close(fit.y_mean, 4, 1e-15);
    /* x NULL: the points at 0..4, the same slope one step to the left */
    sgdstab_fit_log_line(NULL, y, NULL, 5, &fit);
    assert_close(fit.slope, 0.6, 1e-14);
    assert_close(sgdstab_fit_log_at(&fit, 0), 2.8, 1e-14);
}

/* Weights 2, 1, 1 at (0, 0), (1, 1), (2, 3) are the points (0, 0) twice,
 * (1, 1), (2, 3): x̄ = 3/4, ȳ = 1, Σw(x − x̄)² = 11/4, slope 16/11. */
static void test_weights_repeat_points(void **state)
{
    (void)state;
    double x[] = {0, 1, 2}, y[] = {1, exp(1), exp(3)}, w[] = {2, 1, 1};
    double xr[] = {0, 0, 1, 2}, yr[] = {1, 1, exp(1), exp(3)};
    sgdstab_line_fit fit, rep;
    sgdstab_fit_log_line(x, y, w, 3, &fit);
    sgdstab_fit_log_line(xr, yr, NULL, 4, &rep);
    assert_int_equal(fit.points, 3);
    assert_close(fit.slope, 16.0 / 11, 1e-14);
    assert_close(fit.slope_stderr, 1 / sqrt(11.0 / 4), 1e-14);
    assert_close(fit.x_mean, 0.75, 1e-15);
    assert_close(fit.y_mean, 1, 1e-15);
    assert_close(rep.slope, fit.slope, 1e-14);
    /* the residual sum is the same; repeating adds a degree of freedom */
    assert_close(rep.chi2_per_dof * 2, fit.chi2_per_dof * 1, 1e-13);
}

/* A weight of 0 leaves a point out, even one without a logarithm; a used
 * point without one, fewer than two points or a single x give NaN. */
static void test_left_out_and_undefined(void **state)
{
    (void)state;
    double x[] = {1, 2, 3, 4}, y[] = {exp(1), 0, exp(3), exp(4)};
    double w[] = {1, 0, 1, 1};
    sgdstab_line_fit fit;
    sgdstab_fit_log_line(x, y, w, 4, &fit);
    assert_int_equal(fit.points, 3);
    assert_close(fit.slope, 1, 1e-14);
    sgdstab_fit_log_line(x, y, NULL, 4, &fit);
    assert_true(isnan(fit.slope));
    double one[] = {0, 0, 1, 0};
    sgdstab_fit_log_line(x, y, one, 4, &fit);
    assert_int_equal(fit.points, 1);
    assert_true(isnan(fit.slope) && isnan(fit.slope_stderr));
    double same[] = {2, 2, 2};
    sgdstab_fit_log_line(same, y + 2, NULL, 2, &fit);
    assert_true(isnan(fit.slope));
    sgdstab_fit_log_line(x, y + 2, NULL, 2, &fit);
    assert_close(fit.slope, 1, 1e-14);
    assert_true(isnan(fit.chi2_per_dof));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_power_law_exact),
        cmocka_unit_test(test_textbook_regression),
        cmocka_unit_test(test_weights_repeat_points),
        cmocka_unit_test(test_left_out_and_undefined),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
