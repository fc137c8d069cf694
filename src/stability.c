#include "sgdstab/stability.h"
#include "sgdstab/memplan.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hugealloc.h"
#include "lifted.h"
#include "sgdstab/moments.h"
#include "sgdstab/plan.h"

/* The operators solved here are members of two families (eig.h), each in two
 * variants by the noise operator 𝒩 (moments.h): with GZG subtracted
 * (`without`, `with`) or not (`bernoulli`).  In packed coordinates, with
 * s_α = h_j + h_l and q_α = h_j·h_l for α = (j, l):
 *   𝒯 = diag(1 − η s + η² q) + η² b · 𝒩                 (γ = (1, −η, η²))
 *   K = 𝒜₁^{-1/2}𝒜₂𝒜₁^{-1/2} = diag(q / s) + b · D𝒩D,   D = diag(s^{-1/2})
 * and, for heavy-ball momentum β (README, Optimizers), K_β = diag(−q_β/s)
 * + b·D𝒩D with q_β = [β(h_j² + h_l²) − (1 + β²)h_j h_l]/(1 − β²)
 * = [β·d − (1 − β)²·q]/(1 − β²), d = (h_j − h_l)²: the second diagonal
 * d/s gives γ = ((1 − β)/(1 + β), −β/(1 − β²)), and η* = (1 − β)/(s·c·
 * λmax(K_β)) (s the buffer's gain, optimizer.h).  β = 0 is plain SGD's K
 * exactly. */
enum { FAMILY_STEP = 0, FAMILY_CRITICAL = 1 };

/* Default relative tolerances (eig.h) per family.  An error estimate of
 * 1e-11·ρ⊥, and at most RADIUS_ABS_TOL, keeps ρ⊥ within 1e-10 absolute.
 * 3e-10 keeps η* within 1e-9 relative with a margin of three, because the
 * error estimate that stops a solve is not a bound (eig.c). */
static const double DEFAULT_TOL[2] = {1e-11, 3e-10};
static const double RADIUS_ABS_TOL = 5e-11;

/* Relative residual of the top eigenmatrix of 𝒯 when it is returned: its
 * error is about residual/gap (Davis–Kahan), and quantities computed from it
 * (the alignment μ(S*), theory.h) inherit that error. */
static const double EIGENMATRIX_RESIDUAL = 1e-10;

typedef struct {
    sgdstab_stability *s;
    int subtract_gzg;
    int scaled;         /* apply D on both sides (the K family) */
    sgdstab_family *family;
} family_slot;

struct sgdstab_stability {
    const sgdstab_reduced *red;
    sgdstab_moments *m;
    size_t r, dim;
    double *work;             /* a packed matrix: a start vector's scratch */
    double *ones, *sum, *prod, *ratio, *dscale;  /* packed diagonals */
    double *spread;           /* d = (h_j − h_l)²: the lifted map's part */
    double *spread_ratio;     /* d/s: momentum's part of K */
    double *identity;         /* packed I/√r: the positive definite start */
    double *unit_noise[2];    /* [subtract_gzg]: ⟨E_jj, 𝒩 E_jj⟩, j < r */
    size_t flattest;          /* index of the smallest h_j */
    const double *diags[2][4];  /* [FAMILY_*]: the fixed diagonals d_c */
    size_t ndiag[2];
    family_slot slot[2][2];   /* [FAMILY_*][subtract_gzg] */
    sgdstab_eig_options eig;
};

/* A member (γ, β) of a family, as ARPACK's operator sees it. */
typedef struct {
    family_slot *slot;
    const double *gamma;
    int kind;
    double beta;
} member;

void sgdstab_stability_free(sgdstab_stability *s)
{
    if (!s)
        return;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            sgdstab_family_free(s->slot[i][j].family);
    sgdstab_moments_free(s->m);
    free(s->work);
    free(s->ones);
    free(s->sum);
    free(s->prod);
    free(s->ratio);
    free(s->spread_ratio);
    free(s->spread);
    free(s->dscale);
    free(s->identity);
    free(s->unit_noise[0]);
    free(s->unit_noise[1]);
    free(s);
}

/* The diagonal of 𝒩 at the unit matrices E_jj: the variance, per unit of
 * b, of the (j, j) entry of the minibatch Hessian, (1/n) Σ_i (A_i)_jj² −
 * G_jj² (without the G_jj² for `bernoulli`), with (A_i)_jj = ‖Φ_i e_j‖². */
static void set_unit_noise(sgdstab_stability *s)
{
    const sgdstab_reduced *red = s->red;
    size_t r = s->r, k = red->k;
    for (size_t j = 0; j < r; j++) {
        double sq = 0, mean = 0;
        for (size_t i = 0; i < red->n; i++) {
            double aij = 0;
            for (size_t o = 0; o < k; o++) {
                double phi = red->phi[(i * k + o) * r + j];
                aij += phi * phi;
            }
            sq += aij * aij;
            mean += aij;
        }
        sq /= (double)red->n;
        mean /= (double)red->n;
        s->unit_noise[0][j] = sq;
        s->unit_noise[1][j] = fmax(sq - mean * mean, 0.0);
    }
}

