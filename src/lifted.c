/* The lifted map (optimizer.h): state z = (x, buffer), 𝒯(Z) = M̄ZM̄ᵀ +
 * (c cᵀ) ⊗ b𝒩(W), W = the x block.  In H's eigenbasis M̄ acts per index, so
 * an eigenmatrix Z of 𝒯 with eigenvalue z has blocks Z_jl = X_jl(z)·N_jl,
 * N = b𝒩(W), where X_jl(z) solves z·X − M(h_j) X M(h_l)ᵀ = c cᵀ; then
 * W = ℒ_z b𝒩(W) with ℒ_z scaling entry (j, l) by the gain ℓ_jl(z) = dᵀX_jl d.
 * So z > ρ(M̄)² is an eigenvalue with a PSD eigenmatrix exactly when 1 is an
 * eigenvalue of the symmetric D_z b𝒩 D_z, D_z = ℒ_z^{1/2} entry-wise, whose
 * largest eigenvalue μ(z) decreases in z (ℒ_z is a sum of positive
 * semidefinite Schur multipliers with weights z^{-t-1}).  ρ(𝒯) is the root
 * of μ(z) = 1, or ρ(M̄)² when μ stays below 1.  Every evaluation is a
 * symmetric eigenproblem of plain SGD's size r(r+1)/2. */
#include "lifted.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sgdstab/eig.h"

/* Relative tolerance of each eigenvalue μ, and of the root in z or η. */
static const double MU_TOL = 1e-13;
static const double ROOT_RTOL = 4e-15;
/* Newton's method stops once its step in z is below this relative to
 * z − z_floor (plus what f's own error allows). */
static const double NEWTON_RTOL = 1e-12;
enum { ROOT_MAX_STEPS = 200 };

/* Largest ρ(M(h_j)) over the reduced space. */
static double step_radius(const sgdstab_step_map *map,
                          const sgdstab_reduced *red)
{
    double rho = 0;
    for (size_t j = 0; j < red->r; j++)
        rho = fmax(rho, sgdstab_step_map_radius(map, red->lambda[j]));
    return rho;
}

double sgdstab_lifted_floor(const sgdstab_step_map *map,
                            const sgdstab_reduced *red)
{
    double rm = step_radius(map, red);
    return rm * rm;
}

