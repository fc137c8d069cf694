/* One case of a run spec: its minimum (synthesized, or the spec's problem
 * file), η*(B) with the theory's bounds, the verify rows, the phase
 * diagram and the Monte Carlo experiments, computed into a
 * run_case_result. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../output.h"
#include "../report.h"
#include "results.h"
#include "../exit_status.h"
#include "sgdstab/moments.h"
#include "sgdstab/plan.h"

typedef struct {
    sgdstab_synth *syn;        /* a synthesized case's minimum */
    sgdstab_problem *prob;     /* its problem (NULL: the source's file) */
    sgdstab_reduced *red;      /* the case's own reduced form (NULL: the
                                  source's) */
    cli_session ses;           /* the problem and reduced form in use, the
                                  spec's sampling and the loss scale */
    sgdstab_theory th;
} run_case;

static void case_free(run_case *rc)
{
    sgdstab_stability_free(rc->ses.stab);
    sgdstab_reduced_free(rc->red);
    sgdstab_problem_free(rc->prob);
    sgdstab_synth_free(rc->syn);
    memset(rc, 0, sizeof *rc);
}

/* The case's problem: synthesized from par, or the source's file. */
static int case_problem(const run_source *src,
                        const sgdstab_synth_params *par, run_case *rc,
                        sgdstab_error *err)
{
    int st = SGDSTAB_OK;
    if (src->prob)
        rc->ses.prob = src->prob;
    else if (!(st = sgdstab_synth_generate(par, &rc->syn, err)) &&
             !(st = sgdstab_synth_problem(rc->syn, &rc->prob, err)))
        rc->ses.prob = rc->prob;
    return st;
}

/* Its reduced form for the case's configuration: the file's, when that is
 * what sgdstab_reduce_for makes for it (no weight decay), else its own. */
static int case_reduced(const run_source *src, run_case *rc,
                        sgdstab_error *err)
{
    sgdstab_error other;
    if (src->red && !sgdstab_view_check(src->red, &rc->ses.cfg, &other)) {
        rc->ses.red = src->red;
        return SGDSTAB_OK;
    }
    int st = sgdstab_reduce_for(rc->ses.prob, NULL, &rc->ses.cfg, &rc->red,
                                err);
    rc->ses.red = rc->red;
    return st;
}

static int case_setup(const run_spec *sp, const run_source *src,
                      const sgdstab_synth_params *par,
                      const sgdstab_optimizer *opt, size_t c, run_case *rc)
{
    sgdstab_error err;
    cli_session *ses = &rc->ses;
    memset(rc, 0, sizeof *rc);
    sgdstab_config_init(&ses->cfg);
    ses->cfg.sampling = sp->sampling;
    ses->cfg.optimizer = *opt;
    if (case_problem(src, par, rc, &err) ||
        sgdstab_loss_scale(src->loss_name, ses->prob->k,
                           &ses->cfg.loss_scale, &err) ||
        case_reduced(src, rc, &err) ||
        sgdstab_config_check(&ses->cfg, ses->red, 0, &err) ||
        !(ses->stab = sgdstab_stability_alloc_fit(ses->red, 2, 0, NULL,
                                                  &err)) ||
        sgdstab_plan_theory(ses->prob, ses->red, &ses->cfg, &rc->th, &err))
        goto fail;
    return EXIT_OK;
fail:
    case_free(rc);
    return run_spec_error(sp, "case %zu: %s", c, err.msg);
}

/* 2/λmax(H), the unit of the spec's relative learning rates and of the
 * tables' mean limit, whatever the optimizer. */
static double plain_mean_limit(const run_case *rc)
{
    sgdstab_config plain = rc->ses.cfg;
    sgdstab_optimizer_init(&plain.optimizer);
    return sgdstab_lr_mean_limit(rc->ses.red, &plain);
}

