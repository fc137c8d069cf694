#include "sgdstab/optimizer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const KIND_NAMES[] = {"sgd", "adam", "adamw"};
enum { NKINDS = sizeof KIND_NAMES / sizeof KIND_NAMES[0] };

const char *sgdstab_optimizer_name(sgdstab_optimizer_kind k)
{
    return (unsigned)k < NKINDS ? KIND_NAMES[k] : "?";
}

int sgdstab_optimizer_parse(const char *text, sgdstab_optimizer_kind *k)
{
    for (int i = 0; i < NKINDS; i++)
        if (!strcmp(text, KIND_NAMES[i])) {
            *k = (sgdstab_optimizer_kind)i;
            return SGDSTAB_OK;
        }
    return SGDSTAB_EINVAL;
}

void sgdstab_optimizer_init(sgdstab_optimizer *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->kind = SGDSTAB_OPTIMIZER_SGD;
    opt->beta2 = 0.999;
    opt->eps = 1e-8;
}

void sgdstab_optimizer_defaults(sgdstab_optimizer *opt,
                                sgdstab_optimizer_kind kind)
{
    sgdstab_optimizer_init(opt);
    opt->kind = kind;
    if (kind != SGDSTAB_OPTIMIZER_SGD)
        opt->momentum = 0.9;
    if (kind == SGDSTAB_OPTIMIZER_ADAMW)
        opt->weight_decay = 0.01;
}

static int in_unit_interval(double x)
{
    return x >= 0 && x < 1;
}

int sgdstab_optimizer_preconditioned(const sgdstab_optimizer *opt)
{
    return opt->second_moment || opt->precond_in_gram;
}

static int check_second_moment(const sgdstab_optimizer *opt, size_t p,
                               sgdstab_error *err)
{
    if (opt->precond_in_gram && opt->second_moment)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "a second moment v and a "
                            "preconditioned Gram matrix together: P would be "
                            "applied twice");
    if (!opt->second_moment && !opt->precond_in_gram)
        return opt->kind == SGDSTAB_OPTIMIZER_SGD
                   ? SGDSTAB_OK
                   : sgdstab_fail(err, SGDSTAB_EINVAL, "%s needs the frozen "
                                  "second moment v (exp_avg_sq, one value "
                                  "per parameter)",
                                  sgdstab_optimizer_name(opt->kind));
    if (opt->precond_in_gram)
        return opt->eps > 0 && isfinite(opt->eps)
                   ? SGDSTAB_OK
                   : sgdstab_fail(err, SGDSTAB_EINVAL, "eps must be a "
                                  "positive number, not %g", opt->eps);
    if (opt->second_moment_len != p)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "the second moment v has %zu "
                            "values, the problem %zu parameters",
                            opt->second_moment_len, p);
    for (size_t j = 0; j < p; j++)
        if (!(opt->second_moment[j] > 0) || !isfinite(opt->second_moment[j]))
            return sgdstab_fail(err, SGDSTAB_EINVAL, "the second moment v must "
                                "be finite and > 0: entry %zu is %g", j,
                                opt->second_moment[j]);
    if (!(opt->eps > 0) || !isfinite(opt->eps))
        return sgdstab_fail(err, SGDSTAB_EINVAL, "eps must be a positive "
                            "number, not %g", opt->eps);
    return SGDSTAB_OK;
}

int sgdstab_optimizer_check(const sgdstab_optimizer *opt, size_t p,
                            sgdstab_error *err)
{
    const int sgd = opt->kind == SGDSTAB_OPTIMIZER_SGD;
    if ((unsigned)opt->kind >= NKINDS)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "unknown optimizer %d",
                            (int)opt->kind);
    if (!in_unit_interval(opt->momentum))
        return sgdstab_fail(err, SGDSTAB_EINVAL, "%s must lie in [0, 1), not "
                            "%g", sgd ? "momentum" : "beta1", opt->momentum);
    if (!in_unit_interval(opt->dampening))
        return sgdstab_fail(err, SGDSTAB_EINVAL, "dampening must lie in "
                            "[0, 1), not %g", opt->dampening);
    if (!sgd && (opt->dampening != 0 || opt->nesterov))
        return sgdstab_fail(err, SGDSTAB_EINVAL, "%s has no %s (it belongs "
                            "to sgd)", sgdstab_optimizer_name(opt->kind),
                            opt->nesterov ? "nesterov" : "dampening");
    if (opt->nesterov && (opt->momentum == 0 || opt->dampening != 0))
        return sgdstab_fail(err, SGDSTAB_EINVAL, "nesterov needs a momentum "
                            "> 0 and zero dampening (PyTorch's rule), not "
                            "momentum %g and dampening %g", opt->momentum,
                            opt->dampening);
    if (!(opt->weight_decay >= 0) || !isfinite(opt->weight_decay))
        return sgdstab_fail(err, SGDSTAB_EINVAL, "weight decay must be a "
                            "number >= 0, not %g", opt->weight_decay);
    if (!in_unit_interval(opt->beta2))
        return sgdstab_fail(err, SGDSTAB_EINVAL, "beta2 must lie in [0, 1), "
                            "not %g", opt->beta2);
    return check_second_moment(opt, p, err);
}

const char *sgdstab_optimizer_title(const sgdstab_optimizer *opt)
{
    switch (opt->kind) {
    case SGDSTAB_OPTIMIZER_ADAM:
        return "Adam";
    case SGDSTAB_OPTIMIZER_ADAMW:
        return "AdamW";
    default:
        return sgdstab_optimizer_preconditioned(opt) ? "RMSprop" : "SGD";
    }
}

int sgdstab_optimizer_decoupled_decay(const sgdstab_optimizer *opt)
{
    return opt->kind == SGDSTAB_OPTIMIZER_ADAMW && opt->weight_decay > 0;
}

