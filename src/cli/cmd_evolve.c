/* sgdstab evolve FILE --lr η --batch B --steps T: E‖δ_t‖² and E L_t, exactly. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "exit_status.h"
#include "options.h"
#include "output.h"
#include "report.h"
#include "session.h"
#include "sgdstab/config.h"
#include "sgdstab/outfile.h"
#include "sgdstab/problem.h"

static const char EVOLVE_HELP[] =
    "Usage: sgdstab evolve FILE --lr ETA --batch B --steps T\n"
    "                      [--init S0.npy|zero]\n"
    "                      [--label-noise SIGMA] [--sampling S]\n"
    "                      [--csv F | --json] [--hessian H.npy]\n"
    "                      [--loss L] [--rank-tol RTOL]\n"
    "                      [--negative-curvature TOL] [--max-memory SIZE]\n"
    "                      [--params P]\n"
    "                      [--optimizer sgd] [--momentum BETA] [--nesterov] ...\n"
    "\n"
    "Evolve the second moment S_t = E[delta_t delta_t^T] of linearized SGD\n"
    "exactly, S_{t+1} = T(S_t), for T steps and report per step\n"
    "  second_moment  E|delta_t|^2 = tr S_t\n"
    "  loss           E L_t = (c/2) tr(G S_t), c the loss scale\n"
    "Directions that never move keep their share of tr S_0 (weight decay\n"
    "shrinks it deterministically).  With momentum the state is (delta,\n"
    "buffer), the buffer empty at step 0 and filled as torch.optim.SGD does\n"
    "(the first gradient undampened); its second moment evolves exactly by the\n"
    "lifted map (README, Optimizers).  With a preconditioner P (Adam,\n"
    "RMSprop) the engine works in y = P^(1/2) delta and E|delta_t|^2 is taken\n"
    "back to parameter space exactly, cross terms with the directions that\n"
    "never move included.  Where the minimum does not interpolate (FILE's\n"
    "member R, the residuals) or with label noise, the gradient noise C of\n"
    "'sgdstab stationary --help' is added each step: S_{t+1} = T(S_t) +\n"
    "eta^2 c^2 C, which tends to the stationary state when rho < 1.\n"
    "\n"
    "Options:\n"
    "  --lr ETA          learning rate (required)\n"
    "  --batch B         batch size (required)\n"
    "  --steps T         number of steps (required)\n"
    "  --init S0.npy     initial second moment, a (p, p) symmetric positive\n"
    "                    semidefinite matrix (default I/p: E|delta_0|^2 = 1);\n"
    "                    --init zero starts at the minimum (with residuals or\n"
    "                    label noise: the approach to the stationary state)\n"
    "  --label-noise SIGMA  label noise y_i + N(0, SIGMA^2 I_k), >= 0\n"
    CLI_HELP_SAMPLING
    CLI_HELP_PROBLEM_OPTIONS
    CLI_HELP_OPTIMIZER_OPTIONS
    "  --csv F           write F with columns step,second_moment,loss\n"
    "  --json            JSON on stdout with arrays second_moment and loss\n"
    "  -h, --help        show this help\n";

static int write_csv(const char *path, const double *m2, const double *loss,
                     size_t steps)
{
    sgdstab_outfile *of = cli_csv_open(path);
    if (!of)
        return EXIT_DATA;
    FILE *f = sgdstab_outfile_stream(of);
    fprintf(f, "step,second_moment,loss\n");
    for (size_t t = 0; t <= steps; t++) {
        fprintf(f, "%zu,", t);
        cli_csv_number(f, m2[t], ",");
        cli_csv_number(f, loss[t], "\n");
    }
    return cli_csv_commit(of);
}

static int print_json(const cli_args *a, const cli_session *ses,
                      size_t steps, const double *m2, const double *loss)
{
    const sgdstab_config *cfg = &ses->cfg;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", a->file);
    cli_json_input(o, ses->prob);
    cli_json_number(o, "lr", a->lr);
    cli_json_size(o, "batch", cfg->batch);
    cJSON_AddStringToObject(o, "sampling", sgdstab_sampling_name(a->sampling));
    cli_json_number(o, "loss_scale", cfg->loss_scale);
    cli_json_optimizer(o, cfg);
    cli_json_size(o, "steps", steps);
    const double *cols[2] = {m2, loss};
    const char *names[2] = {"second_moment", "loss"};
    for (int c = 0; c < 2; c++) {
        cJSON *arr = cJSON_AddArrayToObject(o, names[c]);
        for (size_t t = 0; t <= steps; t++) {
            char buf[32];
            if (isfinite(cols[c][t]))
                snprintf(buf, sizeof buf, "%.17g", cols[c][t]);
            else
                snprintf(buf, sizeof buf, "null");
            cJSON_AddItemToArray(arr, cJSON_CreateRaw(buf));
        }
    }
    return cli_json_print(o);
}

/* Human table: every step up to 100 rows, else every k-th and the last. */
static void print_text(const cli_args *a, const sgdstab_config *cfg,
                       size_t steps, const double *m2, const double *loss)
{
    size_t every = steps <= 100 ? 1 : (steps + 99) / 100;
    printf("%s: %s with lr %.6g, batch %zu (sampling %s), loss %s\n", a->file,
           sgdstab_optimizer_title(&cfg->optimizer), a->lr, cfg->batch,
           sgdstab_sampling_name(a->sampling), a->loss);
    cli_print_optimizer(a, cfg);
    if (every > 1)
        printf("(every %zu-th step shown; --csv F writes all)\n", every);
    printf("%10s  %24s  %24s\n", "step", "E|delta_t|^2", "E L_t");
    for (size_t t = 0; t <= steps; t++)
        if (t % every == 0 || t == steps)
            printf("%10zu  %24.15g  %24.15g\n", t, m2[t], loss[t]);
    if (steps >= 2 && m2[steps - 1] > 0) {
        double f = m2[steps] / m2[steps - 1];
        printf("last step multiplied E|delta|^2 by %.12g (tends to rho as t "
               "grows, for the part that moves)\n", f);
    }
}

