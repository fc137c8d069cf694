/* report.md of `sgdstab run`: what was run, how to run it again, the
 * findings and a table per case, then the Monte Carlo experiments. */
#include <math.h>
#include <string.h>

#include "write.h"
#include "../output.h"

/* A number as the report shows it: "nan" for anything not finite. */
static double shown(double x)
{
    return isfinite(x) ? x : NAN;
}

/* An upper bound for the report: +∞ where there is none, nan where it does
 * not apply. */
static const char *bound_text(double x, char *buf, size_t size)
{
    if (isnan(x))
        return "nan";
    if (!isfinite(x))
        return "∞";
    snprintf(buf, size, "%.6g", x);
    return buf;
}

/* What the report's columns mean for the spec's sampling: b, the
 * batch-noise coefficient, is what the Wu–Wang–Su quantity depends on. */
static void columns_note(const run_spec *sp, FILE *f)
{
    static const char *const B_TEXT[] = {
        [SGDSTAB_SAMPLING_WITH] = "b = 1/B",
        [SGDSTAB_SAMPLING_WITHOUT] = "b = (n − B)/(B(n − 1))",
        [SGDSTAB_SAMPLING_BERNOULLI] = "b = 1/B − 1/n"};
    fprintf(f, "\nColumns: MM top and MM trace are the two "
            "Mulayoff–Michaeli upper bounds on η\\*, WWS the Wu–Wang–Su "
            "bound 1/(‖H‖_F √(b μ_min)), with b the batch-noise coefficient "
            "of the spec's sampling (`%s`: %s). η\\*·‖H‖_F·√b is the "
            "stable sharpness that bound keeps at or below 1/√μ_min (η\\* "
            "≤ WWS exactly when it is); %s. It stays bounded if their claim "
            "of size independence holds.\n",
            sgdstab_sampling_name(sp->sampling), B_TEXT[sp->sampling],
            sp->sampling == SGDSTAB_SAMPLING_WITH
                ? "with replacement it is η\\*·‖H‖_F/√B"
                : "it is not η\\*·‖H‖_F/√B, the form for sampling with "
                  "replacement (b = 1/B); it is 0 where b = 0 (B = n)");
}

/* The table's rows of one case: at most 6 batch sizes, spread evenly,
 * the last always among them. */
static void case_table_rows(const run_spec *sp, const run_case_result *r,
                            FILE *f)
{
    size_t m = r->ncritical, stride = m > 6 ? (m + 5) / 6 : 1;
    for (size_t i = 0; i < m; i++) {
        const run_critical_row *row = &r->critical[i];
        char wws[32];
        if (i % stride && i + 1 != m)
            continue;
        fprintf(f, "| %zu |", r->index);
        for (size_t ax = 0; ax < sp->naxes; ax++) {
            if (cJSON_IsString(r->value[ax]))
                fprintf(f, " %s |", r->value[ax]->valuestring);
            else
                fprintf(f, " %.6g |", r->value[ax]->valuedouble);
        }
        fprintf(f, " %zu | %s | %.4g | %.4g | %.4g | %zu | %.6g | %.6g | "
                "%.4g | %.6g | %.6g | %s |\n", r->n, cli_params(r->p).s,
                shown(r->th.sharpness), shown(r->th.hessian_frobenius),
                shown(r->th.alignment_min), row->batch,
                shown(row->lr_critical), shown(row->bounds.mean),
                shown(row->stable_sharpness),
                shown(row->bounds.mulayoff_michaeli_top),
                shown(row->bounds.mulayoff_michaeli_trace),
                bound_text(row->bounds.wu_wang_su, wws, sizeof wws));
    }
}

static void case_table(const run_spec *sp, const run_results *res, FILE *f)
{
    fputs("\n| case |", f);
    for (size_t ax = 0; ax < sp->naxes; ax++)
        fprintf(f, " %s |", sp->axis[ax].key);
    fputs(" n | p | λmax(H) | ‖H‖_F | μ_min | B | η\\*(B) | 2/λmax | "
          "η\\*·‖H‖_F·√b | MM top | MM trace | WWS |\n|", f);
    for (size_t i = 0; i < 13 + sp->naxes; i++)
        fputs("---|", f);
    fputc('\n', f);
    for (size_t c = 0; c < res->ncases; c++)
        case_table_rows(sp, &res->cases[c], f);
}