sgdstab_stability *sgdstab_stability_alloc(const sgdstab_reduced *red,
                                           sgdstab_error *err)
{
    if (red->r == 0) {
        sgdstab_fail(err, SGDSTAB_EVALUE, "%s: J is zero and H is absent or "
                     "zero: no direction ever moves, there is nothing to "
                     "analyze", red->source);
        return NULL;
    }
    sgdstab_stability *s = calloc(1, sizeof *s);
    if (!s)
        goto oom;
    s->red = red;
    s->r = red->r;
    s->dim = sgdstab_sym_dim(red->r);
    size_t dim = s->dim;
    if (!(s->m = sgdstab_moments_alloc(red, err)))
        goto fail;
    s->work = sgdstab_huge_malloc(dim, sizeof *s->work);
    s->ones = sgdstab_huge_malloc(dim, sizeof *s->ones);
    s->sum = sgdstab_huge_malloc(dim, sizeof *s->sum);
    s->prod = sgdstab_huge_malloc(dim, sizeof *s->prod);
    s->ratio = sgdstab_huge_malloc(dim, sizeof *s->ratio);
    s->spread_ratio = sgdstab_huge_malloc(dim, sizeof *s->spread_ratio);
    s->spread = sgdstab_huge_malloc(dim, sizeof *s->spread);
    s->dscale = sgdstab_huge_malloc(dim, sizeof *s->dscale);
    s->identity = sgdstab_huge_calloc(dim, sizeof *s->identity);
    s->unit_noise[0] = malloc(s->r * sizeof *s->unit_noise[0]);
    s->unit_noise[1] = malloc(s->r * sizeof *s->unit_noise[1]);
    if (!s->work || !s->ones || !s->sum || !s->prod || !s->ratio ||
        !s->spread_ratio || !s->spread ||
        !s->dscale || !s->identity || !s->unit_noise[0] || !s->unit_noise[1])
        goto oom;
    set_unit_noise(s);
    const double *h = red->lambda;
    for (size_t j = 1; j < s->r; j++)
        if (h[j] < h[s->flattest])
            s->flattest = j;
    for (size_t j = 0, a = 0; j < s->r; j++)
        for (size_t l = j; l < s->r; l++, a++) {
            s->ones[a] = 1;
            s->sum[a] = h[j] + h[l];
            s->prod[a] = h[j] * h[l];
            s->ratio[a] = s->sum[a] > 0 ? s->prod[a] / s->sum[a] : 0.0;
            s->spread[a] = (h[j] - h[l]) * (h[j] - h[l]);
            s->spread_ratio[a] =
                s->sum[a] > 0 ? s->spread[a] / s->sum[a] : 0.0;
            s->dscale[a] = s->sum[a] > 0 ? 1 / sqrt(s->sum[a]) : 0.0;
            if (j == l)
                s->identity[a] = 1 / sqrt((double)s->r);
        }
    for (int f = 0; f < 2; f++)
        for (int g = 0; g < 2; g++)
            s->slot[f][g] = (family_slot){s, g, f == FAMILY_CRITICAL, NULL};
    s->diags[FAMILY_STEP][0] = s->ones;
    s->diags[FAMILY_STEP][1] = s->sum;
    s->diags[FAMILY_STEP][2] = s->prod;
    s->diags[FAMILY_STEP][3] = s->spread;
    s->ndiag[FAMILY_STEP] = 4;
    s->diags[FAMILY_CRITICAL][0] = s->ratio;
    s->diags[FAMILY_CRITICAL][1] = s->spread_ratio;
    s->ndiag[FAMILY_CRITICAL] = 2;
    return s;
oom:
    sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory for the stability "
                 "workspace (r = %zu)", red->r);
fail:
    sgdstab_stability_free(s);
    return NULL;
}

double sgdstab_stability_memory(const sgdstab_reduced *red, size_t basis,
                                int families)
{
    const double r = (double)red->r, rows = (double)(red->n * red->k);
    const double dim = r * (r + 1) / 2, m = (double)basis;
    /* Per family: its basis and 𝒩 of it, 2·m·dim; projections of
     * m² doubles a dozen times, and pass buffers (eig_family.c) of about
     * 40 000.  Beside them: the 9 diagonals and work vectors of the
     * workspace, the eigenvector of a solve, the eigenmatrix a caller
     * asks for and the lifted map's two (13·dim); the noise operator's
     * (n·k)×r rows, its r×r buffers and the n·k² blocks. */
    double doubles = families * (2 * m * dim + 12 * m * m + 40000) +
                     13 * dim + rows * r + 6 * r * r +
                     rows * (double)red->k + 4 * rows;
    return 8 * doubles;
}

double sgdstab_run_memory(const sgdstab_problem *prob,
                          const sgdstab_reduced *red, int families)
{
    const double rows = (double)(prob->n * prob->k), p = (double)prob->p;
    const double r = (double)red->r;
    double load = prob->K ? sgdstab_memory_need_gram(prob->n * prob->k,
                                                     prob->KP != NULL)
                          : sgdstab_memory_need(prob->n, prob->k, prob->p,
                                                prob->H != NULL);
    double held = 8 * (prob->K ? rows * rows * (prob->KP ? 2 : 1)
                               : rows * p + (prob->H ? p * p + p * r : 0)) +
                  8 * (rows * r + (red->G ? r * r : 0));
    return fmax(load, held + sgdstab_stability_memory(
                                 red, SGDSTAB_BASIS_DEFAULT, families));
}

