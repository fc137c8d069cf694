/* sgdstab synth FAMILY -o OUT.npz: an exact interpolating minimum of a
 * synthetic model family (synth.h), written as an .npz. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>

#include "commands.h"
#include "exit_status.h"
#include "options.h"
#include "output.h"
#include "report.h"
#include "sgdstab/status.h"
#include "sgdstab/synth.h"

enum {
    OPT_SAMPLES = OPT_FIRST_PRIVATE, OPT_INPUTS, OPT_OUTPUTS, OPT_WIDTH,
    OPT_DEPTH, OPT_ACTIVATION, OPT_SPECTRUM, OPT_RESCALE, OPT_EXTRA
};

static const char SYNTH_HELP[] =
    "Usage: sgdstab synth FAMILY -o OUT.npz [--samples N] [--inputs D]\n"
    "                     [--outputs K] [--width M] [--depth L]\n"
    "                     [--activation relu|tanh]\n"
    "                     [--spectrum iso|power:ALPHA] [--rescale C]\n"
    "                     [--extra E] [--seed S] [--json]\n"
    "\n"
    "Write an exact interpolating minimum of a synthetic model, built from a\n"
    "teacher without training: the per-sample output Jacobian J there, the\n"
    "data it fits and the parameters theta, as an .npz that the other\n"
    "commands (and np.load) read.\n"
    "\n"
    "Families (theta: the trained matrices, row-major, in this order):\n"
    "  linear       f(x) = W x; theta = W (k x d), the teacher itself\n"
    "  rfm          f(x) = A act(F x)/sqrt(m) with F (m x d) fixed at random;\n"
    "               theta = A (k x m), the teacher itself\n"
    "  deep-linear  f(x) = W_L ... W_1 x, hidden width m; theta = W_1, ...,\n"
    "               W_L, the balanced factorization of a teacher W* (k x d),\n"
    "               then W_1 -> C W_1, W_L -> W_L / C\n"
    "  two-layer    f(x) = sum_j a_j relu(w_j . x): the M teacher neurons and\n"
    "               E extra ones with a_j = 0; theta = W (rows w_j), A\n"
    "               (columns a_j); every neuron becomes (w_j / C, C a_j)\n"
    "Inputs x ~ N(0, diag(s_1^2, ..., s_d^2)) with s_j^2 proportional to 1\n"
    "(iso) or j^-ALPHA (power:ALPHA), scaled so that sum_j s_j^2 = 1; targets\n"
    "y = teacher(x), so the loss (1/2n) sum_i |f(x_i) - y_i|^2 is zero at\n"
    "theta up to rounding.\n"
    "\n"
    "Options:\n"
    "  -o, --output OUT.npz  the file to write (required); arrays J (n, p) or\n"
    "                    (n, k, p), X (n, d), Y (n, k), theta (p,), F (m, d)\n"
    "                    for rfm, and meta.json: the parameters, the loss\n"
    "                    convention, the training residuals (max_residual,\n"
    "                    residual_rms, target_rms: see 'sgdstab info\n"
    "                    --help') and the blocks of theta\n"
    "  --samples N       samples n (default 200)\n"
    "  --inputs D        input dimension d (default 20)\n"
    "  --outputs K       outputs per sample k (default 1)\n"
    "  --width M         rfm: features; deep-linear: hidden width, at least\n"
    "                    min(k, d); two-layer: teacher neurons (default 64)\n"
    "  --depth L         deep-linear: layers, at least 2 (default 3)\n"
    "  --activation A    rfm: relu (default) or tanh\n"
    "  --spectrum S      input covariance: iso (default) or power:ALPHA with\n"
    "                    ALPHA >= 0\n"
    "  --rescale C       deep-linear, two-layer: the member C > 0 of the\n"
    "                    rescaling family, the same function with a different\n"
    "                    sharpness (default 1: balanced, the teacher)\n"
    "  --extra E         two-layer: extra zero-output neurons (default 0)\n"
    "  --seed S          random seed (default 0); a seed gives the same file\n"
    "                    byte for byte\n"
    "  --json            print the metadata and \"file\" as JSON on stdout\n"
    "  -h, --help        show this help\n"
    "\n"
    "An option the family does not use is an error.  No array may hold more\n"
    "than 2^28 values (J holds n*k*p).\n"
    "\n"
    CLI_HELP_EXIT_STATUSES;

/* Options only some families take, with their bit in sgdstab_synth_uses. */
static const struct {
    int opt;
    unsigned bit;
    const char *name;
} FAMILY_OPTIONS[] = {
    {OPT_WIDTH, SGDSTAB_SYNTH_USES_WIDTH, "width"},
    {OPT_DEPTH, SGDSTAB_SYNTH_USES_DEPTH, "depth"},
    {OPT_ACTIVATION, SGDSTAB_SYNTH_USES_ACTIVATION, "activation"},
    {OPT_RESCALE, SGDSTAB_SYNTH_USES_RESCALE, "rescale"},
    {OPT_EXTRA, SGDSTAB_SYNTH_USES_EXTRA, "extra"},
};
#define NFAMILY_OPTIONS (sizeof FAMILY_OPTIONS / sizeof FAMILY_OPTIONS[0])

typedef struct {
    sgdstab_synth_params par;
    const char *family;  /* the FAMILY operand */
    const char *output;
    unsigned given;      /* bits of the family options seen */
    int json;
} synth_args;

static int parse_size(const char *opt, const char *arg, size_t min, size_t *out)
{
    return cli_parse_size("synth", opt, arg, min, out) ? EXIT_USAGE : EXIT_OK;
}