static void phase_paragraphs(const run_results *res, FILE *f)
{
    for (size_t c = 0; c < res->ncases; c++) {
        const run_case_result *r = &res->cases[c];
        const run_phase_result *ph = r->phase;
        if (!ph)
            continue;
        fprintf(f, "\nPhase diagram of case %zu (`%s`, tables `%s` and "
                "`%s`): %zu of %zu grid points stable, learning rates "
                "%.4g to %.4g.\n\n![phase diagram, case %zu](%s)\n",
                r->index, ph->plot, ph->grid_csv, ph->boundary_csv,
                ph->stable_points, ph->batches * ph->lrs, shown(ph->lr_min),
                shown(ph->lr_max), r->index, ph->plot);
        if (ph->lyapunov && ph->lyapunov_inside)
            fprintf(f, "\nThe dashed curve with open circles is the Monte "
                    "Carlo boundary η_L(B) where the top Lyapunov exponent "
                    "λ₁ of the random product turns positive (`lr_lyapunov` "
                    "in `%s`): inside the grid for %zu of %zu batch sizes, "
                    "at %.3g to %.3g times η\\*(B). Between η\\*(B) and "
                    "η_L(B) the mean square grows while almost every run "
                    "contracts.\n", ph->boundary_csv,
                    ph->lyapunov_inside, ph->batches, ph->band_min,
                    ph->band_max);
        else if (ph->lyapunov)
            fprintf(f, "\nThe Monte Carlo boundary λ₁ = 0 lies outside the "
                    "grid at every batch size (`lyapunov_crossing` in "
                    "`%s`).\n", ph->boundary_csv);
    }
}

/* Estimated rates of the spec's own sampling more than 3 standard errors
 * from the exact ln ρ, of all such rates. */
static void rate_checks(const run_spec *sp, const run_results *res,
                        size_t *failed, size_t *checks)
{
    *failed = *checks = 0;
    for (size_t c = 0; c < res->ncases; c++)
        for (size_t i = 0; i < res->cases[c].nepoch; i++) {
            const run_epoch_row *e = &res->cases[c].epoch[i];
            if (sp->epoch.sampling[e->sampling] != sp->sampling)
                continue;
            for (size_t k = 0; k < sp->epoch.nfactor; k++) {
                ++*checks;
                *failed += !(fabs(e->rates[k].z) <= 3);
            }
        }
}

static void epoch_section(const run_spec *sp, const run_results *res, FILE *f)
{
    const run_epoch_spec *ep = &sp->epoch;
    fprintf(f, "\n## Reshuffling and fresh batches: the one-epoch map\n\n"
            "For every batch size the one-epoch second-moment map was "
            "estimated from %zu sampled epochs (seed %lu) and the "
            "learning rate where its spectral radius crosses 1 located "
            "(`sgdstab simulate --threshold`), beside the exact η\\*(B) "
            "of fresh batches (sampling `%s`). Table `epoch-threshold."
            "csv`%s, picture `epoch.png`.\n\n![thresholds](epoch.png)\n\n",
            ep->runs, ep->seed, sgdstab_sampling_name(sp->sampling),
            ep->nfactor ? ", rates at multiples of η\\*(B) in "
                          "`epoch-rate.csv`" : "");
    if (ep->nfactor) {
        size_t failed, checks;
        rate_checks(sp, res, &failed, &checks);
        fprintf(f, "Check of the estimator on fresh batches, whose rate "
                "is known exactly: %zu of %zu estimated rates in "
                "`epoch-rate.csv` are more than 3 standard errors from "
                "ln ρ (column `z_vs_exact`). Far above the threshold "
                "with long epochs (B ≪ n) the product of an epoch's "
                "factors is heavy-tailed, and the estimate falls short of "
                "the true rate by more than its error; reshuffled rates "
                "at those learning rates share the bias. The thresholds "
                "below are not affected: there ρ = 1.\n\n", failed, checks);
    }
    fprintf(f, "| case | B | sampling | threshold | ± s.e. | exact "
            "η\\*(B) | ratio | ± s.e. |\n|---|---|---|---|---|---|---|---|"
            "\n");
    for (size_t c = 0; c < res->ncases; c++)
        for (size_t i = 0; i < res->cases[c].nepoch; i++) {
            const run_epoch_row *e = &res->cases[c].epoch[i];
            fprintf(f, "| %zu | %zu | %s | %.6g | %.2g | %.6g | %.4f | %.4f "
                    "|\n", res->cases[c].index, e->batch,
                    sgdstab_sampling_name(ep->sampling[e->sampling]), e->lr,
                    e->lr_stderr, e->lr_critical, e->ratio, e->ratio_stderr);
        }
}

