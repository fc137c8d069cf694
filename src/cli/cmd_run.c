/* sgdstab run SPEC.json: an experiment on synthetic minima (synth.h) or on
 * a problem file — parameter sweeps, η*(B) with the theory's bounds
 * (theory.h), verify checks, phase diagrams and Monte Carlo experiments —
 * written as CSV tables, a JSON summary and a Markdown report.  The
 * options are read here; the experiment is the module run/. */
#include <string.h>
#include <unistd.h>

#include "exit_status.h"
#include "report.h"
#include "run/run.h"

enum { OPT_OUT = OPT_FIRST_PRIVATE, OPT_PLOT_SIZE };

static const char RUN_HELP[] =
    "Usage: sgdstab run SPEC.json [--out DIR] [--plot-size W,H] [--quiet]\n"
    "\n"
    "Run the experiment SPEC.json describes and write its results to DIR\n"
    "(default: results/NAME, NAME being SPEC's file name without .json):\n"
    "\n"
    "  cases.csv     one row per case: the swept parameters, n k p d rank,\n"
    "                the training residual, sharpness, hessian_frobenius,\n"
    "                hessian_trace, nonuniformity, alignment_min,\n"
    "                lr_critical_mean; with a problem file, input (jacobian\n"
    "                or gram) before n, p empty when the file does not give\n"
    "                it, d empty, the residual max |R| (empty without R)\n"
    "  critical.csv  one row per case and batch size: batch b lr_critical\n"
    "                rel_accuracy, the bounds on it (lr_critical_mean,\n"
    "                mulayoff_michaeli_top, mulayoff_michaeli_trace,\n"
    "                wu_wang_su_lr) and stable_sharpness = lr_critical *\n"
    "                |H|_F * sqrt(b), b the batch-noise coefficient of the\n"
    "                spec's sampling (1/B with replacement, (n-B)/(B(n-1))\n"
    "                without, 1/B - 1/n bernoulli): the quantity Wu-Wang-Su\n"
    "                bound by 1/sqrt(mu_min)\n"
    "  verify.csv    (if the spec asks for learning rates) one row per case,\n"
    "                batch and learning rate: the verdict, rho, escape rate,\n"
    "                alignment_top, and holds/ratio of every 'sgdstab verify'\n"
    "                check\n"
    "  summary.json  the spec, every number above, and the overall findings\n"
    "  report.md     a short report with the command that regenerates it\n"
    "\n"
    "A spec is one JSON object with the keys\n"
    "  family       (required unless problem) linear | rfm | deep-linear |\n"
    "               two-layer\n"
    "  problem      instead of family and params: a problem file as the\n"
    "               other commands take FILE (J in a .npy or .npz, or its\n"
    "               Gram matrix K in an .npz), relative to the spec's\n"
    "               directory, read before anything is written; it is every\n"
    "               case's minimum (only \"momentum\" may be swept), with the\n"
    "               loss convention and SGD settings of its meta.json unless\n"
    "               the spec gives loss, optimizer or a momentum sweep (as\n"
    "               the commands without --loss and optimizer options); a\n"
    "               file trained with Adam or RMSprop is refused\n"
    "  problem_params  p, the parameter count of a Gram-matrix file whose\n"
    "               meta.json does not give it (as --params P; exit needs p)\n"
    "  batch        (required) a list of batch sizes, or a string as for\n"
    "               'sgdstab critical --batch' in which the letter n stands\n"
    "               for the number of samples (e.g. \"all\", \"1:n:16:log\")\n"
    "  params       an object of 'sgdstab synth' parameters: samples inputs\n"
    "               outputs width depth activation spectrum rescale extra\n"
    "               seed (numbers, or strings for activation and spectrum)\n"
    "  sweep        an object mapping some of those parameters (or\n"
    "               \"momentum\", the optimizer's, values in [0, 1)) to\n"
    "               lists of values; the cases are all combinations (first\n"
    "               key slowest), each with params for the rest\n"
    "  sampling     without (default) | with | bernoulli\n"
    "  loss         half-mean (default) | mse | a positive number\n"
    "  optimizer    SGD's settings as torch.optim.SGD takes them:\n"
    "               {\"momentum\", \"dampening\", \"nesterov\" (true/false),\n"
    "               \"weight_decay\"}; with any of them, or a momentum\n"
    "               sweep, the report adds the stable sharpness at the\n"
    "               smallest and largest B against 1 - beta and 1 + beta,\n"
    "               the theory's bounds (plain SGD's) are nan, and lr,\n"
    "               lr_factors, epoch and exit are refused\n"
    "  lr           a list of learning rates to verify at every batch size\n"
    "  lr_factors   a list of multiples of eta*(B) to verify at\n"
    "  phase        a phase diagram per case over the spec's batch sizes:\n"
    "               {\"lr\": \"A:B:N[:log]\" or a list (as for 'sgdstab\n"
    "               phase --lr'), \"lr_unit\": \"absolute\" (default) or\n"
    "               \"mean\" (multiples of the case's 2/lambda_max(H))};\n"
    "               writes phase[-CASE].csv, phase-boundary[-CASE].csv and\n"
    "               phase[-CASE].png (CASE only when there are several)\n"
    "  epoch        Monte Carlo of the one-epoch second-moment map ('sgdstab\n"
    "               simulate --threshold') at every batch size:\n"
    "               {\"samplings\": list of without|with|bernoulli|reshuffle\n"
    "               (default: the spec's sampling and reshuffle; reshuffle\n"
    "               needs B to divide n), \"lr_factors\": multiples of the\n"
    "               exact eta*(B) at which to estimate the rate, \"runs\":\n"
    "               sampled epochs (default 10000), \"seed\" (default 1)};\n"
    "               writes epoch-threshold.csv (threshold, standard error,\n"
    "               exact eta*(B), ratio), epoch-rate.csv (with lr_factors)\n"
    "               and epoch.png (threshold ratio against B)\n"
    "  exit         exit times of clipped SGD with Pareto noise from\n"
    "               delta_0 = 0 ('sgdstab simulate --radius'): {\"radius\": R,\n"
    "               \"noise_scale\": S, \"runs\" (default 200), \"steps\"\n"
    "               (default 1000000), \"seed\" (default 1), \"series\": [{\n"
    "               \"alpha\": A, \"clip\": b, \"lr\": \"A:B:N:log\" or a\n"
    "               list}, ...]}; writes exit.csv (per learning rate: exits,\n"
    "               censored mean, quantiles), exit-fit.csv (log-log slope of\n"
    "               the censored mean exit step in 1/eta, weighted by exits,\n"
    "               beside Wang-Oh-Rhee's 1 + (A - 1) ceil(R/b)) and exit.png\n"
    "  description  free text for the report\n"
    "Unknown keys, wrong types and parameters that do not apply to the family\n"
    "are errors naming the key; so is a problem file that cannot be loaded\n"
    "(key 'problem', with the loader's message).\n"
    "\n"
    "Options:\n"
    "  --out DIR     where to write (created if missing; files are replaced\n"
    "                whole, via temporary files)\n"
    "  --plot-size W,H  the size of every picture in pixels (at least\n"
    "                640,480; default 960,720 for phase, 960,640 for epoch,\n"
    "                960 wide and tall enough for the legend for exit)\n"
    "  --quiet       no progress lines on stderr\n"
    "  -h, --help    show this help\n"
    "\n"
    "Exit status: 0 on success, 1 on a bad spec or a failed computation, 2 on\n"
    "a usage error, 3 when a theorem check fails (a bug in sgdstab).\n";