/* The largest r whose workspace at the smallest basis fits bytes. */
static size_t largest_r(const sgdstab_reduced *red, int families,
                        double bytes)
{
    size_t lo = 0, hi = red->r;
    sgdstab_reduced probe = *red;
    while (lo < hi) {
        probe.r = lo + (hi - lo + 1) / 2;
        if (sgdstab_stability_memory(&probe, SGDSTAB_BASIS_MIN, families) <=
            bytes)
            lo = probe.r;
        else
            hi = probe.r - 1;
    }
    return lo;
}

int sgdstab_engine_plan_fit(const sgdstab_reduced *red, int families,
                            double max_memory, sgdstab_engine_plan *plan,
                            sgdstab_error *err)
{
    memset(plan, 0, sizeof *plan);
    plan->basis = SGDSTAB_BASIS_DEFAULT;
    plan->need = plan->need_default =
        sgdstab_stability_memory(red, SGDSTAB_BASIS_DEFAULT, families);
    plan->available = INFINITY;
    if (max_memory < 0)
        return SGDSTAB_OK;
    sgdstab_memory_limit lim;
    int st = sgdstab_memory_left(max_memory, &lim, err);
    if (st)
        return st;
    plan->available = lim.bytes;
    snprintf(plan->source, sizeof plan->source, "%s", lim.source);
    while (plan->need > lim.bytes && plan->basis > SGDSTAB_BASIS_MIN)
        plan->need = sgdstab_stability_memory(red, --plan->basis, families);
    if (plan->need <= lim.bytes)
        return SGDSTAB_OK;
    char need[32], have[32];
    sgdstab_memory_format(plan->need, need, sizeof need);
    sgdstab_memory_format(lim.bytes, have, sizeof have);
    return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: not enough memory for the "
                        "engine at r = %zu: it needs about %s (%d eigensolver "
                        "bas%s of %d vectors of r(r+1)/2 doubles, twice), "
                        "more than the %s available (%s); r up to %zu fits: "
                        "use fewer samples or outputs, a larger --rank-tol, "
                        "or a machine with more memory", red->source, red->r,
                        need, families, families == 1 ? "is" : "es",
                        SGDSTAB_BASIS_MIN, have, lim.source,
                        largest_r(red, families, lim.bytes));
}

sgdstab_stability *sgdstab_stability_alloc_fit(const sgdstab_reduced *red,
                                               int families,
                                               double max_memory,
                                               sgdstab_engine_plan *plan,
                                               sgdstab_error *err)
{
    sgdstab_engine_plan own;
    if (!plan)
        plan = &own;
    if (sgdstab_engine_plan_fit(red, families, max_memory, plan, err))
        return NULL;
    sgdstab_stability *s = sgdstab_stability_alloc(red, err);
    if (s && plan->basis < SGDSTAB_BASIS_DEFAULT)
        s->eig.ncv = plan->basis;
    return s;
}

void sgdstab_stability_set_eig(sgdstab_stability *s,
                               const sgdstab_eig_options *opt)
{
    if (opt)
        s->eig = *opt;
    else
        memset(&s->eig, 0, sizeof s->eig);
}

/* y = 𝒩(x), or D𝒩(Dx) for the K family, on packed symmetric matrices. */
static void matvec_noise(void *ctx, const double *x, double *y)
{
    family_slot *slot = ctx;
    sgdstab_stability *s = slot->s;
    sgdstab_moments_noise(s->m, slot->subtract_gzg,
                          slot->scaled ? s->dscale : NULL, x, y);
}

/* Add the packed unit matrix E_jj = e_j e_jᵀ to the basis of f. */
static int add_unit(sgdstab_stability *s, sgdstab_family *f, size_t j,
                    sgdstab_error *err)
{
    double *x = s->work;  /* copied into the basis before N is applied */
    memset(x, 0, s->dim * sizeof *x);
    x[sgdstab_sym_diag_index(s->r, j)] = 1;
    return sgdstab_family_add(f, x, err);
}

/* The family for this kind and sampling, created on first use.  Its basis
 * starts with I/√r: the PSD top eigenmatrix (README, The mathematics) is not
 * orthogonal to a positive definite start.  E_11 (the sharpest direction)
 * joins it: as b → 0 the top eigenvector of K tends to E_11, and for 𝒯 at
 * η > 2/λmax it is close to E_11; E_jj of the smallest h_j completes 𝒯's
 * start: its slowest mode at small η lives there, and along a negative h_j
 * its fastest. */
static sgdstab_family *family(sgdstab_stability *s, int kind,
                              sgdstab_sampling sampling, sgdstab_error *err)
{
    family_slot *slot = &s->slot[kind][sampling != SGDSTAB_SAMPLING_BERNOULLI];
    if (slot->family)
        return slot->family;
    sgdstab_family *f = sgdstab_family_alloc(s->dim, s->ndiag[kind],
                                             s->diags[kind], matvec_noise,
                                             slot, s->eig.ncv, err);
    if (!f || sgdstab_family_add(f, s->identity, err) ||
        add_unit(s, f, 0, err) ||
        (kind == FAMILY_STEP && add_unit(s, f, s->flattest, err))) {
        sgdstab_family_free(f);
        return NULL;
    }
    return slot->family = f;
}