int cmd_evolve(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_OPTS_AT_ONE_POINT, CLI_OPTS_OPTIMIZER, CLI_OPT_JSON, CLI_OPT_CSV,
        CLI_OPT_STEPS, CLI_OPT_INIT, CLI_OPT_LABEL_NOISE,
        CLI_OPT_HELP, CLI_OPT_END};
    cli_args args;
    cli_args_init(&args, "evolve");
    args.residual_noise = 1;
    const char *init = NULL, *steps_text = NULL, *sigma_text = NULL;
    int c;
    while ((c = cli_getopt(argc, argv, args.cmd, opts)) != -1) {
        if (c == 'h') {
            fputs(EVOLVE_HELP, stdout);
            return EXIT_OK;
        }
        if (c == OPT_STEPS)
            steps_text = optarg;
        else if (c == OPT_INIT)
            init = optarg;
        else if (c == OPT_LABEL_NOISE)
            sigma_text = optarg;
        else if (cli_common_option(&args, c, optarg))
            return EXIT_USAGE;
    }
    size_t steps;
    const int at_minimum = init && !strcmp(init, "zero");
    if (at_minimum)
        init = NULL;
    if (cli_check_outputs(&args, init, &args.csv, 1))
        return EXIT_USAGE;
    if (!steps_text)
        return cli_usage_error(args.cmd, "missing --steps");
    if (cli_parse_size(args.cmd, "steps", steps_text, 0, &steps))
        return EXIT_USAGE;
    if (steps > 100000000)
        return cli_usage_error(args.cmd, "--steps %zu is more than 1e8", steps);
    double sigma;
    if (cli_parse_label_noise(args.cmd, sigma_text, &sigma))
        return EXIT_USAGE;

    cli_session ses;
    int status = cli_session_at(&args, &ses);
    if (status)
        return status;
    const sgdstab_problem *prob = ses.prob;
    sgdstab_second_moment *S0 = NULL;
    double *m2 = malloc((steps + 1) * sizeof *m2),
           *loss = malloc((steps + 1) * sizeof *loss);
    if (!m2 || !loss)
        status = cli_data_error(args.cmd, NULL, "out of memory");
    double *noise = NULL;
    sgdstab_gradient_stats stats;
    if (!status && init)
        status = cli_load_init(init, prob->p, &S0);
    if (!status)
        status = cli_gradient_noise(&args, &ses, &ses.cfg, sigma, &noise,
                                    &stats);
    if (!status)
        status = cli_exact_evolve(&ses, &ses.cfg, steps,
                                  &(sgdstab_start){S0 ? S0->S : NULL,
                                                   at_minimum},
                                  noise, m2, loss);
    free(noise);
    if (!status) {
        if (args.csv)
            status = write_csv(args.csv, m2, loss, steps);
        if (!status && args.json)
            status = print_json(&args, &ses, steps, m2, loss);
        else if (!status)
            print_text(&args, &ses.cfg, steps, m2, loss);
    }
    sgdstab_second_moment_free(S0);
    free(m2);
    free(loss);
    cli_session_close(&ses);
    return status;
}
