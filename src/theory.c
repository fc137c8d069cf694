#include "sgdstab/theory.h"

#include "parallel.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sgdstab/moments.h"
#include "symeig.h"

static int theory_serial(const sgdstab_reduced *red, double loss_scale,
                         sgdstab_theory *out, sgdstab_error *err);

/* BLAS at one thread, so that the results do not depend on
 * OPENBLAS_NUM_THREADS (as for the factorization, reduce.c). */
int sgdstab_theory_compute(const sgdstab_reduced *red,
                           const sgdstab_config *cfg, sgdstab_theory *out,
                           sgdstab_error *err)
{
    memset(out, 0, sizeof *out);
    int st = sgdstab_config_check(cfg, red, 0, err);
    if (st)
        return st;
    int saved = par_blas_serial();
    st = theory_serial(red, cfg->loss_scale, out, err);
    par_blas_restore(saved);
    return st;
}

static int theory_serial(const sgdstab_reduced *red, double loss_scale,
                         sgdstab_theory *out, sgdstab_error *err)
{
    if (red->G)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "the theory checks need "
                            "H = G (an interpolating minimum); they do not "
                            "apply with a separately supplied H");
    if (red->r == 0)
        return sgdstab_fail(err, SGDSTAB_EVALUE, "J is zero: no theory "
                            "quantity is defined");
    const size_t r = red->r, n = red->n, k = red->k;
    const double c = loss_scale, *h = red->lambda;
    double *W = calloc(r * r, sizeof *W), *Sg = malloc(r * r * sizeof *Sg);
    sgdstab_moments *m = sgdstab_moments_alloc(red, err);
    int st = SGDSTAB_OK;
    if (!W || !Sg || !m) {
        st = m ? sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory for the "
                              "theory quantities (r = %zu)", r)
               : err ? err->status : SGDSTAB_ENOMEM;
        goto done;
    }
    double sq = 0, tr = 0;
    for (size_t j = 0; j < r; j++) {
        sq += h[j] * h[j];
        tr += h[j];
    }
    out->loss_scale = c;
    out->sharpness = c * h[0];  /* λ is descending (reduce.h) */
    out->hessian_frobenius = c * sqrt(sq);
    out->hessian_trace = c * tr;

    /* s² = λmax(Σ(I) − Λ²); (1/n) Σ ‖A_i‖_F² = tr Σ(I). */
    for (size_t j = 0; j < r; j++)
        W[j * r + j] = 1;
    sgdstab_moments_sigma(m, W, Sg);
    for (size_t j = 0; j < r; j++) {
        out->frobenius_moment += c * c * Sg[j * r + j];
        Sg[j * r + j] -= h[j] * h[j];
    }
    double s2;
    if ((st = symeig_range(r, Sg, r, r - 1, r - 1, &s2, NULL, err,
                           "the nonuniformity matrix of s^2")))
        goto done;
    out->nonuniformity = c * sqrt(fmax(s2, 0));

    /* μ_min = λmin(Λ^{-1/2}(Σ(Λ) − Λ³)Λ^{-1/2}) / ‖Λ‖_F² (scale-free). */
    for (size_t j = 0; j < r; j++)
        W[j * r + j] = h[j];
    sgdstab_moments_sigma(m, W, Sg);
    for (size_t j = 0; j < r; j++) {
        Sg[j * r + j] -= h[j] * h[j] * h[j];
        for (size_t l = 0; l < r; l++)
            Sg[j * r + l] /= sqrt(h[j] * h[l]);
    }
    double mu;
    if ((st = symeig_range(r, Sg, r, 0, 0, &mu, NULL, err,
                           "the alignment matrix of mu_min")))
        goto done;
    out->alignment_min = mu / sq;

    /* (1/n) Σ_i (vᵀA_iv)² with v = e_1: vᵀA_iv = ‖Φ_i e_1‖². */
    for (size_t i = 0; i < n; i++) {
        double q = 0;
        for (size_t a = 0; a < k; a++) {
            double x = red->phi[(i * k + a) * r];
            q += x * x;
        }
        out->top_moment += q * q;
    }
    out->top_moment *= c * c / (double)n;