/* y = (Σ γ_c d_c)∘x + β·N x: the whole member, for ARPACK. */
static void matvec_member(void *ctx, const double *x, double *y)
{
    const member *mb = ctx;
    const sgdstab_stability *s = mb->slot->s;
    matvec_noise(mb->slot, x, y);
    for (size_t a = 0; a < s->dim; a++) {
        double e = 0;
        for (size_t c = 0; c < s->ndiag[mb->kind]; c++)
            e += mb->gamma[c] * s->diags[mb->kind][c][a];
        y[a] = mb->beta * y[a] + e * x[a];
    }
}

/* Largest eigenvalue of the member (γ, β) of family `kind` (and, if vec is
 * not NULL, a unit eigenvector): on the shared basis, or from scratch with
 * ARPACK when asked to cross-check or when from_scratch is set. */
static int solve_member(sgdstab_stability *s, int kind,
                        sgdstab_sampling sampling, const double *gamma,
                        double beta, double tol, double vector_tol,
                        int from_scratch, sgdstab_eig_result *res,
                        double *vec, sgdstab_error *err)
{
    sgdstab_eig_options opt = s->eig;
    opt.arpack |= from_scratch;
    /* K's top eigenvalue is at least its largest diagonal entry: q/s is
     * largest, h_max/2, at α = (j, j), where the diagonal of D𝒩D is a
     * variance over the samples, ≥ 0.  So θ − diag(q/s) ≻ 0 near
     * convergence (b > 0) and the Neumann estimate of eig.h applies: the
     * smaller of it and ‖R‖²/gap stops a solve sooner.  Not in the 𝒯
     * family: at a stable η its top clusters near 1 (slow modes), where the
     * gap is small and the estimate can fall below the true error. */
    opt.neumann_estimate = kind == FAMILY_CRITICAL;
    if (!(opt.tol > 0))
        opt.tol = tol > 0 ? tol : DEFAULT_TOL[kind];
    if (vector_tol > 0)
        opt.vector_tol = vector_tol;
    family_slot *slot = &s->slot[kind][sampling != SGDSTAB_SAMPLING_BERNOULLI];
    if (!opt.arpack) {
        /* The applications that seed a new basis count for this member. */
        size_t before = slot->family ? sgdstab_family_matvecs(slot->family)
                                     : 0;
        sgdstab_family *f = family(s, kind, sampling, err);
        if (!f)
            return err ? err->status : SGDSTAB_ENOMEM;
        int st = sgdstab_family_solve(f, gamma, beta, &opt, res, vec, err);
        res->matvecs = sgdstab_family_matvecs(f) - before;
        return st;
    }
    member mb = {slot, gamma, kind, beta};
    opt.start = s->identity;
    return sgdstab_eig_max(s->dim, matvec_member, &mb, &opt, res, vec, err);
}

/* ------------------------------------------------------------------- API */

void sgdstab_escape_rates(double rho, size_t n, size_t batch,
                          double *per_step, double *per_epoch)
{
    *per_step = rho <= 0 ? -INFINITY : log(rho);
    *per_epoch = (double)n / (double)batch * *per_step;
}

/* The largest Rayleigh quotient of the member (γ, β) of family `kind` at
 * a unit matrix E_jj: its diagonal entry Σ_c γ_c d_c + β·S²·⟨E_jj, 𝒩E_jj⟩
 * at α = (j, j), S the family's scaling (D for K, 1 for 𝒯).  The largest
 * eigenvalue is at least this for every input (the members are symmetric):
 * for 𝒯, (1 − ηh_j)² + η²b·noise_j, so (1 − ηλmin)² with negative
 * curvature; for K, h_j/2 + b·noise_j/(2h_j).  *at is the j attaining it. */
static double unit_lower_bound(const sgdstab_stability *s, int kind,
                               sgdstab_sampling sampling, const double *gamma,
                               double beta, size_t *at)
{
    const double *noise = s->unit_noise[sampling != SGDSTAB_SAMPLING_BERNOULLI];
    double best = -INFINITY;
    for (size_t j = 0; j < s->r; j++) {
        size_t a = sgdstab_sym_diag_index(s->r, j);
        double scale = kind == FAMILY_CRITICAL ? s->dscale[a] : 1;
        double q = beta * scale * scale * noise[j];
        for (size_t c = 0; c < s->ndiag[kind]; c++)
            q += gamma[c] * s->diags[kind][c][a];
        if (q > best) {
            best = q;
            *at = j;
        }
    }
    return best;
}

/* One solve of the member, added to the applications of res so far:
 * η* to its tolerance; ρ⊥ to its relative tolerance and then to
 * RADIUS_ABS_TOL, which 1e-11·ρ⊥ exceeds once ρ⊥ > 5. */
static int solve_kind(sgdstab_stability *s, int kind,
                      sgdstab_sampling sampling, const double *gamma,
                      double beta, double vtol, int from_scratch,
                      sgdstab_eig_result *res, double *vec,
                      sgdstab_error *err)
{
    size_t matvecs = res->matvecs;
    int st = solve_member(s, kind, sampling, gamma, beta, 0, vtol,
                          from_scratch, res, vec, err);
    res->matvecs += matvecs;
    if (!st && kind == FAMILY_STEP && !(s->eig.tol > 0) && res->converged &&
        res->error_estimate > RADIUS_ABS_TOL) {
        matvecs = res->matvecs;
        st = solve_member(s, kind, sampling, gamma, beta,
                          RADIUS_ABS_TOL / res->value, vtol, from_scratch,
                          res, vec, err);
        res->matvecs += matvecs;
    }
    return st;
}