static int parse_option(synth_args *a, int c, const char *arg)
{
    sgdstab_synth_params *p = &a->par;
    for (size_t i = 0; i < NFAMILY_OPTIONS; i++)
        if (FAMILY_OPTIONS[i].opt == c)
            a->given |= FAMILY_OPTIONS[i].bit;
    size_t seed;
    switch (c) {
    case 1:
        if (a->family)
            return cli_usage_error("synth", "unexpected argument '%s'", arg);
        a->family = arg;
        return EXIT_OK;
    case 'o':
        a->output = arg;
        return EXIT_OK;
    case OPT_JSON:
        a->json = 1;
        return EXIT_OK;
    case OPT_SAMPLES: return parse_size("samples", arg, 1, &p->samples);
    case OPT_INPUTS: return parse_size("inputs", arg, 1, &p->inputs);
    case OPT_OUTPUTS: return parse_size("outputs", arg, 1, &p->outputs);
    case OPT_WIDTH: return parse_size("width", arg, 1, &p->width);
    case OPT_DEPTH: return parse_size("depth", arg, 2, &p->depth);
    case OPT_EXTRA: return parse_size("extra", arg, 0, &p->extra);
    case OPT_SEED:
        if (parse_size("seed", arg, 0, &seed))
            return EXIT_USAGE;
        p->seed = (unsigned long)seed;
        return EXIT_OK;
    case OPT_ACTIVATION:
        if (sgdstab_activation_parse(arg, &p->activation))
            return cli_usage_error("synth", "--activation: '%s' is not relu "
                                   "or tanh", arg);
        return EXIT_OK;
    case OPT_SPECTRUM:
        if (sgdstab_synth_spectrum_parse(arg, &p->alpha))
            return cli_usage_error("synth", "--spectrum: '%s' is not iso or "
                                   "power:ALPHA with a finite ALPHA >= 0", arg);
        return EXIT_OK;
    case OPT_RESCALE:
        if (cli_parse_double("synth", "rescale", arg, &p->rescale))
            return EXIT_USAGE;
        if (!(p->rescale > 0))
            return cli_usage_error("synth", "--rescale must be positive, not "
                                   "%s", arg);
        return EXIT_OK;
    default:  /* '?' from cli_getopt_short: already reported */
        return EXIT_USAGE;
    }
}

/* FAMILY known, no option it does not use, -o given, parameters valid. */
static int check_args(synth_args *a)
{
    if (!a->family)
        return cli_usage_error("synth", "missing FAMILY (linear, rfm, "
                               "deep-linear or two-layer)");
    if (sgdstab_synth_family_parse(a->family, &a->par.family))
        return cli_usage_error("synth", "unknown family '%s' (use linear, "
                               "rfm, deep-linear or two-layer)", a->family);
    unsigned unused = a->given & ~sgdstab_synth_uses(a->par.family);
    for (size_t i = 0; i < NFAMILY_OPTIONS; i++)
        if (unused & FAMILY_OPTIONS[i].bit)
            return cli_usage_error("synth", "--%s does not apply to family "
                                   "'%s'", FAMILY_OPTIONS[i].name, a->family);
    if (!a->output)
        return cli_usage_error("synth", "missing -o/--output OUT.npz");
    sgdstab_error err;
    if (sgdstab_synth_check(&a->par, &err))
        return cli_usage_error("synth", "%s", err.msg);
    return EXIT_OK;
}

static void print_text(const sgdstab_synth *s, const char *path)
{
    printf("%s: %s minimum, n = %zu samples, k = %zu output%s, d = %zu "
           "inputs, p = %zu parameters (seed %lu); largest training residual "
           "%.3g\n", path, sgdstab_synth_family_name(s->params.family), s->n,
           s->k, s->k == 1 ? "" : "s", s->d, s->p, s->params.seed,
           s->residual);
}

int cmd_synth(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_ARG("samples", OPT_SAMPLES), CLI_ARG("inputs", OPT_INPUTS),
        CLI_ARG("outputs", OPT_OUTPUTS), CLI_ARG("width", OPT_WIDTH),
        CLI_ARG("depth", OPT_DEPTH), CLI_ARG("activation", OPT_ACTIVATION),
        CLI_ARG("spectrum", OPT_SPECTRUM), CLI_ARG("rescale", OPT_RESCALE),
        CLI_ARG("extra", OPT_EXTRA), CLI_OPT_SEED, CLI_ARG("output", 'o'),
        CLI_OPT_JSON, CLI_OPT_HELP, CLI_OPT_END};
    synth_args a = {.given = 0};
    sgdstab_synth_params_init(&a.par);
    int c;
    while ((c = cli_getopt_short(argc, argv, "synth", "o:", opts)) != -1) {
        if (c == 'h') {
            fputs(SYNTH_HELP, stdout);
            return EXIT_OK;
        }
        if (parse_option(&a, c, optarg))
            return EXIT_USAGE;
    }
    if (check_args(&a))
        return EXIT_USAGE;

    sgdstab_synth *s;
    sgdstab_error err;
    if (sgdstab_synth_generate(&a.par, &s, &err))
        return cli_report(&err);
    int status = EXIT_OK;
    if (sgdstab_synth_write(s, a.output, &err))
        status = cli_report(&err);
    else if (a.json)
        status = cli_json_print_text(sgdstab_synth_meta_json(s, a.output));
    else
        print_text(s, a.output);
    sgdstab_synth_free(s);
    return status;
}