done:
    sgdstab_moments_free(m);
    free(W);
    free(Sg);
    return st;
}

double sgdstab_alignment(const sgdstab_reduced *red, const double *S)
{
    const size_t r = red->r;
    const double *h = red->lambda;
    double *Sg = malloc(r * r * sizeof *Sg);
    sgdstab_moments *m = Sg ? sgdstab_moments_alloc(red, NULL) : NULL;
    if (!m) {
        free(Sg);
        return NAN;
    }
    sgdstab_moments_sigma(m, S, Sg);
    /* With G = Λ: tr(G Σ(S)) − tr(G·GSG) = Σ_j λ_j Σ(S)_jj − λ_j³ S_jj. */
    double num = 0, den = 0, sq = 0;
    for (size_t j = 0; j < r; j++) {
        num += h[j] * (Sg[j * r + j] - h[j] * h[j] * S[j * r + j]);
        den += h[j] * S[j * r + j];
        sq += h[j] * h[j];
    }
    sgdstab_moments_free(m);
    free(Sg);
    return den != 0 ? num / (den * sq) : NAN;
}

void sgdstab_theory_lr_bounds(const sgdstab_theory *th, double a, double b,
                              sgdstab_lr_bounds *out)
{
    const double hmax = th->sharpness, frob = th->hessian_frobenius;
    const double mu = th->alignment_min;
    out->mean = 2 / hmax;
    out->mulayoff_michaeli_top = 2 * hmax / (a * hmax * hmax +
                                             b * th->top_moment);
    out->mulayoff_michaeli_trace = 2 * th->hessian_trace /
                                   (a * frob * frob + b * th->frobenius_moment);
    out->wu_wang_su = b > 0 && mu > 0 ? 1 / (frob * sqrt(b * mu)) : INFINITY;
    out->wu_ma_e = b > 0 && th->nonuniformity > 0
                       ? 1 / (th->nonuniformity * sqrt(b)) : INFINITY;
}

/* μ at the top eigenmatrix S of 𝒯 (r×r symmetric, unit Frobenius norm;
 * destroyed), and whether alignment_top ≥ μ_min can be judged there.
 *
 * The theorem holds for positive semidefinite S, and the solver returns S up
 * to its accuracy (or, when ρ⊥ is multiple, any mix of eigenmatrices).  So
 * it is judged only when S is semidefinite up to −1e-6 (either sign), and
 * then μ is taken at its semidefinite part S₊ (eigenvalues clipped at 0),
 * where it is a theorem exactly.  μ is a ratio of terms of the order of
 * the curvature λ along S₊, computed from the A_i with an absolute rounding
 * error of order ε·λmax(G): when S₊ lives in directions with λ below
 * 1e-10·λmax (ρ⊥ ≈ 1 at a stable η: the slow modes of numerically flat
 * directions that the rank tolerance kept), rounding decides μ, and it is
 * reported but not judged. */
