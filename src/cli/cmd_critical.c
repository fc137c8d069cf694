/* sgdstab critical FILE --batch LIST: the critical learning rate η*(B). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "exit_status.h"
#include "options.h"
#include "output.h"
#include "report.h"
#include "session.h"
#include "sgdstab/config.h"
#include "sgdstab/outfile.h"
#include "sgdstab/problem.h"
#include "sgdstab/stability.h"
#include "sgdstab/status.h"

static const char CRITICAL_HELP[] =
    "Usage: sgdstab critical FILE --batch LIST [--sampling S] [--json | --csv F]\n"
    "                        [--hessian H.npy] [--loss L] [--rank-tol RTOL]\n"
    "                        [--negative-curvature TOL] [--max-memory SIZE]\n"
    "                        [--params P]\n"
    "                        [--optimizer O] [--momentum BETA] [--nesterov] ...\n"
    "\n"
    "The critical learning rate eta*(B) for each batch size B: SGD with batch\n"
    "size B is linearly stable in mean square at the minimum exactly for\n"
    "0 < eta <= eta*(B).  eta*(B) = 1 / lambda_max(A1^{-1/2} A2 A1^{-1/2}), an\n"
    "exact symmetric eigenproblem, solved for all B on one shared\n"
    "eigensolver basis.  eta*(B) is non-decreasing in B; for sampling without\n"
    "replacement eta*(n) = 2/lambda_max(H), the full-batch GD limit.\n"
    "\n"
    "Options:\n"
    "  --batch LIST      batch sizes: 1,2,4,8 | all (1..n) | A:B (every size)\n"
    "                    | A:B:log (A, 2A, 4A, ..., B) | A:B:N:log (N sizes,\n"
    "                    log-spaced); n stands for the number of samples,\n"
    "                    e.g. 1:n:16:log  (required)\n"
    CLI_HELP_SAMPLING
    CLI_HELP_PROBLEM_OPTIONS
    CLI_HELP_OPTIMIZER_OPTIONS
    "  --json            JSON on stdout: {\"file\", \"n\", \"input\" (jacobian\n"
    "                    or gram), \"sampling\", \"loss\",\n"
    "                    \"loss_scale\", \"lr_critical_mean\", the flat-curvature\n"
    "                    keys of 'sgdstab analyze --help', \"critical\":\n"
    "                    [{\"batch\", \"lr_critical\", \"rel_accuracy\",\n"
    "                    \"lr_lower\", \"lr_upper\", \"not_a_minimum\"}, ...]}\n"
    "  --csv F           also write F with columns batch,lr_critical,\n"
    "                    lr_critical_mean,rel_accuracy,lr_lower,lr_upper\n"
    "  -h, --help        show this help\n"
    "\n"
    "rel_accuracy is an a-posteriori estimate of the relative error of eta*\n"
    "(tests hold the true error within twice it).  [lr_lower, lr_upper] is\n"
    "the residual interval: eta* <= lr_upper always (the solver's value is a\n"
    "Rayleigh quotient), and eta* >= lr_lower provided the eigenvalue the\n"
    "solver converged to is the largest, which is checked (against every\n"
    "Rayleigh quotient at a unit matrix) but cannot be proven; see the\n"
    "README.\n";

static int write_csv(const char *path, const sgdstab_critical *cr, size_t m,
                     double mean)
{
    sgdstab_outfile *of = cli_csv_open(path);
    if (!of)
        return EXIT_DATA;
    FILE *f = sgdstab_outfile_stream(of);
    fprintf(f, "batch,lr_critical,lr_critical_mean,rel_accuracy,lr_lower,"
            "lr_upper\n");
    for (size_t i = 0; i < m; i++) {
        fprintf(f, "%zu,", cr[i].batch);
        cli_csv_number(f, cr[i].lr_critical, ",");
        cli_csv_number(f, mean, ",");
        cli_csv_number(f, cr[i].rel_accuracy, ",");
        cli_csv_number(f, cr[i].lr_lower, ",");
        cli_csv_number(f, cr[i].lr_upper, "\n");
    }
    return cli_csv_commit(of);
}

static int print_json(const cli_session *ses, const cli_args *a,
                      const sgdstab_critical *cr, size_t m, double scale,
                      double mean)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", ses->prob->source);
    cli_json_optimizer(o, &ses->cfg);
    cli_json_size(o, "n", ses->prob->n);
    cli_json_input(o, ses->prob);
    cJSON_AddStringToObject(o, "sampling", sgdstab_sampling_name(a->sampling));
    cli_json_loss(o, a, ses->prob, scale);
    cli_json_number(o, "lr_critical_mean", mean);
    cli_json_flat(o, ses->red, scale, 0);
    cJSON *arr = cJSON_AddArrayToObject(o, "critical");
    for (size_t i = 0; i < m; i++) {
        cJSON *e = cli_json_append_object(arr);
        cli_json_size(e, "batch", cr[i].batch);
        cli_json_number(e, "lr_critical", cr[i].lr_critical);
        cli_json_number(e, "rel_accuracy", cr[i].rel_accuracy);
        cli_json_number(e, "lr_lower", cr[i].lr_lower);
        cli_json_number(e, "lr_upper", cr[i].lr_upper);
        cJSON_AddBoolToObject(e, "not_a_minimum",
                              cr[i].kind != SGDSTAB_MINIMUM_OK);
    }
    return cli_json_print(o);
}

static void print_text(const cli_session *ses, const cli_args *a,
                       const sgdstab_critical *cr, size_t m, double mean)
{
    printf("%s: n = %zu samples; sampling %s; loss %s\n", ses->prob->source,
           ses->prob->n, sgdstab_sampling_name(a->sampling), a->loss);
    cli_print_flat("flat curvature: ", ses->red, ses->cfg.loss_scale, 0);
    cli_print_optimizer(a, &ses->cfg);
    printf("critical learning rate eta*(B): SGD is stable exactly for "
           "eta <= eta*(B)\n");
    printf("mean-stability limit %s = %.10g\n\n",
           sgdstab_optimizer_lifted(&ses->cfg.optimizer)
               ? "of this optimizer (its eta* at full batch)"
               : "2/lambda_max(H)",
           mean);
    printf("%10s  %22s  %12s  %s\n", "batch", "eta*(B)", "rel.accuracy",
           "residual interval");
    for (size_t i = 0; i < m; i++)
        printf("%10zu  %22.15g  %12.2g  [%.10g, %.10g]%s\n", cr[i].batch,
               cr[i].lr_critical, cr[i].rel_accuracy, cr[i].lr_lower,
               cr[i].lr_upper,
               cr[i].kind == SGDSTAB_NOT_A_MINIMUM ? "  (not a minimum: H has a "
                                                    "negative eigenvalue)"
               : cr[i].kind == SGDSTAB_DEGENERATE ? "  (degenerate: H is "
                                                   "singular where samples "
                                                   "move)"
               : cr[i].converged ? "" : "  NOT CONVERGED");
}

/* η*(B) over --batch, printed and written. */
static int critical(cli_args *a)
{
    if (cli_require(a, 0, 1) || cli_check_outputs(a, NULL, &a->csv, 1))
        return EXIT_USAGE;
    cli_session ses;
    int status = cli_session_open(a, 0, SGDSTAB_USES_STEP_MAP, &ses);
    if (status)
        return status;
    const sgdstab_problem *prob = ses.prob;
    sgdstab_stability *s = ses.stab;
    size_t *batches = NULL, m = 0;
    sgdstab_critical *cr = NULL;
    status = cli_parse_batches(a->cmd, a->batch, prob->n, &batches, &m);
    sgdstab_config largest = ses.cfg;
    largest.batch = m > 0 ? batches[m - 1] : 1;
    if (!status)
        status = cli_config_check(a, ses.red, &largest,
                                  SGDSTAB_USES_BATCH | SGDSTAB_USES_STEP_MAP);
    if (!status && !(cr = malloc(m * sizeof *cr)))
        status = cli_data_error(a->cmd, NULL, "out of memory");
    sgdstab_error err;
    if (!status &&
        sgdstab_critical_curve(s, &ses.cfg, batches, m, cr, &err))
        status = cli_report_file(a->file, &err);
    if (!status) {
        double mean = sgdstab_lr_mean_limit(ses.red, &ses.cfg);
        double scale = ses.cfg.loss_scale;
        if (a->csv)
            status = write_csv(a->csv, cr, m, mean);
        if (!status && a->json)
            status = print_json(&ses, a, cr, m, scale, mean);
        else if (!status)
            print_text(&ses, a, cr, m, mean);
    }
    free(cr);
    free(batches);
    cli_session_close(&ses);
    return status;
}

int cmd_critical(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_OPT_BATCH, CLI_OPT_SAMPLING, CLI_OPT_LOSS, CLI_OPT_HESSIAN,
        CLI_OPT_RANK_TOL, CLI_OPT_NEGATIVE_CURVATURE, CLI_OPTS_PROBLEM_SIZE,
        CLI_OPT_JSON, CLI_OPT_CSV, CLI_OPTS_OPTIMIZER, CLI_OPT_HELP,
        CLI_OPT_END};
    return cli_main("critical", argc, argv, opts, CRITICAL_HELP, critical);
}
