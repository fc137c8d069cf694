/* sgdstab simulate FILE --lr η --batch B --steps T: Monte Carlo SGD;
 * with --epoch or --threshold, the one-epoch second-moment map estimated
 * from sampled epochs (epoch.h).  This file parses and checks the options
 * and dispatches to the two modes (cmd_simulate.h). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_simulate.h"
#include "commands.h"
#include "exit_status.h"
#include "options.h"
#include "output.h"
#include "report.h"
#include "session.h"
#include "sgdstab/config.h"
#include "sgdstab/simulate.h"

enum { OPT_RUNS = OPT_FIRST_PRIVATE, OPT_THREADS, OPT_FIT_FROM, OPT_COMPARE,
       OPT_CLIP, OPT_NOISE, OPT_RADIUS, OPT_EPOCH, OPT_THRESHOLD,
       OPT_LYAPUNOV };

static const char SIMULATE_HELP[] =
    "Usage: sgdstab simulate FILE --lr ETA --batch B --steps T [--runs R]\n"
    "                        [--seed S] [--sampling S] [--init S0.npy|zero]\n"
    "                        [--compare] [--fit-from T0] [--threads N]\n"
    "                        [--noise SPEC] [--clip C] [--radius R]\n"
    "                        [--label-noise SIGMA] [--lyapunov]\n"
    "                        [--csv F | --json] [--quiet] [--hessian H.npy]\n"
    "                        [--loss L] [--rank-tol RTOL]\n"
    "                        [--negative-curvature TOL] [--max-memory SIZE]\n"
    "                        [--params P]\n"
    "                        [--optimizer sgd] [--momentum BETA] [--nesterov] ...\n"
    "       sgdstab simulate FILE --epoch --lr ETA --batch B [--runs R] [--seed S]\n"
    "                        [--sampling S] [--compare] [--json] ...\n"
    "       sgdstab simulate FILE --threshold --batch B [--lr ETA] [--runs R]\n"
    "                        [--seed S] [--sampling S] [--json] ...\n"
    "\n"
    "Run R independent trajectories of linearized SGD with real minibatches,\n"
    "delta_{t+1} = delta_t - eta (H_xi delta_t - Z_t), and report per step the\n"
    "mean over runs of |delta_t|^2 and of the loss L_t = (c/2) delta_t^T G\n"
    "delta_t with the half-width of a 95% confidence interval (1.96 sd /\n"
    "sqrt(R)), and the growth rate of the mean |delta_t|^2 per step: the\n"
    "least-squares slope of its log over steps T0..T, with a jackknife\n"
    "standard error over 20 groups of runs.  Results depend on the seed only,\n"
    "not on the number of threads.\n"
    "\n"
    "With --epoch, no trajectories: R epochs of ceil(n/B) steps are sampled,\n"
    "each giving the product M of its factors (I - eta H_xi), and the map\n"
    "S -> E[M S M^T] that carries the second moment from one epoch end to the\n"
    "next is estimated by their average (symmetrized, which is exact because\n"
    "reversing an epoch's batches turns M into M^T).  Reported: its spectral\n"
    "radius rho_epoch with a jackknife standard error (20 groups of epochs),\n"
    "and the growth rate ln(rho_epoch)/ceil(n/B) per step.  For fresh\n"
    "batches rho_epoch estimates rho^ceil(n/B) of the exact engine; for\n"
    "reshuffle (B must divide n) it is the only way to the rate.  With\n"
    "short epochs (few steps) the estimate avoids the heavy-tail bias of\n"
    "long trajectories near the threshold; with long epochs (B << n) its\n"
    "products are heavy-tailed too: the standard error is then too small\n"
    "and, far above the threshold, the rate comes out low.  With\n"
    "--threshold, the learning rate where rho_epoch = 1 (same sampled batches\n"
    "at every eta; search started from --lr, by default from the exact\n"
    "eta*(B) of fresh batches drawn without replacement or by --sampling),\n"
    "its standard error, and the exact eta*(B) beside it.\n"
    "\n"
    "Options:\n"
    "  --lr ETA          learning rate (required, except with --threshold)\n"
    "  --batch B         batch size (required)\n"
    "  --steps T         number of steps (required, except with --epoch or\n"
    "                    --threshold)\n"
    "  --runs R          number of trajectories, or of sampled epochs\n"
    "                    (default 1000, at least 2)\n"
    "  --seed S          random seed, 0 to 2^32 - 1 (default 1)\n"
    "  --sampling S      without (default; B distinct samples, fresh each\n"
    "                    step), with (B i.i.d. draws), bernoulli (each sample\n"
    "                    kept with probability B/n, sum divided by B) or\n"
    "                    reshuffle (each epoch a random permutation cut into\n"
    "                    batches of B; the last has n mod B samples when B\n"
    "                    does not divide n; each averaged over its size)\n"
    "  --init S0.npy     delta_0 ~ N(0, S0), S0 a (p, p) PSD matrix; --init\n"
    "                    zero starts at the minimum (default: N(0, I/p))\n"
    "  --compare         beside the estimates: the exact E|delta_t|^2 (as\n"
    "                    'evolve' computes it; for reshuffle, of sampling\n"
    "                    without), the z-score (mean - exact)/(sd/sqrt(R)),\n"
    "                    the exact ln rho (as 'analyze') and the exact curve's\n"
    "                    slope over the same steps; not with --noise, --clip;\n"
    "                    with --epoch: the exact rho^ceil(n/B) and ln rho.\n"
    "                    Where rho > 1 (lr above eta*(B)) E|delta_t|^2 grows\n"
    "                    through rare runs: the mean over R runs falls far\n"
    "                    below it, its z-scores are not normal and its rate\n"
    "                    is no estimate of ln rho, so a warning says so\n"
    "                    (JSON: mean_estimate_reliable false, note); the\n"
    "                    one-epoch map (--epoch) estimates the rate there.\n"
    "                    With residuals or label noise and rho < 1 also the\n"
    "                    exact stationary E|delta|^2 beside the runs' mean\n"
    "                    averaged over steps T0..T, its standard error and\n"
    "                    the exact curve's average (JSON:\n"
    "                    stationary_second_moment, time_average_second_moment,\n"
    "                    time_average_stderr, exact_time_average)\n"
    "  --lyapunov        instead of moments, the top Lyapunov exponent of the\n"
    "                    random product of the steps, per step, of |delta_t|:\n"
    "                    each run renormalizes its state every step and\n"
    "                    averages ln of the growth over steps T/10+1..T; the\n"
    "                    mean over runs and its standard error, beside the\n"
    "                    exact (1/2) ln rho, which bounds it from above\n"
    "                    (JSON: lyapunov_exponent, lyapunov_stderr,\n"
    "                    half_log_rho).  Every optimizer; not with --noise,\n"
    "                    --clip, --radius, residuals or label noise\n"
    "  --epoch           estimate the one-epoch map at --lr (see above)\n"
    "  --threshold       estimate where the one-epoch map's radius crosses 1\n"
    "  --fit-from T0     first step of the growth-rate fit (default ceil(T/2))\n"
    "  --threads N       worker threads (default: one per processor)\n"
    "  --label-noise SIGMA  labels y_i + N(0, SIGMA^2 I_k), fresh for every\n"
    "                    element of every batch (default 0).  Where FILE holds\n"
    "                    the residuals R (a minimum that does not\n"
    "                    interpolate) their gradients c J_i' r_i enter every\n"
    "                    batch's gradient too, and --compare's exact column\n"
    "                    includes that noise ('sgdstab stationary --help')\n"
    "  --noise SPEC      inject noise Z_t into every step:\n"
    "                    gaussian:SCALE     Z = SCALE N(0, I_p)\n"
    "                    pareto:ALPHA:SCALE a uniform direction times\n"
    "                    SCALE U^(-1/ALPHA), U uniform: P(|Z| > x) =\n"
    "                    (x/SCALE)^-ALPHA for x >= SCALE (tail index ALPHA)\n"
    "  --clip C          scale every step eta (H_xi delta - Z) down to norm C\n"
    "                    when it is longer\n"
    "  --radius R        stop each run at its first exit |delta_t| > R and\n"
    "                    report exit-step statistics instead of moments:\n"
    "                    exited runs, fraction never exited within T, mean\n"
    "                    (of exited runs), censored mean (sum over runs of\n"
    "                    min(exit step, T) / exited: the mean if exits are\n"
    "                    memoryless, not biased by runs that never left),\n"
    "                    quantiles 0.1 0.25 0.5 0.75 0.9\n"
    "                    (the ceil(qR)-th smallest exit step, runs that never\n"
    "                    exited counting as infinite)\n"
    "  --csv F           write F: step,second_moment,second_moment_ci,loss,\n"
    "                    loss_ci (and exact_second_moment,z_score)\n"
    "  --json            JSON on stdout\n"
    "  --quiet           no progress bar (drawn only on a terminal anyway)\n"
    CLI_HELP_PROBLEM_OPTIONS
    CLI_HELP_OPTIMIZER_OPTIONS
    "                    (trajectories only: the real update with its buffer,\n"
    "                    filled as torch.optim does, and the preconditioner\n"
    "                    of Adam or RMSprop; no --noise, --clip, --radius\n"
    "                    with momentum, weight decay or a preconditioner)\n"
    "  -h, --help        show this help\n";

static int parse_noise(const char *cmd, const char *text,
                       sgdstab_sim_options *o)
{
    char *end;
    if (strncmp(text, "gaussian:", 9) == 0) {
        o->noise = SGDSTAB_NOISE_GAUSSIAN;
        o->noise_scale = strtod(text + 9, &end);
        if (end != text + 9 && *end == '\0' && o->noise_scale > 0 &&
            isfinite(o->noise_scale))
            return 0;
    } else if (strncmp(text, "pareto:", 7) == 0) {
        o->noise = SGDSTAB_NOISE_PARETO;
        o->noise_alpha = strtod(text + 7, &end);
        if (end != text + 7 && *end == ':' && o->noise_alpha > 0 &&
            isfinite(o->noise_alpha)) {
            const char *s = end + 1;
            o->noise_scale = strtod(s, &end);
            if (end != s && *end == '\0' && o->noise_scale > 0 &&
                isfinite(o->noise_scale))
                return 0;
        }
    }
    return cli_usage_error(cmd, "--noise: '%s' is not gaussian:SCALE or "
                           "pareto:ALPHA:SCALE with ALPHA, SCALE > 0", text);
}

static int parse_positive(const char *cmd, const char *opt, const char *text,
                          double *out)
{
    if (cli_parse_double(cmd, opt, text, out))
        return EXIT_USAGE;
    if (!(*out > 0))
        return cli_usage_error(cmd, "--%s must be positive, not %s", opt,
                               text);
    return EXIT_OK;
}

cJSON *simulate_json_head(const cli_args *a, const cli_session *ses,
                          const sim_request *rq)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "file", a->file);
    cli_json_size(j, "n", ses->red->n);
    cli_json_size(j, "k", ses->red->k);
    cli_json_params(j, ses->red->p);
    cli_json_input(j, ses->prob);
    cli_json_size(j, "rank", ses->red->rank_J);
    cli_json_size(j, "batch", rq->o.config.batch);
    cJSON_AddStringToObject(j, "sampling", rq->sampling_name);
    cli_json_number(j, "loss_scale", rq->o.config.loss_scale);
    cli_json_optimizer(j, &rq->o.config);
    cli_json_size(j, "runs", rq->o.runs);
    cli_json_size(j, "seed", rq->o.seed);
    return j;
}

/* The rough time is at 1 GFLOP/s, the order of the simulator's rate on two
 * cores. */