/* Does a solve contradict the lower bound by more than its own error
 * estimate (and rounding)? */
static int below_bound(const sgdstab_eig_result *res, double bound)
{
    return res->value < bound - res->error_estimate - 1e-14 * fabs(bound);
}

/* The largest eigenvalue of the member, checked against the lower bound
 * above.  A shared basis accepts its largest Ritz value once the residual
 * is small, so a basis holding an (almost) exact eigenmatrix of a smaller
 * eigenvalue — the slow mode ρ ≈ 1 of a flat direction, say — can hide the
 * top one.  Below the bound, the unit matrix that attains it joins the
 * basis and the solve is repeated, then made from scratch by ARPACK (whose
 * Lanczos start I/√r is not orthogonal to the positive semidefinite top
 * eigenmatrix); a result still below it is an error, never an answer. */
static int solve_checked(sgdstab_stability *s, int kind,
                         sgdstab_sampling sampling, const double *gamma,
                         double beta, double vtol, sgdstab_eig_result *res,
                         double *vec, sgdstab_error *err)
{
    memset(res, 0, sizeof *res);
    int st = solve_kind(s, kind, sampling, gamma, beta, vtol, 0, res, vec,
                        err);
    size_t at = 0;
    double bound = unit_lower_bound(s, kind, sampling, gamma, beta, &at);
    if (!st && below_bound(res, bound) && !s->eig.arpack) {
        sgdstab_family *f = family(s, kind, sampling, err);
        if (!f)
            return err ? err->status : SGDSTAB_ENOMEM;
        size_t before = sgdstab_family_matvecs(f);
        sgdstab_error full;  /* a full basis: go on to ARPACK */
        if (!add_unit(s, f, at, &full)) {
            res->matvecs += sgdstab_family_matvecs(f) - before;
            st = solve_kind(s, kind, sampling, gamma, beta, vtol, 0, res, vec,
                            err);
        }
        if (!st && below_bound(res, bound))
            st = solve_kind(s, kind, sampling, gamma, beta, vtol, 1, res, vec,
                            err);
    }
    /* ρ⊥ is dimensionless; K's eigenvalues carry the curvature's units. */
    double slack = kind == FAMILY_STEP ? RADIUS_ABS_TOL + 1e-11 * fabs(bound)
                                       : 1e-9 * fabs(bound);
    if (!st && res->value < bound - slack)
        return sgdstab_fail(err, SGDSTAB_ENUMERIC, "the eigensolver found "
                            "%.17g below its lower bound %.17g (the Rayleigh "
                            "quotient at E_%zu%zu): no answer is given rather "
                            "than a wrong one", res->value, bound, at + 1,
                            at + 1);
    return st;
}

/* At a minimum ρ⊥ > 1 ⟺ η > η*(B) (README, η*(B)): a ρ⊥ on the wrong side of
 * 1 is solved again from scratch by ARPACK.  η*(B) is the caller's (known)
 * or solved here, its applications added to res. */
static int check_radius_side(sgdstab_stability *s, const sgdstab_config *cfg,
                             const sgdstab_critical *known,
                             const double *gamma, double beta, double vtol,
                             sgdstab_eig_result *res, double *vec,
                             sgdstab_error *err)
{
    if (s->eig.arpack)
        return SGDSTAB_OK;
    sgdstab_critical crit;
    if (!known) {
        int st = sgdstab_critical_lr(s, cfg, &crit, err);
        if (st)
            return st;
        res->matvecs += crit.matvecs;
        known = &crit;
    }
    double ec = known->lr_critical, lr = cfg->lr;
    if (known->kind == SGDSTAB_MINIMUM_OK &&
        ((lr > ec * (1 + 1e-8) && res->value <= 1) ||
         (lr < ec * (1 - 1e-8) && res->value > 1)))
        return solve_kind(s, FAMILY_STEP, cfg->sampling, gamma, beta, vtol, 1,
                          res, vec, err);
    return SGDSTAB_OK;
}

/* The checks and the batch coefficients every solve at cfg starts with. */
static int prepare(const sgdstab_stability *s, const sgdstab_config *cfg,
                   unsigned uses, double *a, double *b, sgdstab_error *err)
{
    int st = sgdstab_config_check(cfg, s->red, uses | SGDSTAB_USES_BATCH |
                                  SGDSTAB_USES_STEP_MAP, err);
    return st ? st : sgdstab_batch_coefficients(cfg->sampling, s->red->n,
                                                cfg->batch, a, b, err);
}

/* The lifted map's ρ without Nesterov's look-ahead (README, Optimizers):
 * there 1/ℓ_jl(z) = (g0 + g1·s + g2·p + g3·d)_jl with s = h_j + h_l,
 * p = h_j h_l, d = (h_j − h_l)² (g below, from the 2×2 equation solved in
 * closed form), so ρ is the root of λmax(b𝒩 − diag(1/ℓ_z)) = 0 over members
 * of the 𝒯 family, which has these diagonals: each z is solved on the
 * shared basis.  The member is divided by ς = b·max_j ⟨E_jj, 𝒩E_jj⟩ and
 * shifted by 1, so that its top eigenvalue is 1 at the root, on the scale
 * of ρ itself. */