/* η*(B) at every batch size, with the bounds of the theory. */
static int critical_rows(const run_spec *sp, run_case *rc,
                         run_case_result *r, const size_t *batches,
                         size_t nb, sgdstab_critical *cr)
{
    sgdstab_error err;
    if (sgdstab_critical_curve(rc->ses.stab, &rc->ses.cfg, batches, nb, cr,
                               &err))
        return run_spec_error(sp, "case %zu: key 'batch': %s", r->index,
                              err.msg);
    if (!(r->critical = calloc(nb, sizeof *r->critical)))
        return run_spec_error(sp, "out of memory");
    r->ncritical = nb;
    r->nondecreasing = 1;
    const int lifted = sgdstab_optimizer_lifted(&rc->ses.cfg.optimizer) ||
                       rc->ses.cfg.optimizer.weight_decay > 0;
    for (size_t i = 0; i < nb; i++) {
        run_critical_row *row = &r->critical[i];
        double a;
        sgdstab_batch_coefficients(sp->sampling, rc->ses.prob->n, batches[i],
                                   &a, &row->b, NULL);
        sgdstab_theory_lr_bounds(&rc->th, a, row->b, &row->bounds);
        row->batch = batches[i];
        row->lr_critical = cr[i].lr_critical;
        row->rel_accuracy = cr[i].rel_accuracy;
        row->stable_sharpness = row->lr_critical *
                                rc->th.hessian_frobenius * sqrt(row->b);
        if (lifted) {  /* the theory's bounds are plain SGD's */
            row->bounds = (sgdstab_lr_bounds){row->bounds.mean, NAN, NAN,
                                              NAN, NAN};
            row->stable_sharpness = NAN;
        }
        /* Non-decreasing up to the solver's relative accuracy (1e-10). */
        if (i > 0 && cr[i].lr_critical < cr[i - 1].lr_critical * (1 - 1e-9))
            r->nondecreasing = 0;
    }
    return EXIT_OK;
}

/* One verify row; a failed theorem is reported at once. */
static int verify_row(const run_spec *sp, run_case *rc, run_case_result *r,
                      size_t batch, double lr, double factor)
{
    run_verify_row *row = &r->verify[r->nverify];
    sgdstab_error err;
    sgdstab_config at = rc->ses.cfg;
    at.lr = lr;
    at.batch = batch;
    if (sgdstab_verify(rc->ses.stab, &rc->th, &at, &row->v, &err))
        return run_spec_error(sp, "case %zu, B = %zu, lr = %g: %s", r->index,
                              batch, lr, err.msg);
    row->batch = batch;
    row->lr = lr;
    row->factor = factor;
    r->nverify++;
    for (size_t i = 0; i < row->v.nchecks; i++) {
        const sgdstab_check *ch = &row->v.checks[i];
        if (ch->theorem && !ch->holds)
            cli_data_error(
                "run", sp->path,
                "case %zu, B = %zu, lr = %.17g: "
                "THEOREM FAILS: %s (%s) -- this is a bug in sgdstab",
                r->index, batch, lr, ch->name, ch->description);
    }
    return EXIT_OK;
}

/* At every batch size, the spec's learning rates, then its multiples of
 * η*(B). */
static int verify_rows(const run_spec *sp, run_case *rc, run_case_result *r)
{
    size_t nb = r->ncritical, per = sp->nlr + sp->nfactor;
    if (!(r->verify = calloc(nb * per, sizeof *r->verify)))
        return run_spec_error(sp, "out of memory");
    int st = EXIT_OK;
    for (size_t i = 0; i < nb && !st; i++) {
        const run_critical_row *cr = &r->critical[i];
        for (size_t j = 0; j < sp->nlr && !st; j++)
            st = verify_row(sp, rc, r, cr->batch, sp->lr[j],
                            sp->lr[j] / cr->lr_critical);
        for (size_t j = 0; j < sp->nfactor && !st; j++)
            st = verify_row(sp, rc, r, cr->batch,
                            sp->factor[j] * cr->lr_critical, sp->factor[j]);
    }
    return st;
}

/* The phase diagram's files, phase[-c].csv, phase-boundary[-c].csv and
 * phase[-c].png (the suffix only when there are several cases). */
