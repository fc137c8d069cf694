/* Option parsing shared by the subcommands: the common options (--lr,
 * --batch, --sampling, the problem's options, --json, --csv), their help
 * texts, and strict parsers of numbers and lists; errors are usage errors
 * (report.h). */
#ifndef SGDSTAB_CLI_OPTIONS_H
#define SGDSTAB_CLI_OPTIONS_H

#include <getopt.h>
#include <stddef.h>

#include "sgdstab/config.h"

enum {
    OPT_LR = 256, OPT_BATCH, OPT_SAMPLING, OPT_LOSS, OPT_HESSIAN, OPT_RANK_TOL,
    OPT_NEGATIVE_CURVATURE, OPT_MAX_MEMORY, OPT_JSON, OPT_CSV, OPT_SEED,
    OPT_STEPS, OPT_INIT, OPT_QUIET, OPT_OPTIMIZER, OPT_MOMENTUM,
    OPT_DAMPENING, OPT_NESTEROV, OPT_WEIGHT_DECAY, OPT_BETAS, OPT_EPS,
    OPT_SECOND_MOMENT, OPT_LABEL_NOISE, OPT_PARAM_COUNT,
    OPT_FIRST_PRIVATE  /* subcommands number theirs from here */
};

#define CLI_OPT(name, has_arg, id) {name, has_arg, NULL, id}
#define CLI_ARG(name, id) CLI_OPT(name, required_argument, id)
#define CLI_FLAG(name, id) CLI_OPT(name, no_argument, id)
#define CLI_OPT_LR CLI_ARG("lr", OPT_LR)
#define CLI_OPT_BATCH CLI_ARG("batch", OPT_BATCH)
#define CLI_OPT_SAMPLING CLI_ARG("sampling", OPT_SAMPLING)
#define CLI_OPT_LOSS CLI_ARG("loss", OPT_LOSS)
#define CLI_OPT_HESSIAN CLI_ARG("hessian", OPT_HESSIAN)
#define CLI_OPT_RANK_TOL CLI_ARG("rank-tol", OPT_RANK_TOL)
#define CLI_OPT_NEGATIVE_CURVATURE \
    CLI_ARG("negative-curvature", OPT_NEGATIVE_CURVATURE)
/* --max-memory and --params: how big the problem is and may be. */
#define CLI_OPTS_PROBLEM_SIZE \
    CLI_ARG("max-memory", OPT_MAX_MEMORY), CLI_ARG("params", OPT_PARAM_COUNT)
#define CLI_OPT_JSON CLI_FLAG("json", OPT_JSON)
#define CLI_OPT_CSV CLI_ARG("csv", OPT_CSV)
#define CLI_OPT_SEED CLI_ARG("seed", OPT_SEED)
#define CLI_OPT_STEPS CLI_ARG("steps", OPT_STEPS)
#define CLI_OPT_INIT CLI_ARG("init", OPT_INIT)
#define CLI_OPT_QUIET CLI_FLAG("quiet", OPT_QUIET)
#define CLI_OPT_LABEL_NOISE CLI_ARG("label-noise", OPT_LABEL_NOISE)
#define CLI_OPT_HELP CLI_FLAG("help", 'h')
#define CLI_OPT_END {NULL, 0, NULL, 0}
/* The optimizer of the run (optimizer.h). */
#define CLI_OPTS_OPTIMIZER                                                  \
    CLI_ARG("optimizer", OPT_OPTIMIZER), CLI_ARG("momentum", OPT_MOMENTUM), \
        CLI_ARG("dampening", OPT_DAMPENING),                                \
        CLI_FLAG("nesterov", OPT_NESTEROV),                                 \
        CLI_ARG("weight-decay", OPT_WEIGHT_DECAY),                          \
        CLI_ARG("betas", OPT_BETAS), CLI_ARG("eps", OPT_EPS),               \
        CLI_ARG("second-moment", OPT_SECOND_MOMENT)
/* The options of an analysis at one (η, B): the run and the problem. */
#define CLI_OPTS_AT_ONE_POINT                                               \
    CLI_OPT_LR, CLI_OPT_BATCH, CLI_OPT_SAMPLING, CLI_OPT_LOSS,              \
        CLI_OPT_HESSIAN, CLI_OPT_RANK_TOL, CLI_OPT_NEGATIVE_CURVATURE,      \
        CLI_OPTS_PROBLEM_SIZE