/* NAME of SPEC: its file name without directories and .json. */
static void spec_name(const char *path, char *name, size_t size)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(name, size, "%s", base);
    size_t len = strlen(name);
    if (len > 5 && !strcmp(name + len - 5, ".json"))
        name[len - 5] = '\0';
}

int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_ARG("out", OPT_OUT), CLI_OPT_QUIET,
        CLI_ARG("plot-size", OPT_PLOT_SIZE), CLI_OPT_HELP, CLI_OPT_END};
    const char *path = NULL, *out_dir = NULL, *size = NULL;
    int quiet = 0, c, width = 0, height = 0;
    while ((c = cli_getopt(argc, argv, "run", opts)) != -1) {
        switch (c) {
        case 'h':
            fputs(RUN_HELP, stdout);
            return EXIT_OK;
        case 1:
            if (path)
                return cli_usage_error("run", "unexpected argument '%s'",
                                       optarg);
            path = optarg;
            break;
        case OPT_OUT:
            out_dir = optarg;
            break;
        case OPT_QUIET:
            quiet = 1;
            break;
        case OPT_PLOT_SIZE:
            if (cli_parse_plot_size("run", optarg, &width, &height))
                return EXIT_USAGE;
            size = optarg;
            break;
        default:
            return EXIT_USAGE;
        }
    }
    if (!path)
        return cli_usage_error("run", "missing SPEC.json");
    if ((out_dir && strlen(out_dir) >= 4000) || strlen(path) >= 4000)
        return cli_usage_error("run", "file or directory name too long");
    run_spec sp;
    int st = run_spec_load(&sp, path);
    char name[256], dir[4096], command[8192];
    spec_name(path, name, sizeof name);
    if (!out_dir) {
        snprintf(dir, sizeof dir, "results/%s", name);
        out_dir = dir;
    }
    snprintf(command, sizeof command, "sgdstab run %s%s%s%s%s", path,
             out_dir == dir ? "" : " --out ", out_dir == dir ? "" : out_dir,
             size ? " --plot-size " : "", size ? size : "");
    run_context ctx = {out_dir, name, width, height, NULL};
    size_t bugs = 0;
    if (!st)
        st = run_experiment(&sp, &ctx, command, !quiet && isatty(STDERR_FILENO),
                            &bugs);
    run_spec_free(&sp);
    if (!st && !quiet)
        printf("sgdstab run: %zu case%s of %s written to %s/\n", sp.ncases,
               sp.ncases == 1 ? "" : "s", path, out_dir);
    return !st && bugs ? EXIT_THEOREM_FAILS : st;
}