static double top_alignment(const sgdstab_reduced *red, double *S, int *judged)
{
    const size_t r = red->r;
    double *w = malloc(r * sizeof *w), *V = malloc(r * r * sizeof *V);
    *judged = 0;
    if (!w || !V || (memcpy(V, S, r * r * sizeof *V),
                     symeig_all(SYMEIG_DSYEVD, r, V, r, w, 1, NULL,
                                "the top eigenmatrix") != 0)) {
        free(w);
        free(V);
        return NAN;
    }
    double sign = w[r - 1] >= -w[0] ? 1 : -1;
    if (sign * w[0] < -1e-6 && sign * w[r - 1] > 1e-6) {
        free(w);
        free(V);
        return sgdstab_alignment(red, S);   /* indefinite: reported only */
    }
    /* S₊ = Σ_j max(sign·w_j, 0) v_j v_jᵀ: scale the columns of V by
     * sqrt(max(sign·w_j, 0)), then S₊ = V Vᵀ. */
    for (size_t i = 0; i < r; i++)
        for (size_t j = 0; j < r; j++)
            V[i * r + j] *= sqrt(fmax(sign * w[j], 0));
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)r, (int)r, 1, V,
                (int)r, 0, S, (int)r);
    double trace = 0, curved = 0, lmax = 0;
    for (size_t i = 0; i < r; i++) {
        for (size_t j = 0; j < i; j++)
            S[i * r + j] = S[j * r + i];
        trace += S[i * r + i];
        curved += red->lambda[i] * S[i * r + i];
        lmax = fmax(lmax, red->lambda[i]);
    }
    free(w);
    free(V);
    *judged = curved > 1e-10 * lmax * trace;
    return sgdstab_alignment(red, S);
}

/* Append a check.  It holds up to a slack of 1e-8 relative (the solvers give
 * η* to about 1e-10 and ρ⊥ to about 1e-11 relative, and the bounds are
 * rounded) plus abs_tol, for quantities known to an absolute accuracy. */
static void add_check(sgdstab_verification *v, const char *name,
                      const char *description, double value, double bound,
                      int upper, int theorem, double abs_tol)
{
    sgdstab_check *ch = &v->checks[v->nchecks++];
    double slack = 1e-8 * fmax(fabs(value), fabs(bound)) + abs_tol;
    *ch = (sgdstab_check){name, description, value, bound, upper, theorem,
                          upper ? value <= bound + slack
                                : value >= bound - slack,
                          upper ? value / bound : bound / value};
    if (theorem && !ch->holds)
        v->theorems_failed++;
}

static int verify_serial(sgdstab_stability *s, const sgdstab_theory *th,
                         const sgdstab_config *cfg, sgdstab_verification *out,
                         sgdstab_error *err);

/* The theorems of an optimizer with a buffer or weight decay (README,
 * Optimizers), in place of plain SGD's: batch noise only lowers η* below
 * the noise-free limit; ρ of the lifted map is 1 at η*; and the verdict
 * agrees with ρ's side of 1 outside the threshold band. */
static int optimizer_checks(sgdstab_stability *s, const sgdstab_config *cfg,
                            sgdstab_verification *out, sgdstab_error *err)
{
    const sgdstab_analysis *an = &out->analysis;
    const sgdstab_critical *cr = &an->critical;
    out->alignment_top = out->frobenius_bound = out->growth_bound = NAN;
    add_check(out, "noise_free_limit", "eta* <= the noise-free limit "
              "(eta* at full batch)", cr->lr_critical, an->lr_critical_mean,
              1, 1, 0);
    if (cr->kind != SGDSTAB_MINIMUM_OK || !(cr->lr_critical > 0))
        return SGDSTAB_OK;
    sgdstab_config at = *cfg;
    at.lr = cr->lr_critical;
    sgdstab_radius rad;
    int st = sgdstab_spectral_radius(s, &at, cr, &rad, NULL, err);
    if (st)
        return st;
    /* ρ moves by about |dρ/dη|·Δη; the band bounds Δη/η*. */
    double tol = 10 * (cr->threshold_band + rad.error_estimate);
    add_check(out, "radius_at_critical", "rho(eta*) <= 1 + tol",
              rad.rho, 1, 1, 1, tol);
    add_check(out, "radius_at_critical_low", "rho(eta*) >= 1 - tol",
              rad.rho, 1, 0, 1, tol);
    if (an->verdict != SGDSTAB_VERDICT_THRESHOLD)
        add_check(out, "verdict_radius", an->stable
                  ? "stable => rho <= 1" : "unstable => rho >= 1",
                  an->radius.rho, 1, an->stable, 1,
                  an->radius.error_estimate);
    return SGDSTAB_OK;
}