/* Help text of the optimizer options. */
#define CLI_HELP_OPTIMIZER_OPTIONS \
    "  --optimizer O     sgd (default; RMSprop with --second-moment), adam\n" \
    "                    or adamw, as torch.optim defines them\n" \
    "  --momentum BETA   momentum in [0, 1) (sgd: default 0; adam, adamw:\n" \
    "                    beta1, default 0.9)\n" \
    "  --dampening TAU   PyTorch's dampening in [0, 1) (sgd with momentum)\n" \
    "  --nesterov        Nesterov momentum (sgd; needs zero dampening)\n" \
    "  --weight-decay L  weight decay >= 0: coupled (sgd, adam; default 0),\n" \
    "                    decoupled (adamw; default 0.01, as torch.optim)\n" \
    "  --betas B1[,B2]   Adam's beta1 (the momentum) and beta2 (0.999)\n" \
    "  --eps E           epsilon of the preconditioner sqrt(v) + E (1e-8)\n" \
    "  --second-moment V.npy  the frozen second moment v (exp_avg_sq after\n" \
    "                    bias correction), one value > 0 per parameter\n"

/* Help text shared by the subcommands that take these options. */
#define CLI_HELP_PROBLEM_OPTIONS \
    "  --hessian H.npy   the Hessian (p, p) at the minimum, if not in FILE;\n" \
    "                    H - G then acts as a deterministic part of every\n" \
    "                    minibatch Hessian (default: H = G)\n" \
    "  --loss L          loss convention: half-mean (default; L = (1/2n) sum\n" \
    "                    |f - y|^2), mse (PyTorch MSELoss: mean over n*k\n" \
    "                    entries, no 1/2; scale 2/k) or a positive number c\n" \
    "                    scaling every A_i = J_i^T J_i (and H) by c; without\n" \
    "                    --loss, the \"loss\" of FILE's meta.json if it has one\n" \
    "  --rank-tol RTOL   relative rank tolerance of J or K (see 'sgdstab info')\n" \
    "  --negative-curvature TOL\n" \
    "                    with H: negative eigenvalues down to -TOL*lambda_max(H)\n" \
    "                    are flat, their sign below what H resolves (the\n" \
    "                    level of the training residual and of rounding):\n" \
    "                    not 'not a minimum'; on directions J moves they are\n" \
    "                    analyzed with curvature |h|, else left out\n" \
    "                    (default 1e-6: at any eta <= 2/lambda_max such a\n" \
    "                    direction needs >= 500000 steps to matter; at most\n" \
    "                    0.01); strict (= 0): every negative eigenvalue makes\n" \
    "                    H no minimum\n" \
    "  --max-memory SIZE the memory loading and factorizing FILE may take\n" \
    "                    (e.g. 8G, 512M; default: what the system has\n" \
    "                    available, or SGDSTAB_MAX_MEMORY); a larger problem\n" \
    "                    is refused before it is read\n" \
    "  --params P        the parameter count p of a Gram-matrix FILE (K in\n" \
    "                    place of J) whose meta.json does not give it, for\n" \
    "                    what depends on p (the start S0 = I/p); with J or\n" \
    "                    a meta.json p it must be that p\n"
#define CLI_HELP_SAMPLING \
    "  --sampling S      how batches are drawn: without (default; B distinct\n" \
    "                    samples), with (B i.i.d. draws) or bernoulli (each\n" \
    "                    sample kept with probability B/n, sum divided by B)\n"

typedef struct {
    const char *cmd;        /* subcommand name, for messages */
    const char *file;
    const char *hessian;
    const char *batch;      /* raw text; each subcommand parses its form */
    const char *loss;       /* the loss convention as text outputs name it:
                               --loss as given, "half-mean" by default, or
                               "L from the file's metadata" (in loss_text) */
    const char *csv;
    double lr;
    int have_lr;
    int have_loss;          /* --loss was given */
    const char *loss_name;  /* the convention for sgdstab_loss_scale */
    char loss_text[64];
    double rank_rtol;
    double flat_rtol;       /* --negative-curvature (reduce.h) */
    double max_memory;      /* --max-memory in bytes; 0: the default */
    size_t params;          /* --params; 0: not given */
    sgdstab_sampling sampling;
    sgdstab_optimizer optimizer;  /* --optimizer and its settings */
    int optimizer_given;          /* any optimizer option was given */
    unsigned optimizer_set;       /* CLI_SET_* bits: the settings given
                                     (the others take the kind's defaults,
                                     sgdstab_optimizer_defaults) */
    int optimizer_from_file;      /* none was: the file's meta.json's */
    const char *second_moment;    /* --second-moment V.npy */
    int json;
    int residual_noise;     /* this run adds the gradient noise of FILE's
                               residuals R (stationary.h) */
} cli_args;