typedef struct {
    sgdstab_stability *s;
    sgdstab_sampling sampling;
    sgdstab_step_map map;
    double b, scale, z_floor;
    double vtol;
    sgdstab_eig_result res;
    double *vec;
    double slope;  /* dθ/dx by Hellmann–Feynman: −(z − z_floor)·vᵀ(∂g/∂z)v/ς */
    size_t matvecs;
} lifted_root;

/* 1/ℓ(z) = g0 + g1 s + g2 p + g3 d for the map (κ, β, e = s·c·η) at
 * z = βκ + zb (zb > 0 passed apart: near the floor βκ of underdamped
 * directions z − βκ would cancel), with w = zb/(e²z(z + βκ)):
 *   g0 = w(z − β²)(z − κ²),  g1 = w·e·z·(β + κ),  g2 = −w·e²·z,
 *   g3 = z·βκ/(zb·(z + βκ)),
 * the heavy-ball solution of the 2×2 equation (README, Optimizers), checked
 * against its direct solve by the tests. */
static void inverse_gain(const sgdstab_step_map *m, double z, double zb,
                         double g[4])
{
    const double beta = m->beta, kappa = m->kappa, e = m->step;
    const double bk = beta * kappa, w = zb / (e * e * z * (z + bk));
    g[0] = w * (z - beta * beta) * (z - kappa * kappa);
    g[1] = w * e * z * (beta + kappa);
    g[2] = -w * e * e * z;
    g[3] = z * bk / (zb * (z + bk));
}

/* 1/ℓ at the packed entry a for the coefficients g. */
static double gain_at(const sgdstab_stability *s, const double g[4], size_t a)
{
    return g[0] + g[1] * s->sum[a] + g[2] * s->prod[a] + g[3] * s->spread[a];
}

/* (θ − 1) at z = z_floor + e^x, θ the top eigenvalue of the scaled member,
 * and its derivative in x: the member depends on z only through its
 * diagonal −g(z)/ς, so dθ/dz = −vᵀ diag(∂g/∂z) v/ς for the unit top
 * eigenvector v (Hellmann–Feynman), ∂g/∂z by central differences of the
 * closed form. */
static int lifted_root_eval(void *ctx, double x, double *f,
                            sgdstab_error *err)
{
    lifted_root *lr = ctx;
    const sgdstab_stability *s = lr->s;
    const double gap = exp(x), z = lr->z_floor + gap,
                 zb = lr->z_floor - lr->map.beta * lr->map.kappa + gap;
    double g[4], up[4], down[4], h = 1e-6 * zb;
    inverse_gain(&lr->map, z, zb, g);
    inverse_gain(&lr->map, z + h, zb + h, up);
    inverse_gain(&lr->map, z - h, zb - h, down);
    for (size_t a = 0; a < s->dim; a++)
        if (!(gain_at(s, g, a) > 0))
            return sgdstab_fail(err, SGDSTAB_ENUMERIC, "lifted map: a gain "
                                "is not positive at z = %.17g", z);
    double gamma[4];
    for (int c = 0; c < 4; c++)
        gamma[c] = -g[c] / lr->scale;
    gamma[0] += 1;
    int st = solve_checked(lr->s, FAMILY_STEP, lr->sampling, gamma,
                           lr->b / lr->scale, lr->vtol, &lr->res, lr->vec,
                           err);
    lr->matvecs += lr->res.matvecs;
    *f = lr->res.value - 1;
    double dg = 0;
    for (size_t a = 0; a < s->dim && !st; a++)
        dg += lr->vec[a] * lr->vec[a] *
              (gain_at(s, up, a) - gain_at(s, down, a)) / (2 * h);
    lr->slope = -gap * dg / lr->scale;
    return st;
}

static int lifted_radius(sgdstab_stability *s, const sgdstab_config *cfg,
                         double b, sgdstab_radius *out, double *S,
                         sgdstab_error *err)
{
    const double *noise =
        s->unit_noise[cfg->sampling != SGDSTAB_SAMPLING_BERNOULLI];
    double top = 0;
    for (size_t j = 0; j < s->r; j++)
        top = fmax(top, noise[j]);
    lifted_root lr = {.s = s, .sampling = cfg->sampling, .b = b,
                      .scale = b * top};
    sgdstab_step_map_init(&cfg->optimizer, cfg->lr, cfg->loss_scale, &lr.map);
    lr.z_floor = sgdstab_lifted_floor(&lr.map, s->red);
    /* Nesterov's gains are not in the family; without noise, or with ρ on
     * the floor, the ARPACK root find of lifted.c takes over. */
    double x_lo = log(fmax(lr.z_floor, 1e-300) * 1e-12), f_lo = 0;
    if (cfg->optimizer.nesterov || !(lr.scale > 0))
        return sgdstab_lifted_radius(s->m, s->red, cfg, b, out, S, err);
    if (!(lr.vec = malloc(s->dim * sizeof *lr.vec)))
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory");
    sgdstab_error near;
    if (lifted_root_eval(&lr, x_lo, &f_lo, &near) || !(f_lo > 0)) {
        free(lr.vec);
        return sgdstab_lifted_radius(s->m, s->red, cfg, b, out, S, err);
    }
    lr.vtol = S ? EIGENMATRIX_RESIDUAL : 0;
    int st = sgdstab_lifted_root(lifted_root_eval, &lr,
                                 &lr.res.error_estimate, &lr.slope,
                                 lr.z_floor, x_lo, f_lo, out, err);
    if (!st) {
        out->converged = lr.res.converged;
        out->matvecs = lr.matvecs;
        if (S)  /* at the root the eigenvector is the parameter block W */
            sgdstab_sym_unpack(s->r, lr.vec, S);
    }
    free(lr.vec);
    return st;
}

