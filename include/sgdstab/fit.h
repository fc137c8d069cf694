/* sgdstab — weighted least-squares lines through (x_i, ln y_i): power laws
 * (x = ln(1/η), the exit time's exponent) and exponential rates (x = t,
 * the growth of a mean square).
 *
 * With weights w_i, the fit minimizes Σ w_i (ln y_i − a − s·x_i)².  Its
 * slope is s = Σ w (x − x̄)(ln y − ȳ) / Σ w (x − x̄)², x̄ and ȳ the weighted
 * means, and the line passes through (x̄, ȳ).  When w_i is the inverse
 * variance of ln y_i, s has standard error 1/√(Σ w (x − x̄)²) and the
 * weighted residual sum over points − 2 degrees of freedom is χ²/dof, 1
 * when the line and the variances describe the points. */
#ifndef SGDSTAB_FIT_H
#define SGDSTAB_FIT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    size_t points;          /* points with a positive weight */
    double slope;           /* NaN: fewer than two points, all x equal, or
                               some fitted y not positive and finite */
    double slope_stderr;    /* 1/√(Σ w (x − x̄)²) */
    double chi2_per_dof;    /* NaN with fewer than three points */
    double x_mean, y_mean;  /* the weighted centre (x̄, ȳ = mean of ln y) */
} sgdstab_line_fit;

/* Fit ln y_i = a + slope·x_i over i < m.  x NULL: x_i = i (evenly spaced
 * points, for rates per step).  w NULL: every weight 1; a point of weight
 * 0 is left out (its y need not have a logarithm).  Weights must be ≥ 0. */
void sgdstab_fit_log_line(const double *x, const double *y, const double *w,
                          size_t m, sgdstab_line_fit *fit);

/* The fitted ln y at x: ȳ + slope·(x − x̄). */
double sgdstab_fit_log_at(const sgdstab_line_fit *fit, double x);

#ifdef __cplusplus
}
#endif

#endif
