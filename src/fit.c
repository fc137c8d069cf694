#include "sgdstab/fit.h"

#include <math.h>

/* Point i of the fit: its x, ln y and weight (0: left out). */
static double point_x(const double *x, size_t i)
{
    return x ? x[i] : (double)i;
}

static double point_w(const double *w, size_t i)
{
    return w ? w[i] : 1;
}

void sgdstab_fit_log_line(const double *x, const double *y, const double *w,
                          size_t m, sgdstab_line_fit *fit)
{
    double sw = 0, sx = 0, sy = 0;
    int defined = 1;
    fit->points = 0;
    for (size_t i = 0; i < m; i++) {
        double wi = point_w(w, i);
        if (!(wi > 0))
            continue;
        defined &= y[i] > 0 && isfinite(y[i]);
        sw += wi;
        sx += wi * point_x(x, i);
        sy += wi * log(y[i]);
        fit->points++;
    }
    fit->slope = fit->slope_stderr = fit->chi2_per_dof = NAN;
    fit->x_mean = fit->points ? sx / sw : NAN;
    fit->y_mean = fit->points ? sy / sw : NAN;
    if (fit->points < 2 || !defined)
        return;
    /* Centred sums: the means first, so that large x (steps, say) lose no
     * digits to cancellation. */
    double sxx = 0, sxy = 0;
    for (size_t i = 0; i < m; i++) {
        double wi = point_w(w, i);
        if (!(wi > 0))
            continue;
        double dx = point_x(x, i) - fit->x_mean;
        sxx += wi * dx * dx;
        sxy += wi * dx * (log(y[i]) - fit->y_mean);
    }
    if (!(sxx > 0))
        return;
    fit->slope = sxy / sxx;
    fit->slope_stderr = 1 / sqrt(sxx);
    if (fit->points > 2) {
        double q = 0;
        for (size_t i = 0; i < m; i++) {
            double wi = point_w(w, i);
            if (!(wi > 0))
                continue;
            double d = log(y[i]) - fit->y_mean -
                       fit->slope * (point_x(x, i) - fit->x_mean);
            q += wi * d * d;
        }
        fit->chi2_per_dof = q / (double)(fit->points - 2);
    }
}

double sgdstab_fit_log_at(const sgdstab_line_fit *fit, double x)
{
    return fit->y_mean + fit->slope * (x - fit->x_mean);
}