double sgdstab_lifted_mean_limit(const sgdstab_reduced *red,
                                 const sgdstab_config *cfg)
{
    if (red->hessian_min < 0)
        return 0;
    double hmax = sgdstab_reduced_hessian_max(red);
    if (!(hmax > 0))
        return INFINITY;
    sgdstab_step_map map;
    double lo = 0, hi = 2 / (cfg->loss_scale * hmax);
    for (int i = 0; i < ROOT_MAX_STEPS; i++) {
        sgdstab_step_map_init(&cfg->optimizer, hi, cfg->loss_scale, &map);
        if (step_radius(&map, red) >= 1)
            break;
        lo = hi;
        hi *= 2;
    }
    for (int i = 0; i < ROOT_MAX_STEPS && hi - lo > ROOT_RTOL * hi; i++) {
        double mid = 0.5 * (lo + hi);
        sgdstab_step_map_init(&cfg->optimizer, mid, cfg->loss_scale, &map);
        if (step_radius(&map, red) < 1)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* μ(z) for one step map: D_z b𝒩 D_z solved by ARPACK from the last
 * eigenvector (a warm start). */
typedef struct {
    sgdstab_moments *m;
    const sgdstab_reduced *red;
    int subtract_gzg;
    double b;
    size_t dim;
    double *d;      /* D_z, packed */
    double *vec;    /* the last eigenvector */
    double *start;  /* the next solve's start vector */
    size_t matvecs;
    double error;   /* error estimate of the last μ */
} mu_solver;

static void apply_scaled_noise(void *ctx, const double *x, double *y)
{
    const mu_solver *ms = ctx;
    sgdstab_moments_noise(ms->m, ms->subtract_gzg, ms->d, x, y);
    for (size_t a = 0; a < ms->dim; a++)
        y[a] *= ms->b;
}

/* D_z from the gains of map; SGDSTAB_ENUMERIC if a gain is not positive
 * (z at or below ρ(M̄)², where the sum over future steps diverges). */
static int set_gains(mu_solver *ms, const sgdstab_step_map *map, double z,
                     sgdstab_error *err)
{
    const double *h = ms->red->lambda;
    const size_t r = ms->red->r;
    for (size_t j = 0, a = 0; j < r; j++)
        for (size_t l = j; l < r; l++, a++) {
            double g = sgdstab_step_map_gain(map, h[j], h[l], z);
            if (!(g > 0) || !isfinite(g))
                return sgdstab_fail(err, SGDSTAB_ENUMERIC, "lifted map: gain "
                                    "%g of entry (%zu, %zu) at z = %.17g is "
                                    "not positive", g, j + 1, l + 1, z);
            ms->d[a] = sqrt(g);
        }
    return SGDSTAB_OK;
}

static int mu_at(mu_solver *ms, const sgdstab_step_map *map, double z,
                 double *mu, sgdstab_error *err)
{
    int st = set_gains(ms, map, z, err);
    if (st)
        return st;
    /* The last eigenvector starts the solve (copied: vec is its output). */
    memcpy(ms->start, ms->vec, ms->dim * sizeof *ms->start);
    sgdstab_eig_options opt = {0};
    opt.tol = MU_TOL;
    opt.start = ms->start;
    sgdstab_eig_result res;
    st = sgdstab_eig_max(ms->dim, apply_scaled_noise, ms, &opt, &res, ms->vec,
                         err);
    if (st)
        return st;
    ms->matvecs += res.matvecs;
    ms->error = res.error_estimate;
    *mu = res.value;
    return SGDSTAB_OK;
}

static void mu_solver_free(mu_solver *ms)
{
    free(ms->d);
    free(ms->vec);
    free(ms->start);
}

static int mu_solver_init(mu_solver *ms, sgdstab_moments *m,
                          const sgdstab_reduced *red,
                          const sgdstab_config *cfg, double b,
                          sgdstab_error *err)
{
    memset(ms, 0, sizeof *ms);
    ms->m = m;
    ms->red = red;
    ms->subtract_gzg = cfg->sampling != SGDSTAB_SAMPLING_BERNOULLI;
    ms->b = b;
    ms->dim = sgdstab_sym_dim(red->r);
    ms->d = malloc(ms->dim * sizeof *ms->d);
    ms->vec = calloc(ms->dim, sizeof *ms->vec);
    ms->start = malloc(ms->dim * sizeof *ms->start);
    if (!ms->d || !ms->vec || !ms->start) {
        mu_solver_free(ms);
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory");
    }
    /* A positive definite start overlaps the PSD top eigenmatrix. */
    for (size_t j = 0; j < red->r; j++)
        ms->vec[sgdstab_sym_diag_index(red->r, j)] = 1 / sqrt((double)red->r);
    return SGDSTAB_OK;
}

int sgdstab_bracketed_root(sgdstab_root_fn eval, void *ctx, double *x_lo,
                           double f_lo, double *x_hi, double f_hi,
                           double *best, double *slope, sgdstab_error *err)
{
    int side = 0;
    double f_best = fabs(f_lo) < fabs(f_hi) ? f_lo : f_hi;
    *best = fabs(f_lo) < fabs(f_hi) ? *x_lo : *x_hi;
    double g_lo = f_lo, g_hi = f_hi;  /* unscaled by Illinois */
    for (int i = 0; i < ROOT_MAX_STEPS; i++) {
        double w = *x_hi - *x_lo;
        if (w <= ROOT_RTOL * fmax(fabs(*x_lo), fabs(*x_hi)) || f_lo == 0 ||
            f_hi == 0)
            break;
        double x = *x_lo - f_lo * w / (f_hi - f_lo);
        if (!(x > *x_lo && x < *x_hi))
            x = *x_lo + 0.5 * w;
        double f;
        int st = eval(ctx, x, &f, err);
        if (st)
            return st;
        if (fabs(f) < fabs(f_best)) {
            f_best = f;
            *best = x;
        }
        if ((f >= 0) == (f_lo >= 0)) {
            *x_lo = x;
            f_lo = g_lo = f;
            if (side == -1)
                f_hi *= 0.5;
            side = -1;
        } else {
            *x_hi = x;
            f_hi = g_hi = f;
            if (side == 1)
                f_lo *= 0.5;
            side = 1;
        }
    }
    *slope = fabs(g_hi - g_lo) / fmax(*x_hi - *x_lo, 1e-300);
    return SGDSTAB_OK;
}

/* ρ from the root x of f at the last evaluation: error (|f| + f's own
 * error)/|f'| in x, times dz/dx = z − z_floor. */
static void fill_root(double z_floor, double x, double f, double f_err,
                      double slope, double x_hi, sgdstab_radius *out)
{
    double gap = exp(x);
    out->rho = z_floor + gap;
    out->error_estimate = slope > 0 ? (fabs(f) + f_err) / slope * gap : gap;
    out->residual = fmax(out->error_estimate,
                         isfinite(x_hi) ? z_floor + exp(x_hi) - out->rho : 0);
}

/* Newton's method in z, safeguarded by the bracket in x (Numerical
 * Recipes' rtsafe): from x_lo, whose f_lo > 0 and derivative *df the last
 * evaluation left, each step is Newton's z − f/(df/dz) where it lands
 * inside the bracket and has at least halved the step before last; else
 * the bracket is bisected in x, or, while no point right of the root is
 * known, its right end is pushed up by a factor of 4 in z − z_floor.  f is
 * often nearly linear in z close to the root (ρ just above the floor) and
 * exponential in x far from it, which is why the step is in z and the
 * bracket in x.  Sets *done and fills out once Newton's step is within
 * the accuracy of f; leaves *done 0 when an evaluation has no derivative
 * (regula falsi takes over from the bracket so far). */
static int newton_root(sgdstab_root_fn eval, void *ctx, const double *f_error,
                       const double *df, double z_floor, double *x_lo,
                       double *f_lo, double *x_hi, double *f_hi, int *done,
                       sgdstab_radius *out, sgdstab_error *err)
{
    double x = *x_lo, f = *f_lo, step = INFINITY, older = INFINITY;
    *done = 0;
    for (int i = 0; i < ROOT_MAX_STEPS; i++) {
        if (!(*df < 0) || !isfinite(*df))
            return SGDSTAB_OK;
        double gap = exp(x), dz = -f * gap / *df;  /* dz/dx = gap */
        if (fabs(dz) <= NEWTON_RTOL * gap + 2 * *f_error * gap / -*df ||
            f == 0) {
            fill_root(z_floor, x, f, *f_error, -*df, *x_hi, out);
            *done = 1;
            return SGDSTAB_OK;
        }
        double next = gap + dz > 0 ? log(gap + dz) : -INFINITY;
        if (!(next > *x_lo && next < *x_hi) ||
            fabs(next - x) > 0.5 * older)
            next = isfinite(*x_hi)
                       ? 0.5 * (*x_lo + *x_hi)
                       : fmax(*x_lo + log(4.0), log(fmax(z_floor, 1e-300)));
        older = step;
        step = fabs(next - x);
        x = next;
        int st = eval(ctx, x, &f, err);
        if (st)
            return st;
        if (f >= 0) {
            *x_lo = x;
            *f_lo = f;
        } else {
            *x_hi = x;
            *f_hi = f;
        }
    }
    return SGDSTAB_OK;
}

int sgdstab_lifted_root(sgdstab_root_fn eval, void *ctx,
                        const double *f_error, const double *df,
                        double z_floor, double x_lo, double f_lo,
                        sgdstab_radius *out, sgdstab_error *err)
{
    double x_hi = INFINITY, f_hi = NAN;
    int done = 0, st = SGDSTAB_OK;
    if (df)
        st = newton_root(eval, ctx, f_error, df, z_floor, &x_lo, &f_lo, &x_hi,
                         &f_hi, &done, out, err);
    if (st || done)
        return st;
    /* Without a derivative: the bracket grows upward by factors of 4 in
     * z − z_floor, then regula falsi. */
    for (int i = 0; !st && !isfinite(x_hi) && i < ROOT_MAX_STEPS; i++) {
        double x = fmax(log(fmax(z_floor, 1e-300)), x_lo + log(4.0)), f;
        st = eval(ctx, x, &f, err);
        if (!st && f < 0) {
            x_hi = x;
            f_hi = f;
        } else if (!st) {
            x_lo = x;
            f_lo = f;
        }
    }
    double best = x_lo, slope = 0, f_best = 0;
    if (!st)
        st = sgdstab_bracketed_root(eval, ctx, &x_lo, f_lo, &x_hi, f_hi,
                                    &best, &slope, err);
    if (!st)  /* last at the root, so that the solver's vector is its own */
        st = eval(ctx, best, &f_best, err);
    if (!st)
        fill_root(z_floor, best, f_best, *f_error, slope, x_hi, out);
    return st;
}

/* ln μ at z = z_floor + e^x (the radius' root find). */
typedef struct {
    mu_solver *ms;
    const sgdstab_step_map *map;
    double z_floor;
} radius_ctx;

static int radius_log_mu(void *ctx, double x, double *f, sgdstab_error *err)
{
    radius_ctx *rc = ctx;
    double mu;
    int st = mu_at(rc->ms, rc->map, rc->z_floor + exp(x), &mu, err);
    *f = st ? NAN : log(mu);
    return st;
}

/* The parameter block of the top eigenmatrix, unit Frobenius norm: W = D v
 * from the last solve (at ρ) when noise lifts ρ above the floor ρ(M̄)²,
 * else E_jj of the direction whose step radius is the floor. */
static void eigenmatrix_block(mu_solver *ms, const sgdstab_step_map *map,
                              int lifted, double *S)
{
    const sgdstab_reduced *red = ms->red;
    if (lifted) {
        double norm = 0;
        for (size_t a = 0; a < ms->dim; a++) {
            ms->vec[a] *= ms->d[a];
            norm += ms->vec[a] * ms->vec[a];
        }
        for (size_t a = 0; a < ms->dim; a++)
            ms->vec[a] /= norm > 0 ? sqrt(norm) : 1;
    } else {
        size_t top = 0;
        for (size_t j = 1; j < red->r; j++)
            if (sgdstab_step_map_radius(map, red->lambda[j]) >
                sgdstab_step_map_radius(map, red->lambda[top]))
                top = j;
        memset(ms->vec, 0, ms->dim * sizeof *ms->vec);
        ms->vec[sgdstab_sym_diag_index(red->r, top)] = 1;
    }
    sgdstab_sym_unpack(red->r, ms->vec, S);
}

int sgdstab_lifted_radius(sgdstab_moments *m, const sgdstab_reduced *red,
                          const sgdstab_config *cfg, double b,
                          sgdstab_radius *out, double *S, sgdstab_error *err)
{
    memset(out, 0, sizeof *out);
    sgdstab_step_map map;
    sgdstab_step_map_init(&cfg->optimizer, cfg->lr, cfg->loss_scale, &map);
    double rm = step_radius(&map, red), z_floor = rm * rm;
    mu_solver ms;
    int st = mu_solver_init(&ms, m, red, cfg, b, err);
    if (st)
        return st;
    out->converged = 1;
    out->rho = z_floor;
    /* The bracket in x = ln(z − z_floor): just above the floor, and a z
     * where the noise no longer reaches 1. */
    double scale = fmax(z_floor, 1e-300);
    double x_lo = log(scale * 1e-12), f_lo = 0;
    radius_ctx rc = {&ms, &map, z_floor};
    if (b > 0) {
        st = radius_log_mu(&rc, x_lo, &f_lo, err);
        /* On the floor ρ lies within the bracket's first step of it. */
        out->error_estimate = out->residual = exp(x_lo);
    }
    if (!st && b > 0 && f_lo > 0)  /* ln μ's error is μ's relative one */
        st = sgdstab_lifted_root(radius_log_mu, &rc, &ms.error, NULL, z_floor,
                                 x_lo, f_lo, out, err);
    if (!st && S)
        eigenmatrix_block(&ms, &map, out->rho > z_floor, S);
    out->matvecs = ms.matvecs;
    mu_solver_free(&ms);
    return st;
}

/* ln μ at z = 1 and learning rate e^x (η*'s root find). */
typedef struct {
    mu_solver *ms;
    const sgdstab_config *cfg;
} critical_ctx;

static int critical_log_mu(void *ctx, double x, double *f, sgdstab_error *err)
{
    critical_ctx *cc = ctx;
    sgdstab_step_map map;
    sgdstab_step_map_init(&cc->cfg->optimizer, exp(x), cc->cfg->loss_scale,
                          &map);
    double mu;
    int st = mu_at(cc->ms, &map, 1, &mu, err);
    *f = st ? NAN : log(mu);
    return st;
}

int sgdstab_lifted_critical(sgdstab_moments *m, const sgdstab_reduced *red,
                            const sgdstab_config *cfg, double b,
                            sgdstab_critical *out, sgdstab_error *err)
{
    const double limit = sgdstab_lifted_mean_limit(red, cfg);
    out->converged = 1;
    out->lr_critical = out->lr_lower = out->lr_upper = limit;
    out->threshold_band = 1e-12;
    if (b == 0 || !isfinite(limit) || !(limit > 0))
        return SGDSTAB_OK;
    mu_solver ms;
    int st = mu_solver_init(&ms, m, red, cfg, b, err);
    if (st)
        return st;
    critical_ctx cc = {&ms, cfg};
    double x_hi = log(limit) + log1p(-1e-9), f_hi, f_lo = 0, x_lo = x_hi;
    st = critical_log_mu(&cc, x_hi, &f_hi, err);
    if (!st && f_hi > 0) {
        for (int i = 0; !st && i < ROOT_MAX_STEPS; i++) {
            x_lo -= log(2.0);
            st = critical_log_mu(&cc, x_lo, &f_lo, err);
            if (st || f_lo < 0)
                break;
            x_hi = x_lo;
            f_hi = f_lo;
        }
        double best = x_lo, slope = 0;
        if (!st)
            st = sgdstab_bracketed_root(critical_log_mu, &cc, &x_lo, f_lo,
                                        &x_hi, f_hi, &best, &slope, err);
        if (!st) {
            out->lr_lower = exp(x_lo);
            out->lr_upper = exp(x_hi);
            out->lr_critical = exp(best);
            out->rel_accuracy = slope > 0 ? ms.error / slope : x_hi - x_lo;
            out->threshold_band = 2 * out->rel_accuracy + 1e-12;
        }
    }
    out->matvecs = ms.matvecs;
    mu_solver_free(&ms);
    return st;
}