void simulate_note_work(const sim_request *rq, double flops)
{
    if (!rq->quiet && flops > 1e11 && flops <= SGDSTAB_WORK_MAX)
        cli_note("simulate", "about %.2g floating-point operations, roughly "
                 "%.0f minutes at 1 GFLOP/s", flops, flops / 1e9 / 60);
}

sgdstab_config simulate_fresh_batches(const sgdstab_config *cfg)
{
    sgdstab_config exact = *cfg;
    if (exact.sampling == SGDSTAB_SAMPLING_RESHUFFLE)
        exact.sampling = SGDSTAB_SAMPLING_WITHOUT;
    return exact;
}

/* The options' texts checked once the mode is known. */
typedef struct {
    const char *init, *steps, *fit;
    size_t batch;
} sim_texts;

static int parse_options(int argc, char **argv, cli_args *a, sim_request *rq,
                         sim_texts *t)
{
    static const struct option opts[] = {
        CLI_OPTS_AT_ONE_POINT, CLI_OPTS_OPTIMIZER, CLI_OPT_JSON, CLI_OPT_CSV,
        CLI_OPT_STEPS, CLI_OPT_SEED, CLI_OPT_INIT, CLI_OPT_QUIET,
        CLI_ARG("runs", OPT_RUNS), CLI_ARG("threads", OPT_THREADS),
        CLI_ARG("fit-from", OPT_FIT_FROM), CLI_FLAG("compare", OPT_COMPARE),
        CLI_ARG("clip", OPT_CLIP), CLI_ARG("noise", OPT_NOISE),
        CLI_ARG("radius", OPT_RADIUS), CLI_FLAG("epoch", OPT_EPOCH),
        CLI_FLAG("threshold", OPT_THRESHOLD), CLI_OPT_LABEL_NOISE,
        CLI_FLAG("lyapunov", OPT_LYAPUNOV),
        CLI_OPT_HELP, CLI_OPT_END};
    sgdstab_sim_options *o = &rq->o;
    int c, bad = 0;
    while ((c = cli_getopt(argc, argv, a->cmd, opts)) != -1) {
        switch (c) {
        case 'h':
            fputs(SIMULATE_HELP, stdout);
            return CLI_HELP_SHOWN;
        case OPT_STEPS: t->steps = optarg; break;
        case OPT_RUNS: bad = cli_parse_size(a->cmd, "runs", optarg, 2, &o->runs); break;
        case OPT_SEED: bad = cli_parse_seed(a->cmd, optarg, &o->seed); break;
        case OPT_INIT: t->init = optarg; break;
        case OPT_THREADS: bad = cli_parse_size(a->cmd, "threads", optarg, 1, &o->threads); break;
        case OPT_FIT_FROM: t->fit = optarg; break;
        case OPT_COMPARE: rq->compare = 1; break;
        case OPT_CLIP: bad = parse_positive(a->cmd, "clip", optarg, &o->clip); break;
        case OPT_NOISE: bad = parse_noise(a->cmd, optarg, o); break;
        case OPT_RADIUS: bad = parse_positive(a->cmd, "radius", optarg, &o->radius); break;
        case OPT_QUIET: rq->quiet = 1; break;
        case OPT_EPOCH: rq->epoch = 1; break;
        case OPT_THRESHOLD: rq->threshold = 1; break;
        case OPT_LYAPUNOV: o->lyapunov = 1; break;
        case OPT_LABEL_NOISE: bad = cli_parse_label_noise(a->cmd, optarg, &o->label_noise); break;
        default: bad = cli_common_option(a, c, optarg);
        }
        if (bad)
            return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* The checks both modes share, in the order their usage errors come. */
static int check_options(cli_args *a, sim_request *rq, sim_texts *t)
{
    sgdstab_sim_options *o = &rq->o;
    int epoch = rq->epoch || rq->threshold;
    if (cli_require(a, !rq->threshold, 1) ||
        cli_check_outputs(a, t->init && strcmp(t->init, "zero") ? t->init
                                                                : NULL,
                          &a->csv, 1))
        return EXIT_USAGE;
    if (epoch && (t->steps || t->fit || t->init || o->noise || o->clip > 0 ||
                  o->radius > 0 || a->csv || o->label_noise > 0 ||
                  o->lyapunov))
        return cli_usage_error(a->cmd, "--epoch and --threshold take none of "
                               "--steps --fit-from --init --noise --clip "
                               "--radius --csv --label-noise --lyapunov");
    if (!epoch && !t->steps)
        return cli_usage_error(a->cmd, "missing --steps");
    const sgdstab_optimizer *op = &a->optimizer;
    if (epoch && (op->kind != SGDSTAB_OPTIMIZER_SGD || op->momentum > 0 ||
                  op->weight_decay > 0))
        return cli_usage_error(a->cmd, "--epoch and --threshold are for "
                               "plain SGD (no optimizer options)");
    if (cli_parse_size(a->cmd, "batch", a->batch, 1, &t->batch) ||
        (!epoch && cli_parse_size(a->cmd, "steps", t->steps, 1, &o->steps)))
        return EXIT_USAGE;
    rq->sampling_name = sgdstab_sampling_name(a->sampling);
    return EXIT_OK;
}

int cmd_simulate(int argc, char **argv)
{
    cli_args args;
    cli_args_init(&args, "simulate");
    sim_request rq;
    memset(&rq, 0, sizeof rq);
    rq.o.runs = 1000;
    rq.o.seed = 1;
    sim_texts t = {NULL, NULL, NULL, 0};
    int status = parse_options(argc, argv, &args, &rq, &t);
    if (status == CLI_HELP_SHOWN)
        return EXIT_OK;
    if (status || (status = check_options(&args, &rq, &t)))
        return status;
    args.residual_noise = !rq.epoch && !rq.threshold && !rq.o.lyapunov;
    if (rq.epoch || rq.threshold)
        return simulate_epoch(&args, &rq, t.batch);
    return simulate_runs(&args, &rq, t.batch, t.init, t.fit);
}