static void exit_section(const run_spec *sp, const run_results *res, FILE *f)
{
    const run_exit_spec *ex = &sp->exit;
    fprintf(f, "\n## Exit times of clipped SGD with heavy-tailed noise\n\n"
            "From δ_0 = 0, %zu runs per learning rate (seed %lu, at most "
            "%zu steps) ", ex->runs, ex->seed, ex->steps);
    fprintf(f, "of SGD whose step η(H_ξ δ − Z) is clipped to norm b, Z with "
            "a uniform direction and a Pareto magnitude of tail index α and "
            "scale %g; exit when |δ| > R = %g. ", ex->noise_scale, ex->radius);
    fprintf(f, "The exit time is the censored mean (total steps run / "
            "exits: the maximum-likelihood mean of memoryless exits, not "
            "biased by runs that never left); the slope of its logarithm "
            "against ln(1/η) is fitted by least squares weighted by the "
            "numbers of exits (points with fewer than %d exits left out) ",
            RUN_EXIT_MIN_EXITS);
    fputs("and set beside Wang–Oh–Rhee's prediction 1 + (α − 1)·l\\*, "
          "l\\* = ⌈R/b⌉ (the number of clipped jumps needed to leave), "
          "which holds as η → 0 and up to constants. Tables `exit.csv` "
          "(every point) and `exit-fit.csv`, picture `exit.png`.\n\n"
          "![exit times](exit.png)\n\n| case | B | α | b | l\\* | points | "
          "fitted slope | ± s.e. | χ²/dof | predicted |\n"
          "|---|---|---|---|---|---|---|---|---|---|\n", f);
    for (size_t c = 0; c < res->ncases; c++)
        for (size_t i = 0; i < res->cases[c].nexit; i++) {
            const run_exit_group *g = &res->cases[c].exit[i];
            const run_exit_series *es = &ex->series[g->series];
            fprintf(f, "| %zu | %zu | %g | %g | %zu | %zu | %.3f | %.3f | "
                    "%.3g | %g |\n", res->cases[c].index, g->batch, es->alpha,
                    es->clip, g->jumps, g->fit.points, g->fit.slope,
                    g->fit.slope_stderr, g->fit.chi2_per_dof,
                    g->predicted_slope);
        }
}

/* The stable sharpness of momentum in units of 2/η: η*(B)·λmax/2 at the
 * smallest and the largest batch size, beside 1 − β and 1 + β, the two
 * regimes reported for heavy-ball momentum (small batches: the noise of an
 * effective step η/(1 − β); large ones: the noise-free limit
 * 2(1 + β)/λmax); whether each holds is counted, not assumed. */