int sgdstab_optimizer_lifted(const sgdstab_optimizer *opt)
{
    return opt->momentum > 0 || sgdstab_optimizer_decoupled_decay(opt);
}

void sgdstab_optimizer_describe(const sgdstab_optimizer *opt, char *buf,
                                size_t size)
{
    const char *decay = opt->kind == SGDSTAB_OPTIMIZER_ADAMW
                            ? "decoupled weight decay"
                            : "weight decay";
    char wd[64] = "";
    if (opt->weight_decay > 0)
        snprintf(wd, sizeof wd, ", %s %g", decay, opt->weight_decay);
    const char *base = sgdstab_optimizer_title(opt);
    if (opt->kind != SGDSTAB_OPTIMIZER_SGD) {
        snprintf(buf, size, "%s (beta1 %g, eps %g%s)", base, opt->momentum,
                 opt->eps, wd);
        return;
    }
    if (opt->momentum == 0) {
        snprintf(buf, size, "%s%s%s", base, *wd ? " (" : "",
                 *wd ? wd + 2 : "");
        if (*wd)
            strncat(buf, ")", size - strlen(buf) - 1);
        return;
    }
    char damp[48] = "";
    if (opt->dampening > 0)
        snprintf(damp, sizeof damp, ", dampening %g", opt->dampening);
    snprintf(buf, size, "%s with %smomentum %g%s%s", base,
             opt->nesterov ? "Nesterov " : "", opt->momentum, damp, wd);
}

double sgdstab_optimizer_buffer_gain(const sgdstab_optimizer *opt)
{
    if (opt->momentum == 0)
        return 1;  /* PyTorch bypasses the buffer: no dampening */
    return opt->kind == SGDSTAB_OPTIMIZER_SGD ? 1 - opt->dampening
                                              : 1 - opt->momentum;
}

double sgdstab_optimizer_precond(const sgdstab_optimizer *opt, size_t j)
{
    return sqrt(opt->second_moment[j]) + opt->eps;
}

void sgdstab_step_map_init(const sgdstab_optimizer *opt, double lr,
                           double loss_scale, sgdstab_step_map *map)
{
    const double beta = opt->momentum;
    const double s = sgdstab_optimizer_buffer_gain(opt);
    const double eta = loss_scale * lr;
    const double ahead = opt->nesterov ? 1 + beta : 1;
    map->kappa = opt->kind == SGDSTAB_OPTIMIZER_ADAMW
                     ? 1 - lr * opt->weight_decay
                     : 1;
    map->beta = beta;
    map->step = s * eta;
    map->nesterov = opt->nesterov;
    map->c[0] = -s * eta * ahead;
    map->c[1] = s;
    map->m0[0] = map->kappa;
    map->m0[1] = -eta * (opt->nesterov ? beta * beta : beta);
    map->m0[2] = 0;
    map->m0[3] = beta;
}

void sgdstab_step_map_matrix(const sgdstab_step_map *map, double h,
                             double M[4])
{
    M[0] = map->m0[0] + h * map->c[0];
    M[1] = map->m0[1];
    M[2] = map->m0[2] + h * map->c[1];
    M[3] = map->m0[3];
}

double sgdstab_step_map_radius(const sgdstab_step_map *map, double h)
{
    double M[4];
    sgdstab_step_map_matrix(map, h, M);
    double tr = M[0] + M[3], det = M[0] * M[3] - M[1] * M[2];
    double disc = tr * tr / 4 - det;
    if (disc < 0)
        return sqrt(fabs(det));  /* a complex pair: |μ|² = det */
    double root = sqrt(disc);
    return fmax(fabs(tr / 2 + root), fabs(tr / 2 - root));
}

/* Solve the 4×4 system A x = b by Gaussian elimination with partial
 * pivoting; 0 on success, −1 if A is singular. */
static int solve4(double A[4][4], double b[4], double x[4])
{
    for (int c = 0; c < 4; c++) {
        int piv = c;
        for (int r = c + 1; r < 4; r++)
            if (fabs(A[r][c]) > fabs(A[piv][c]))
                piv = r;
        if (A[piv][c] == 0)
            return -1;
        for (int k = 0; k < 4; k++) {
            double t = A[c][k];
            A[c][k] = A[piv][k];
            A[piv][k] = t;
        }
        double t = b[c];
        b[c] = b[piv];
        b[piv] = t;
        for (int r = c + 1; r < 4; r++) {
            double f = A[r][c] / A[c][c];
            for (int k = c; k < 4; k++)
                A[r][k] -= f * A[c][k];
            b[r] -= f * b[c];
        }
    }
    for (int r = 3; r >= 0; r--) {
        double acc = b[r];
        for (int k = r + 1; k < 4; k++)
            acc -= A[r][k] * x[k];
        x[r] = acc / A[r][r];
    }
    return 0;
}

double sgdstab_step_map_gain(const sgdstab_step_map *map, double hj,
                             double hl, double z)
{
    double Mj[4], Ml[4];
    sgdstab_step_map_matrix(map, hj, Mj);
    sgdstab_step_map_matrix(map, hl, Ml);
    /* Unknowns X row-major (x00, x01, x10, x11):
     * z·X_ab − Σ_cd Mj[a][c] X_cd Ml[b][d] = c_a c_b. */
    double A[4][4], rhs[4], x[4];
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            int row = 2 * a + b;
            rhs[row] = map->c[a] * map->c[b];
            for (int c = 0; c < 2; c++)
                for (int d = 0; d < 2; d++)
                    A[row][2 * c + d] = (row == 2 * c + d ? z : 0) -
                                        Mj[2 * a + c] * Ml[2 * b + d];
        }
    if (solve4(A, rhs, x))
        return NAN;
    return x[0];
}
