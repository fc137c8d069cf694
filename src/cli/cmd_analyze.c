/* sgdstab analyze FILE --lr η --batch B: can SGD stay, and how fast does it
 * leave? */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>

#include "commands.h"
#include "exit_status.h"
#include "options.h"
#include "output.h"
#include "report.h"
#include "session.h"
#include "sgdstab/config.h"
#include "sgdstab/problem.h"
#include "sgdstab/reduce.h"
#include "sgdstab/stability.h"
#include "sgdstab/status.h"

static const char ANALYZE_HELP[] =
    "Usage: sgdstab analyze FILE --lr ETA --batch B [--sampling S] [--json]\n"
    "                       [--hessian H.npy] [--loss L] [--rank-tol RTOL]\n"
    "                       [--negative-curvature TOL] [--max-memory SIZE]\n"
    "                       [--params P]\n"
    "                       [--optimizer O] [--momentum BETA] [--nesterov] ...\n"
    "\n"
    "Decide whether SGD with learning rate ETA and batch size B can stay at the\n"
    "minimum described by FILE (see 'sgdstab info --help' for the format), from\n"
    "the exact second-moment recursion of linearized SGD, S_{t+1} = T(S_t):\n"
    "\n"
    "  spectral radius rho   largest eigenvalue of T on the directions that\n"
    "                        move; E|delta_t|^2 grows (rho > 1) or shrinks\n"
    "                        (rho < 1) like rho^t\n"
    "  verdict               stable iff ETA <= eta*(B) (equivalently rho <= 1);\n"
    "                        at the threshold when ETA and eta*(B) agree\n"
    "                        within the accuracy reached\n"
    "  escape rate           ln rho per step and (n/B) ln rho per epoch; the\n"
    "                        RMS distance changes by e every 2/|ln rho| steps\n"
    "  eta*(B)               the critical learning rate: stable rates are\n"
    "                        exactly (0, eta*], from an exact eigenproblem\n"
    "  2/lambda_max(H)       the mean (first-moment, full-batch GD) limit\n"
    "\n"
    "Options:\n"
    "  --lr ETA          learning rate (required)\n"
    "  --batch B         batch size, 1 <= B <= n (required)\n"
    CLI_HELP_SAMPLING
    CLI_HELP_PROBLEM_OPTIONS
    CLI_HELP_OPTIMIZER_OPTIONS
    "  --json            one JSON object on stdout, keys: file n k p (null\n"
    "                    when not known) input (jacobian or gram) rank\n"
    "                    null_dim lr batch sampling loss loss_scale stable\n"
    "                    verdict (stable, unstable or threshold: |eta/eta* - 1|\n"
    "                    within the accuracy reached) not_a_minimum\n"
    "                    spectral_radius spectral_radius_residual\n"
    "                    spectral_radius_error_estimate converged\n"
    "                    escape_rate_per_step escape_rate_per_epoch\n"
    "                    rms_efold_steps lr_critical lr_critical_rel_accuracy\n"
    "                    lr_critical_lower lr_critical_upper (the residual\n"
    "                    interval, see README) lr_critical_mean sharpness\n"
    "                    hessian_frobenius hessian_trace operator_applications\n"
    "                    optimizer {kind description momentum dampening\n"
    "                    weight_decay beta2 eps nesterov preconditioned},\n"
    "                    null_space_decay_rate (with weight decay and r < p:\n"
    "                    ln of the per-step factor of E|delta|^2 there)\n"
    "                    negative_curvature_tolerance flat_negative_count\n"
    "                    flat_negative_min flat_moved_count flat_negative_steps\n"
    "                    residual_rms max_residual target_rms interpolating\n"
    "                    (from FILE's meta.json, see 'sgdstab info --help';\n"
    "                    null when it does not tell)\n"
    "  -h, --help        show this help\n"
    "\n"
    CLI_HELP_EXIT_STATUSES;