int sgdstab_spectral_radius(sgdstab_stability *s, const sgdstab_config *cfg,
                            const sgdstab_critical *known,
                            sgdstab_radius *out, double *S,
                            sgdstab_error *err)
{
    memset(out, 0, sizeof *out);
    double a, b;
    int st = prepare(s, cfg, SGDSTAB_USES_LR, &a, &b, err);
    if (st)
        return st;
    if (known && known->batch != cfg->batch)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "the known eta* is that of "
                            "batch size %zu, not %zu", known->batch,
                            cfg->batch);
    if (sgdstab_optimizer_lifted(&cfg->optimizer))
        return lifted_radius(s, cfg, b, out, S, err);
    double eta = cfg->loss_scale * cfg->lr;
    double gamma[4] = {1, -eta, eta * eta, 0};
    sgdstab_eig_result res;
    double *vec = S ? malloc(s->dim * sizeof *vec) : NULL;
    if (S && !vec)
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory");
    double vtol = S ? EIGENMATRIX_RESIDUAL : 0;
    st = solve_checked(s, FAMILY_STEP, cfg->sampling, gamma, eta * eta * b,
                       vtol, &res, vec, err);
    if (!st)
        st = check_radius_side(s, cfg, known, gamma, eta * eta * b, vtol, &res,
                               vec, err);
    if (!st && S)
        sgdstab_sym_unpack(s->r, vec, S);
    free(vec);
    if (st)
        return st;
    out->rho = res.value;
    out->residual = res.residual;
    out->error_estimate = res.error_estimate;
    out->matvecs = res.matvecs;
    out->converged = res.converged;
    return SGDSTAB_OK;
}

const sgdstab_reduced *sgdstab_stability_reduced(const sgdstab_stability *s)
{
    return s->red;
}

double sgdstab_lr_mean_limit(const sgdstab_reduced *red,
                             const sgdstab_config *cfg)
{
    /* A negative eigenvalue h makes |1 − ηh| > 1 for every η > 0. */
    if (red->hessian_min < 0)
        return 0;
    if (sgdstab_optimizer_lifted(&cfg->optimizer))
        return sgdstab_lifted_mean_limit(red, cfg);
    double hmax = cfg->loss_scale * sgdstab_reduced_hessian_max(red);
    return hmax > 0 ? 2 / hmax : INFINITY;
}

/* The tolerance of η* solves (eig.h), as solve_member takes it. */
static double critical_tol(const sgdstab_stability *s)
{
    return s->eig.tol > 0 ? s->eig.tol : DEFAULT_TOL[FAMILY_CRITICAL];
}

/* The relative rounding of a Rayleigh quotient over dim coordinates. */
static double rounding_rel(const sgdstab_stability *s)
{
    return 4 * sqrt((double)s->dim) * DBL_EPSILON;
}

const char *sgdstab_verdict_name(sgdstab_verdict v)
{
    switch (v) {
    case SGDSTAB_VERDICT_STABLE:
        return "stable";
    case SGDSTAB_VERDICT_UNSTABLE:
        return "unstable";
    default:
        return "threshold";
    }
}

sgdstab_verdict sgdstab_verdict_at(const sgdstab_critical *crit, double lr)
{
    if (crit->kind != SGDSTAB_MINIMUM_OK || !(crit->lr_critical > 0))
        return SGDSTAB_VERDICT_UNSTABLE;
    double rel = lr / crit->lr_critical - 1;
    if (fabs(rel) <= crit->threshold_band)
        return SGDSTAB_VERDICT_THRESHOLD;
    return rel < 0 ? SGDSTAB_VERDICT_STABLE : SGDSTAB_VERDICT_UNSTABLE;
}