static int phase_files(const run_spec *sp, const run_context *ctx,
                       run_case *rc, run_case_result *r, const size_t *batches,
                       const sgdstab_phase_boundary *bd,
                       const sgdstab_phase_point *grid, const double *lrs)
{
    run_phase_result *ph = r->phase;
    size_t nb = r->ncritical, nl = sp->phase.nl;
    char suffix[32] = "", paths[3][4200], title[512], name[128];
    if (sp->ncases > 1)
        snprintf(suffix, sizeof suffix, "-%zu", r->index);
    snprintf(ph->grid_csv, sizeof ph->grid_csv, "phase%s.csv", suffix);
    snprintf(ph->boundary_csv, sizeof ph->boundary_csv,
             "phase-boundary%s.csv", suffix);
    snprintf(ph->plot, sizeof ph->plot, "phase%s.png", suffix);
    const char *names[] = {ph->grid_csv, ph->boundary_csv, ph->plot};
    for (int i = 0; i < 3; i++)
        snprintf(paths[i], sizeof paths[i], "%s/%s", ctx->dir, names[i]);
    snprintf(name, sizeof name, "%s, case %zu (%s)", ctx->name, r->index,
             run_spec_origin(sp));
    cli_phase_title(title, sizeof title, name, r->n, r->p, sp->sampling,
                    ctx->source->loss);
    /* The theory's curves are plain SGD's. */
    const int lifted = sgdstab_optimizer_lifted(&rc->ses.cfg.optimizer);
    cli_plot_options po = {.style = sp->phase.style,
                           .width = ctx->width ? ctx->width : 960,
                           .height = ctx->height ? ctx->height : 720,
                           .log_batch = cli_log_spaced_sizes(batches, nb),
                           .log_lr = sp->phase.log_spaced,
                           .sampling = sp->sampling, .n = r->n,
                           .lifted = lifted,
                           .theory = lifted ? NULL : &rc->th,
                           .lyapunov = sp->phase.lyapunov};
    if (!po.style.title)
        po.style.title = title;
    cli_phase_files pf;
    int st;
    if ((st = cli_phase_files_open("run", paths[0], paths[1], paths[2], &pf)) ||
        (st = cli_phase_files_write("run", &pf, &po, bd, nb, grid, lrs, nl)))
        return st;
    ph->batches = nb;
    ph->lrs = nl;
    ph->lr_min = lrs[0];
    ph->lr_max = lrs[nl - 1];
    for (size_t i = 0; i < nb * nl; i++)
        ph->stable_points += grid[i].stable != 0;
    ph->lyapunov = sp->phase.lyapunov;
    ph->band_min = INFINITY;
    ph->band_max = -INFINITY;
    for (size_t i = 0; i < nb && ph->lyapunov; i++) {
        double crit = cli_phase_boundary_lr(&bd[i]);
        if (bd[i].crossing != SGDSTAB_CROSSING_INSIDE || !(crit > 0))
            continue;
        ph->lyapunov_inside++;
        ph->band_min = fmin(ph->band_min, bd[i].lr_lyapunov / crit);
        ph->band_max = fmax(ph->band_max, bd[i].lr_lyapunov / crit);
    }
    return EXIT_OK;
}