enum {
    CLI_SET_MOMENTUM = 1u << 0, CLI_SET_DAMPENING = 1u << 1,
    CLI_SET_WEIGHT_DECAY = 1u << 2, CLI_SET_BETA2 = 1u << 3,
    CLI_SET_EPS = 1u << 4, CLI_SET_ALL = 0x1fu
};

void cli_args_init(cli_args *a, const char *cmd);

/* Handle a common option or an operand (getopt's 1); 0 when handled,
 * EXIT_USAGE (after printing the error) otherwise. */
int cli_common_option(cli_args *a, int c, const char *arg);

/* What a subcommand's option parser returns once -h printed the help
 * (the subcommand then exits with EXIT_OK). */
enum { CLI_HELP_SHOWN = -1 };

/* The whole command line of subcommand cmd that takes only common options
 * (longopts), into a fresh *a (cli_args_init): EXIT_OK, CLI_HELP_SHOWN
 * after printing help for -h, or EXIT_USAGE after the error. */
int cli_parse_common(int argc, char **argv, const char *cmd, cli_args *a,
                     const struct option *longopts, const char *help);

/* The whole of subcommand cmd that takes only common options: parse
 * (cli_parse_common), then job on the arguments.  Returns the exit status
 * (EXIT_OK after --help). */
int cli_main(const char *cmd, int argc, char **argv,
             const struct option *longopts, const char *help,
             int (*job)(cli_args *a));

/* getopt_long wrapper that reports unknown options and missing values as
 * one line naming the subcommand, and returns '?' then; operands come back
 * as 1 (in optarg) and -h as 'h'. */
int cli_getopt(int argc, char **argv, const char *cmd,
               const struct option *longopts);
/* The same with short options beyond -h, in getopt's syntax (e.g. "o:"). */
int cli_getopt_short(int argc, char **argv, const char *cmd,
                     const char *shortopts, const struct option *longopts);

/* Strict number parsing for option values: the whole text must be a finite
 * number that is 0 or at least DBL_MIN in magnitude (or a whole number ≥
 * min); on failure a usage error naming the
 * option is printed and −1 returned. */
int cli_parse_double(const char *cmd, const char *opt, const char *text,
                     double *out);
int cli_parse_size(const char *cmd, const char *opt, const char *text,
                   size_t min, size_t *out);
/* --seed S of the Monte Carlo: a whole number, 0 to 2^32 − 1 (the seeds of
 * GSL's MT19937). */
int cli_parse_seed(const char *cmd, const char *text, unsigned long *out);
/* --label-noise SIGMA (NULL text: 0): a number >= 0. */
int cli_parse_label_noise(const char *cmd, const char *text, double *sigma);

/* --batch for many sizes: "1,2,4", "all" (1..n), "A:B" (every integer),
 * "A:B:log" (A, 2A, 4A, ..., B) or "A:B:N:log" (N log-spaced, rounded),
 * where each size may be "n" for the number of samples; sorted, without
 * duplicates.  *list is malloc'd. */
int cli_parse_batches(const char *cmd, const char *text, size_t n,
                      size_t **list, size_t *count);

/* --lr for many learning rates: "A:B:N" (N evenly spaced, ends included),
 * "A:B:N:log" (N log-spaced), "A:B" and "A:B:log" (N = CLI_LR_STEPS), or a
 * list "0.1,0.5,2"; 0 < A < B.  Sorted, without duplicates; *log_spaced
 * tells whether a log range was asked for.  *list is malloc'd. */
#define CLI_LR_STEPS 40
int cli_parse_lrs(const char *cmd, const char *text, double **list,
                  size_t *count, int *log_spaced);

/* Usage errors unless FILE, --lr, --batch were given. */
int cli_require(const cli_args *a, int need_lr, int need_batch);

#endif