static void momentum_section(const run_spec *sp, const run_results *res,
                             FILE *f)
{
    /* With momentum the only swept key, its β = 0 case is plain SGD on the
     * same minimum: the small-B value against (1 − β) times its own. */
    const run_case_result *plain = NULL;
    for (size_t c = 0; c < res->ncases && sp->naxes == 1; c++)
        if (!strcmp(sp->axis[0].key, "momentum") &&
            res->cases[c].optimizer.momentum == 0)
            plain = &res->cases[c];
    size_t small_near = 0, large_exact = 0;
    for (size_t c = 0; c < res->ncases; c++) {
        const run_case_result *r = &res->cases[c];
        double beta = r->optimizer.momentum, half = 0.5 * r->th.sharpness;
        double lo = r->critical[0].lr_critical * half / (1 - beta);
        double hi = r->critical[r->ncritical - 1].lr_critical * half /
                    (1 + beta);
        small_near += lo > 0.8 && lo < 1.25;
        large_exact += fabs(hi - 1) <= 1e-6;
    }
    fprintf(f, "\n## Momentum: the stable sharpness at small and large "
            "batch sizes\n\nIn units of 2/η, the largest stable sharpness "
            "is η\\*(B)·λmax/2. Recent work reports two regimes for "
            "heavy-ball momentum β: about 1 − β at small batch sizes (the "
            "noise of the effective step η/(1 − β)) and 1 + β at large ones "
            "(the noise-free limit 2(1 + β)/λmax, exact at B = n without "
            "replacement). Measured here: the small-B value lies within "
            "[0.8, 1.25]·(1 − β) in %zu of %zu cases; the large-B value "
            "equals 1 + β to 1e-6 in %zu of %zu.%s\n\n| case | β | B | "
            "η\\*·λmax/2 | 1 − β | ratio |%s B | η\\*·λmax/2 | 1 + β | "
            "ratio |\n|---|---|---|---|---|---|---|---|---|---|%s\n",
            small_near, res->ncases, large_exact, res->ncases,
            plain ? " Column \"vs SGD\" is η\\*(B; β)/((1 − β)·η\\*(B; 0)) "
                    "at the smallest B, against the β = 0 case of the same "
                    "minimum." : "",
            plain ? " vs SGD |" : "", plain ? "---|" : "");
    for (size_t c = 0; c < res->ncases; c++) {
        const run_case_result *r = &res->cases[c];
        const run_critical_row *a = &r->critical[0];
        const run_critical_row *b = &r->critical[r->ncritical - 1];
        double beta = r->optimizer.momentum, half = 0.5 * r->th.sharpness;
        fprintf(f, "| %zu | %g | %zu | %.6g | %g | %.4f |", r->index, beta,
                a->batch, a->lr_critical * half, 1 - beta,
                a->lr_critical * half / (1 - beta));
        if (plain)
            fprintf(f, " %.4f |", a->lr_critical /
                                      ((1 - beta) *
                                       plain->critical[0].lr_critical));
        fprintf(f, " %zu | %.10g | %g | %.8f |\n", b->batch,
                b->lr_critical * half, 1 + beta,
                b->lr_critical * half / (1 + beta));
    }
}

/* Momentum or weight decay in some case. */
static int any_lifted(const run_results *res)
{
    for (size_t c = 0; c < res->ncases; c++)
        if (res->cases[c].optimizer.momentum != 0 ||
            res->cases[c].optimizer.weight_decay != 0)
            return 1;
    return 0;
}

void run_write_report(const run_spec *sp, const run_context *ctx,
                      const run_results *res, const char *command, FILE *f)
{
    int verify = sp->nlr + sp->nfactor > 0;
    fprintf(f, "# %s\n\n", ctx->name);
    if (sp->description)
        fprintf(f, "%s\n\n", sp->description);
    fprintf(f, "Regenerate with:\n\n```sh\n%s\n```\n\n", command);
    if (sp->problem)
        fprintf(f, "Problem file `%s` (input `%s`)", sp->problem,
                res->cases[0].input);
    else
        fprintf(f, "Family `%s`", sgdstab_synth_family_name(sp->base.family));
    fprintf(f, ", sampling `%s`, loss `%s`; %zu case%s. Tables: "
            "`cases.csv` (one row per case), `critical.csv` (η\\*(B) and its "
            "bounds)%s; everything also in `summary.json`.\n\n",
            sgdstab_sampling_name(sp->sampling), ctx->source->loss, sp->ncases,
            sp->ncases == 1 ? "" : "s",
            verify ? ", `verify.csv` (the `verify` checks)" : "");
    fprintf(f, "Findings:\n\n- η\\*(B) is non-decreasing in B in %s.\n",
            res->not_monotone ? "NOT every case (a bug: see summary.json)"
                              : "every case");
    if (verify)
        fprintf(f, "- Theorem checks failed: %zu%s.\n", res->theorems_failed,
                res->theorems_failed ? " (a bug in sgdstab)" : "");
    case_table(sp, res, f);
    columns_note(sp, f);
    if (any_lifted(res))
        momentum_section(sp, res, f);
    phase_paragraphs(res, f);
    if (sp->epoch.on)
        epoch_section(sp, res, f);
    if (sp->exit.on)
        exit_section(sp, res, f);
}