/* The phase diagram of the case over the spec's batch sizes. */
static int phase_case(const run_spec *sp, const run_context *ctx,
                      run_case *rc, run_case_result *r, const size_t *batches)
{
    size_t nb = r->ncritical, nl = sp->phase.nl;
    double unit = sp->phase.relative
                      ? plain_mean_limit(rc) : 1;
    double *lrs = malloc(nl * sizeof *lrs);
    sgdstab_phase_boundary *bd = calloc(nb, sizeof *bd);
    sgdstab_phase_point *grid = calloc(nb * nl, sizeof *grid);
    int st = EXIT_OK;
    sgdstab_error err;
    if (!lrs || !bd || !grid || !(r->phase = calloc(1, sizeof *r->phase))) {
        st = run_spec_error(sp, "out of memory");
    } else if (!(unit > 0) || !isfinite(unit)) {
        st = run_spec_error(sp, "case %zu: key 'phase.lr_unit': "
                            "2/lambda_max(H) is not a positive number here",
                            r->index);
    } else {
        for (size_t j = 0; j < nl; j++)
            lrs[j] = unit * sp->phase.lr[j];
        const sgdstab_phase_axes ax = {.batches = batches, .nb = nb,
                                       .lrs = lrs, .nl = nl};
        if ((sp->phase.lyapunov &&
             sgdstab_phase_lyapunov_check(rc->ses.red, &rc->ses.cfg, &ax,
                                          &sp->phase.lyap, &err)) ||
            sgdstab_phase_compute(rc->ses.stab, &rc->th, &rc->ses.cfg, &ax,
                                  bd, grid, &err) ||
            (sp->phase.lyapunov &&
             sgdstab_phase_lyapunov(rc->ses.red, rc->ses.prob, &rc->ses.cfg,
                                    &ax, &sp->phase.lyap, bd, grid, &err)))
            st = run_spec_error(sp, "case %zu: %s", r->index, err.msg);
        else
            st = phase_files(sp, ctx, rc, r, batches, bd, grid, lrs);
    }
    free(lrs);
    free(bd);
    free(grid);
    return st;
}

/* The largest training residual |r_io| of the file's R; NAN without R. */
static double largest_residual(const sgdstab_problem *prob)
{
    double m = prob->R ? 0 : NAN;
    for (size_t i = 0; prob->R && i < prob->n * prob->k; i++)
        m = fmax(m, fabs(prob->R[i]));
    return m;
}

/* What describes the case's minimum: the synthetic one's metadata or the
 * file's input, its sizes and the theory's numbers. */
static void case_summary(run_case *rc, run_case_result *r)
{
    const sgdstab_problem *prob = rc->ses.prob;
    if (rc->syn) {
        r->meta = sgdstab_synth_meta_json(rc->syn, NULL);
        r->d = rc->syn->d;
        r->residual = rc->syn->residual;
    } else {
        r->input = cli_input_name(prob);
        r->residual = largest_residual(prob);
    }
    r->n = prob->n;
    r->k = prob->k;
    r->p = prob->p;
    r->rank = rc->ses.red->rank_J;
    r->th = rc->th;
    r->lr_critical_mean = plain_mean_limit(rc);
}

int run_case_compute(const run_spec *sp, const run_context *ctx, size_t c,
                     run_case_result *r)
{
    sgdstab_synth_params par;
    memset(r, 0, sizeof *r);
    r->index = c;
    run_spec_case(sp, c, &par, &r->optimizer, r->value);
    if (ctx->source->file_optimizer)
        r->optimizer = ctx->source->optimizer;
    run_case rc;
    int st = case_setup(sp, ctx->source, &par, &r->optimizer, c, &rc);
    if (st)
        return st;
    size_t *batches = NULL, nb = 0;
    sgdstab_critical *cr = NULL;
    if ((st = run_spec_batches(sp, rc.ses.prob->n, &batches, &nb)))
        goto done;
    if (!(cr = malloc(nb * sizeof *cr))) {
        st = run_spec_error(sp, "out of memory");
        goto done;
    }
    if ((st = critical_rows(sp, &rc, r, batches, nb, cr)))
        goto done;
    case_summary(&rc, r);
    if (sp->nlr + sp->nfactor)
        st = verify_rows(sp, &rc, r);
    if (!st && sp->phase.lr)
        st = phase_case(sp, ctx, &rc, r, batches);
    if (!st && sp->epoch.on)
        st = run_epoch_compute(sp, &rc.ses, r, cr);
    if (!st && sp->exit.on)
        st = run_exit_compute(sp, &rc.ses, r);
done:
    free(batches);
    free(cr);
    case_free(&rc);
    return st;
}

void run_case_result_free(run_case_result *r)
{
    free(r->meta);
    free(r->critical);
    free(r->verify);
    free(r->phase);
    for (size_t i = 0; i < r->nepoch; i++)
        free(r->epoch[i].rates);
    free(r->epoch);
    for (size_t i = 0; i < r->nexit; i++)
        free(r->exit[i].points);
    free(r->exit);
    memset(r, 0, sizeof *r);
}