static const char *minimum_note(sgdstab_minimum_kind kind)
{
    switch (kind) {
    case SGDSTAB_NOT_A_MINIMUM:
        return "not a minimum: H has a negative eigenvalue, so (I - eta H) "
               "expands along it and SGD leaves for every eta > 0";
    case SGDSTAB_DEGENERATE:
        return "degenerate minimum: H is singular on a direction the samples "
               "move, so batch noise there is never damped and SGD leaves for "
               "every eta > 0";
    default:
        return NULL;
    }
}

/* Do directions J never moves decay (weight decay with r < p)? */
static int decays(const sgdstab_analysis *an)
{
    return an->null_decay_rate < 0;
}

static void print_text(const cli_args *a, const sgdstab_problem *prob,
                       const sgdstab_reduced *red, const sgdstab_analysis *an)
{
    const sgdstab_radius *rad = &an->radius;
    const sgdstab_critical *cr = &an->critical;
    double steps_per_epoch = (double)prob->n / (double)an->config.batch;
    printf("%s: n = %zu samples, k = %zu, p = %s, reduced dimension r = %zu\n",
           prob->source, prob->n, prob->k, cli_params(prob->p).s, red->r);
    const char *name = sgdstab_optimizer_title(&an->config.optimizer);
    printf("%s with learning rate %.6g, batch size %zu (sampling %s), loss "
           "%s (scale %.6g)\n\n",
           name, an->config.lr, an->config.batch,
           sgdstab_sampling_name(an->config.sampling), a->loss,
           an->config.loss_scale);
    cli_print_optimizer(a, &an->config);
    if (decays(an))
        printf("directions J never moves decay by weight decay alone: "
               "E|delta|^2 there shrinks at rate %.6g per step\n",
               an->null_decay_rate);
    if (minimum_note(cr->kind))
        printf("  verdict          UNSTABLE: %s\n", minimum_note(cr->kind));
    else if (an->verdict == SGDSTAB_VERDICT_THRESHOLD)
        printf("  verdict          AT THE THRESHOLD (within accuracy): eta = "
               "%.17g and eta* = %.17g differ by %.2g relative, within the "
               "accuracy %.2g reached; rounding decides on which side of 1 "
               "rho falls\n", an->config.lr, cr->lr_critical,
               fabs(an->config.lr / cr->lr_critical - 1), cr->rel_accuracy);
    else if (an->stable)
        printf("  verdict          STABLE: %s can stay at this minimum "
               "(eta = %.6g <= eta* = %.10g)\n",
               name, an->config.lr, cr->lr_critical);
    else
        printf("  verdict          UNSTABLE: %s escapes from this minimum "
               "(eta = %.6g > eta* = %.10g)\n",
               name, an->config.lr, cr->lr_critical);
    printf("  spectral radius  rho = %.15g (within %.2g; estimated error %.2g;"
           " %zu operator applications%s)\n", rad->rho, rad->residual,
           rad->error_estimate, rad->matvecs,
           rad->converged ? "" : ", NOT CONVERGED");
    if (rad->rho > 1)
        printf("  escape           E|delta_t|^2 grows like rho^t: rate %.6g per "
               "step, %.6g per epoch (%.4g steps);\n"
               "                   the RMS distance grows by a factor e every "
               "%.4g steps\n", an->escape_rate_per_step,
               an->escape_rate_per_epoch, steps_per_epoch, an->rms_efold_steps);
    else
        printf("  convergence      E|delta_t|^2 shrinks like rho^t: rate %.6g "
               "per step, %.6g per epoch (%.4g steps);\n"
               "                   the RMS distance shrinks by a factor e "
               "every %.4g steps\n", an->escape_rate_per_step,
               an->escape_rate_per_epoch, steps_per_epoch, an->rms_efold_steps);
    if (!minimum_note(cr->kind))
        printf(
            "  critical rate    eta*(%zu) = %.15g (relative accuracy %.2g): "
            "the largest stable learning rate;\n"
            "                   residual interval [%.15g, %.15g]\n",
            an->config.batch, cr->lr_critical, cr->rel_accuracy, cr->lr_lower,
            cr->lr_upper);
    if (cr->kind == SGDSTAB_NOT_A_MINIMUM)
        printf("  mean limit       none: with a negative eigenvalue of H even "
               "the mean E[delta_t] diverges for every eta\n");
    else if (sgdstab_optimizer_lifted(&an->config.optimizer))
        printf("  mean limit       %.10g (first-moment stability of this "
               "optimizer, = its eta* at full batch)\n", an->lr_critical_mean);
    else
        printf("  mean limit       2/lambda_max(H) = %.10g (first-moment "
               "stability, = eta* of full-batch GD)\n", an->lr_critical_mean);
    printf("  Hessian          sharpness lambda_max(H) = %.10g, |H|_F = "
           "%.10g, tr H = %.10g in loss %s (scale %.6g)\n",
           an->sharpness, an->hessian_frobenius, an->hessian_trace, a->loss,
           an->config.loss_scale);
    cli_print_flat("  flat curvature   ", red, an->config.loss_scale,
                   an->config.lr);
    cli_print_residual("  minimum          ", prob);
}