int sgdstab_verify(sgdstab_stability *s, const sgdstab_theory *th,
                   const sgdstab_config *cfg, sgdstab_verification *out,
                   sgdstab_error *err)
{
    int saved = par_blas_serial();
    int st = verify_serial(s, th, cfg, out, err);
    par_blas_restore(saved);
    return st;
}

/* The analysis at cfg, whose ρ⊥ solve also gives the top eigenmatrix, and
 * the alignment μ there. */
static int verify_serial(sgdstab_stability *s, const sgdstab_theory *th,
                         const sgdstab_config *cfg, sgdstab_verification *out,
                         sgdstab_error *err)
{
    memset(out, 0, sizeof *out);
    const sgdstab_reduced *red = sgdstab_stability_reduced(s);
    if (th->loss_scale != cfg->loss_scale)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "theory quantities computed "
                            "with loss scale %g, the configuration has %g",
                            th->loss_scale, cfg->loss_scale);
    double *S = malloc(red->r * red->r * sizeof *S);
    if (!S)
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory");
    int judged = 0;
    int st = sgdstab_analyze(s, cfg, &out->analysis, S, err);
    if (!st)
        out->alignment_top = top_alignment(red, S, &judged);
    free(S);
    if (st)
        return st;

    out->theory = *th;
    if (sgdstab_optimizer_lifted(&cfg->optimizer) ||
        cfg->optimizer.weight_decay > 0)
        return optimizer_checks(s, cfg, out, err);
    const sgdstab_analysis *an = &out->analysis;
    const double a = an->a, b = an->b, eta = cfg->lr, mu = th->alignment_min;
    const double hmax = th->sharpness, frob = th->hessian_frobenius;
    const double eta_star = an->critical.lr_critical, rho = an->radius.rho;
    out->frobenius_bound = b > 0 && mu > 0 ? 1 / (eta * sqrt(b * mu))
                                           : INFINITY;
    out->growth_bound = eta * eta * b * mu * frob * frob;

    sgdstab_lr_bounds lb;
    sgdstab_theory_lr_bounds(th, a, b, &lb);
    add_check(out, "mean_stability", "eta* <= 2/lambda_max(H)", eta_star,
              lb.mean, 1, 1, 0);
    add_check(out, "mulayoff_michaeli_top",
              "eta* <= 2 lambda_max / [a lambda_max^2 + (b/n) sum (v'A_i v)^2]",
              eta_star, lb.mulayoff_michaeli_top, 1, 1, 0);
    add_check(out, "mulayoff_michaeli_trace",
              "eta* <= 2 tr H / [a |H|_F^2 + (b/n) sum |A_i|_F^2]", eta_star,
              lb.mulayoff_michaeli_trace, 1, 1, 0);
    add_check(out, "wu_wang_su_lr", "eta* <= 1/(|H|_F sqrt(b mu_min))",
              eta_star, lb.wu_wang_su, 1, 1, 0);
    add_check(out, "wu_wang_su_frobenius",
              "stable => |H|_F <= 1/(eta sqrt(b mu_min))", frob,
              out->frobenius_bound, 1, an->stable, 0);
    add_check(out, "wu_wang_su_escape",
              "rho >= eta^2 b mu_min |H|_F^2 (escape rate >= its log)", rho,
              out->growth_bound, 0, 1,
              1e-10 * fmax(1, rho));
    add_check(out, "alignment_top", "mu(top eigenmatrix of T) >= mu_min",
              out->alignment_top, mu, 0, judged, 1e-10);
    add_check(out, "wu_ma_e_sharpness", "lambda_max(H) <= 2/eta", hmax,
              2 / eta, 1, 0, 0);
    add_check(out, "wu_ma_e_nonuniformity", "s <= 1/(eta sqrt(b))",
              th->nonuniformity, b > 0 ? 1 / (eta * sqrt(b)) : INFINITY, 1,
              0, 0);
    return SGDSTAB_OK;
}
