/* sgdstab simulate --epoch / --threshold: the one-epoch second-moment map
 * estimated from sampled epochs (epoch.h), beside the exact engine. */
#include <math.h>
#include <stdio.h>

#include "cmd_simulate.h"
#include "exit_status.h"
#include "options.h"
#include "output.h"
#include "report.h"
#include "session.h"
#include "sgdstab/config.h"
#include "sgdstab/epoch.h"
#include "sgdstab/simulate.h"
#include "sgdstab/stability.h"
#include "sgdstab/status.h"

typedef struct {
    sgdstab_epoch_estimate est;     /* at the --lr or at the threshold */
    sgdstab_critical cr;            /* the exact eta*(B), with --threshold */
    double lr_th, lr_se;            /* the threshold and its error */
    sgdstab_sampling fresh;         /* the exact engine's sampling */
    double rho, rate;               /* exact, with --compare or --threshold */
} epoch_result;

static int estimate(const cli_args *a, const cli_session *ses,
                    sim_request *rq, epoch_result *r)
{
    sgdstab_sim_options *o = &rq->o;
    sgdstab_error err;
    sgdstab_config exact = simulate_fresh_batches(&o->config);
    r->fresh = exact.sampling;
    r->lr_th = r->lr_se = r->rho = r->rate = NAN;
    if (rq->threshold && sgdstab_critical_lr(ses->stab, &exact, &r->cr, &err))
        return cli_report_file(a->file, &err);
    if (rq->threshold) {
        if (!a->have_lr && r->cr.kind != SGDSTAB_MINIMUM_OK)
            return cli_usage_error(a->cmd, "--threshold: the exact engine "
                                   "finds no stable learning rate to start "
                                   "from (not a minimum?); give --lr");
        o->config.lr = a->have_lr ? a->lr : r->cr.lr_critical;
    }
    if (sgdstab_epoch_check(ses->red, o, &err) ||
        sgdstab_work_check(sgdstab_epoch_work(ses->red, o, rq->threshold),
                           SGDSTAB_EPOCH_WORK_MAX,
                           rq->threshold ? "--threshold with these --runs"
                                         : "--epoch with these --runs", &err))
        return cli_report_file(a->file, &err);
    simulate_note_work(rq, sgdstab_epoch_work(ses->red, o, rq->threshold));
    if (rq->threshold) {
        if (sgdstab_epoch_threshold(ses->red, o, &r->lr_th, &r->lr_se, &err))
            return cli_report_file(a->file, &err);
        o->config.lr = r->lr_th;
    }
    if (sgdstab_epoch_estimate_at(ses->red, o, &r->est, &err))
        return cli_report_file(a->file, &err);
    if (rq->compare || rq->threshold) {
        sgdstab_radius rad;
        exact.lr = o->config.lr;
        if (sgdstab_spectral_radius(ses->stab, &exact,
                                    rq->threshold ? &r->cr : NULL, &rad, NULL,
                                    &err))
            return cli_report_file(a->file, &err);
        r->rho = rad.rho;
        r->rate = log(r->rho);
    }
    return EXIT_OK;
}

static int print_json(const cli_args *a, const cli_session *ses,
                      const sim_request *rq, const epoch_result *r)
{
    cJSON *j = simulate_json_head(a, ses, rq);
    cli_json_size(j, "epoch_steps", r->est.steps);
    if (rq->threshold) {
        cli_json_number(j, "lr_threshold", r->lr_th);
        cli_json_number(j, "lr_threshold_stderr", r->lr_se);
        cli_json_number(j, "exact_lr_critical", r->cr.lr_critical);
    }
    cli_json_number(j, "lr", rq->o.config.lr);
    cli_json_number(j, "epoch_spectral_radius", r->est.radius);
    cli_json_number(j, "epoch_spectral_radius_stderr", r->est.radius_stderr);
    cli_json_number(j, "rate_per_step", r->est.rate_per_step);
    cli_json_number(j, "rate_stderr", r->est.rate_stderr);
    if (rq->compare || rq->threshold) {
        cJSON_AddStringToObject(j, "exact_sampling",
                                sgdstab_sampling_name(r->fresh));
        cli_json_number(j, "exact_epoch_spectral_radius",
                        pow(r->rho, (double)r->est.steps));
        cli_json_number(j, "exact_rate_per_step", r->rate);
    }
    return cli_json_print(j);
}

static void print_text(const cli_args *a, const sim_request *rq,
                       const epoch_result *r)
{
    const sgdstab_sim_options *o = &rq->o;
    const sgdstab_epoch_estimate *est = &r->est;
    printf("%s: one-epoch second-moment map of SGD with batch %zu (sampling "
           "%s), loss %s, from %zu sampled epochs of %zu steps (seed %lu)\n",
           a->file, o->config.batch, rq->sampling_name, a->loss, o->runs,
           est->steps, o->seed);
    if (rq->threshold)
        printf("threshold: rho_epoch = 1 at lr %.10g (standard error %.2g); "
               "exact eta*(B) for fresh batches (sampling %s) %.10g, ratio "
               "%.6g\n", r->lr_th, r->lr_se, sgdstab_sampling_name(r->fresh),
               r->cr.lr_critical, r->lr_th / r->cr.lr_critical);
    printf("at lr %.10g: rho_epoch = %.10g (standard error %.2g), growth rate "
           "of E|delta|^2 %.6g per step (standard error %.2g)\n", o->config.lr,
           est->radius, est->radius_stderr, est->rate_per_step,
           est->rate_stderr);
    if (rq->compare || rq->threshold)
        printf("exact for fresh batches (sampling %s): rho^%zu = %.10g, ln rho "
               "= %.6g per step\n", sgdstab_sampling_name(r->fresh),
               est->steps, pow(r->rho, (double)est->steps), r->rate);
}

int simulate_epoch(cli_args *a, sim_request *rq, size_t batch)
{
    cli_session ses;
    unsigned uses = SGDSTAB_USES_BATCH | (rq->threshold ? 0 : SGDSTAB_USES_LR);
    int status = cli_session_open(a, batch, uses, &ses);
    if (status)
        return status;
    rq->o.config = ses.cfg;
    const sgdstab_optimizer *op = &ses.cfg.optimizer;
    if (sgdstab_optimizer_lifted(op) || op->weight_decay > 0 ||
        sgdstab_optimizer_preconditioned(op)) {
        cli_session_close(&ses);
        return cli_usage_error(a->cmd, "--epoch and --threshold are for "
                               "plain SGD (the file's optimizer is not: "
                               "pass --optimizer sgd)");
    }
    epoch_result r = {0};
    status = estimate(a, &ses, rq, &r);
    if (!status && a->json)
        status = print_json(a, &ses, rq, &r);
    else if (!status)
        print_text(a, rq, &r);
    cli_session_close(&ses);
    return status;
}