int sgdstab_critical_lr(sgdstab_stability *s, const sgdstab_config *cfg,
                        sgdstab_critical *out, sgdstab_error *err)
{
    memset(out, 0, sizeof *out);
    out->batch = cfg->batch;
    double a, b;
    int st = prepare(s, cfg, 0, &a, &b, err);
    if (st)
        return st;
    out->converged = 1;
    const sgdstab_optimizer *o = &cfg->optimizer;
    if (s->red->hessian_min < 0) {
        out->kind = SGDSTAB_NOT_A_MINIMUM;
        return SGDSTAB_OK;
    }
    if (sgdstab_undamped_directions(s->red, cfg)) {
        /* 𝒜₁ is singular: with b = 0 plain GD, η* = 2/λmax(H); with batch
         * noise the undamped directions make every η > 0 unstable. */
        if (b == 0) {
            out->lr_critical = out->lr_lower = out->lr_upper =
                sgdstab_lr_mean_limit(s->red, cfg);
            out->threshold_band = 16 * DBL_EPSILON;
        } else {
            out->kind = SGDSTAB_DEGENERATE;
        }
        return SGDSTAB_OK;
    }
    /* κ = 1 − ηλ (AdamW) and Nesterov's look-ahead make the condition at
     * z = 1 non-affine in 1/η: a root find. */
    if (o->nesterov || sgdstab_optimizer_decoupled_decay(o))
        return sgdstab_lifted_critical(s->m, s->red, cfg, b, out, err);
    const double beta = o->momentum, beta2 = beta * beta;
    double gamma[2] = {(1 - beta) / (1 + beta), -beta / (1 - beta2)};
    const double gain = sgdstab_optimizer_buffer_gain(o) * cfg->loss_scale;
    sgdstab_eig_result res;
    if ((st = solve_checked(s, FAMILY_CRITICAL, cfg->sampling, gamma, b, 0,
                            &res, NULL, err)))
        return st;
    /* λmax(K) ≥ ⟨E_11, K E_11⟩ = (1 − β)h_1/(2(1 + β)) > 0: η* is finite. */
    double rounding = rounding_rel(s);
    out->lr_critical = (1 - beta) / (gain * res.value);
    out->rel_accuracy = res.error_estimate / res.value;
    out->rel_residual = res.residual / res.value;
    out->lr_upper = out->lr_critical * (1 + rounding);
    out->threshold_band = 2 * (out->rel_accuracy + critical_tol(s)) +
                          rounding;
    out->lr_lower = out->lr_critical / (1 + out->rel_residual) *
                    (1 - rounding);
    out->matvecs = res.matvecs;
    out->converged = res.converged;
    return SGDSTAB_OK;
}

/* Batch sizes in decreasing order, i.e. b increasing from full-batch GD
 * (b = 0, where the top eigenvector of K is E_11, which the basis starts
 * with): the top eigenvector moves smoothly with b, so each solve starts
 * from its neighbour's, close to its own, and the curve needs few
 * applications of 𝒩.  With momentum the order is reversed: the diagonal
 * part of K_β shrinks by (1 − β)/(1 + β), so already just below B = n the
 * noise decides the top eigenvector, far from E_11, and a solve there,
 * where the top of the spectrum clusters, would start from scratch; from
 * B = 1 the noise's top eigenvector is found as one η* finds it and then
 * moves smoothly towards B = n (measured: 36 applications for 50 sizes
 * against 105 the other way, at n = 1000, r = 600, β = 0.9). */
typedef struct {
    size_t batch, index;
} batch_slot;

static int larger_batch_first(const void *x, const void *y)
{
    const batch_slot *a = x, *b = y;
    if (a->batch != b->batch)
        return a->batch > b->batch ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

int sgdstab_critical_curve(sgdstab_stability *s, const sgdstab_config *cfg,
                           const size_t *batches, size_t m,
                           sgdstab_critical *out, sgdstab_error *err)
{
    sgdstab_config at = *cfg;
    batch_slot *order = malloc((m ? m : 1) * sizeof *order);
    if (!order)
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory");
    for (size_t i = 0; i < m; i++)
        order[i] = (batch_slot){batches[i], i};
    qsort(order, m, sizeof *order, larger_batch_first);
    if (cfg->optimizer.momentum > 0)  /* smaller batches first (above) */
        for (size_t i = 0; i < m / 2; i++) {
            batch_slot t = order[i];
            order[i] = order[m - 1 - i];
            order[m - 1 - i] = t;
        }
    int st = SGDSTAB_OK;
    for (size_t i = 0; i < m && !st; i++) {
        at.batch = order[i].batch;
        st = sgdstab_critical_lr(s, &at, &out[order[i].index], err);
    }
    free(order);
    return st;
}

int sgdstab_analyze(sgdstab_stability *s, const sgdstab_config *cfg,
                    sgdstab_analysis *out, double *S, sgdstab_error *err)
{
    memset(out, 0, sizeof *out);
    out->config = *cfg;
    int st = prepare(s, cfg, SGDSTAB_USES_LR, &out->a, &out->b, err);
    if (st || (st = sgdstab_critical_lr(s, cfg, &out->critical, err)) ||
        (st = sgdstab_spectral_radius(s, cfg, &out->critical, &out->radius, S,
                                      err)))
        return st;
    out->matvecs = out->critical.matvecs + out->radius.matvecs;
    out->stable = out->critical.kind == SGDSTAB_MINIMUM_OK &&
                  cfg->lr <= out->critical.lr_critical;
    out->verdict = sgdstab_verdict_at(&out->critical, cfg->lr);
    sgdstab_escape_rates(out->radius.rho, s->red->n, cfg->batch,
                         &out->escape_rate_per_step,
                         &out->escape_rate_per_epoch);
    double lrho = out->escape_rate_per_step;
    out->rms_efold_steps = lrho != 0 ? 2 / fabs(lrho) : INFINITY;
    out->lr_critical_mean = sgdstab_lr_mean_limit(s->red, cfg);
    out->null_decay_rate = sgdstab_null_decay_rate(s->red, cfg);
    double sq = 0, c = cfg->loss_scale;
    for (size_t j = 0; j < s->r; j++)
        sq += s->red->lambda[j] * s->red->lambda[j];
    out->sharpness = c * sgdstab_reduced_hessian_max(s->red);
    out->hessian_frobenius = c * sqrt(sq);
    out->hessian_trace = c * sgdstab_reduced_hessian_trace(s->red);
    return SGDSTAB_OK;
}