static int print_json(const cli_args *a, const sgdstab_problem *prob,
                      const sgdstab_reduced *red, const sgdstab_analysis *an)
{
    cJSON *o = cli_json_problem(prob);
    cli_json_size(o, "rank", red->rank_J);
    cli_json_null_dim(o, prob, red);
    cli_json_point(o, &an->config);
    cli_json_optimizer(o, &an->config);
    if (decays(an))
        cli_json_number(o, "null_space_decay_rate", an->null_decay_rate);
    cli_json_loss(o, a, prob, an->config.loss_scale);
    cJSON_AddBoolToObject(o, "stable", an->stable);
    cJSON_AddStringToObject(o, "verdict", sgdstab_verdict_name(an->verdict));
    cJSON_AddBoolToObject(o, "not_a_minimum",
                          an->critical.kind != SGDSTAB_MINIMUM_OK);
    cli_json_number(o, "spectral_radius", an->radius.rho);
    cli_json_number(o, "spectral_radius_residual", an->radius.residual);
    cli_json_number(o, "spectral_radius_error_estimate",
                    an->radius.error_estimate);
    cJSON_AddBoolToObject(o, "converged",
                          an->radius.converged && an->critical.converged);
    cli_json_number(o, "escape_rate_per_step", an->escape_rate_per_step);
    cli_json_number(o, "escape_rate_per_epoch", an->escape_rate_per_epoch);
    cli_json_number(o, "rms_efold_steps", an->rms_efold_steps);
    cli_json_number(o, "lr_critical", an->critical.lr_critical);
    cli_json_number(o, "lr_critical_rel_accuracy", an->critical.rel_accuracy);
    cli_json_number(o, "lr_critical_lower", an->critical.lr_lower);
    cli_json_number(o, "lr_critical_upper", an->critical.lr_upper);
    cli_json_number(o, "lr_critical_mean", an->lr_critical_mean);
    cli_json_hessian(o, an->sharpness, an->hessian_frobenius,
                     an->hessian_trace);
    cli_json_size(o, "operator_applications", an->matvecs);
    cli_json_flat(o, red, an->config.loss_scale, an->config.lr);
    cli_json_provenance(o, prob);
    return cli_json_print(o);
}

static int analyze_at(const cli_args *a, const cli_session *ses)
{
    sgdstab_analysis an;
    sgdstab_error err;
    if (sgdstab_analyze(ses->stab, &ses->cfg, &an, NULL, &err))
        return cli_report_file(a->file, &err);
    if (a->json)
        return print_json(a, ses->prob, ses->red, &an);
    print_text(a, ses->prob, ses->red, &an);
    return EXIT_OK;
}

int cmd_analyze(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_OPTS_AT_ONE_POINT, CLI_OPTS_OPTIMIZER, CLI_OPT_JSON, CLI_OPT_HELP,
        CLI_OPT_END};
    return cli_main_at("analyze", argc, argv, opts, ANALYZE_HELP, analyze_at);
}
