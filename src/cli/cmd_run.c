/* sgdstab run SPEC.json: an experiment on synthetic minima (synth.h) —
 * parameter sweeps, η*(B) with the theory's bounds (theory.h), and verify
 * checks — written as CSV tables, a JSON summary and a Markdown report. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "run_mc.h"
#include "sgdstab/synth.h"
#include "sgdstab/theory.h"

enum { EXIT_THEOREM = 3, OPT_OUT = OPT_FIRST_PRIVATE, OPT_QUIET,
       OPT_PLOT_SIZE };

#define SPEC_MAX_BYTES (1 << 20)
#define SPEC_MAX_AXES 4
#define SPEC_MAX_LRS 64
#define SPEC_MAX_CASES 10000

static const char RUN_HELP[] =
    "Usage: sgdstab run SPEC.json [--out DIR] [--plot-size W,H] [--quiet]\n"
    "\n"
    "Run the experiment SPEC.json describes and write its results to DIR\n"
    "(default: results/NAME, NAME being SPEC's file name without .json):\n"
    "\n"
    "  cases.csv     one row per case: the swept parameters, n k p d rank,\n"
    "                the training residual, sharpness, hessian_frobenius,\n"
    "                hessian_trace, nonuniformity, alignment_min,\n"
    "                lr_critical_mean\n"
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
    "  family       (required) linear | rfm | deep-linear | two-layer\n"
    "  batch        (required) a list of batch sizes, or a string as for\n"
    "               'sgdstab critical --batch' in which the letter n stands\n"
    "               for the number of samples (e.g. \"all\", \"1:n:16:log\")\n"
    "  params       an object of 'sgdstab synth' parameters: samples inputs\n"
    "               outputs width depth activation spectrum rescale extra\n"
    "               seed (numbers, or strings for activation and spectrum)\n"
    "  sweep        an object mapping some of those parameters to lists of\n"
    "               values; the cases are all combinations (first key\n"
    "               slowest), each with params for the rest\n"
    "  sampling     without (default) | with | bernoulli\n"
    "  loss         half-mean (default) | mse | a positive number\n"
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
    "are errors naming the key.\n"
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

/* ------------------------------------------------------------ the spec */

typedef struct {
    const char *key;
    const cJSON *values;  /* a non-empty array */
} sweep_axis;

typedef struct {
    const char *path;
    cJSON *root;
    const char *description;
    sgdstab_synth_params base;
    sweep_axis axis[SPEC_MAX_AXES];
    size_t naxes, ncases;
    const cJSON *batch;
    sgdstab_sampling sampling;
    const char *loss;          /* as the report names it */
    const char *loss_name;     /* for sgdstab_loss_scale, per case's k */
    char loss_number[32];
    double lr[SPEC_MAX_LRS], factor[SPEC_MAX_LRS];
    size_t nlr, nfactor;
    double *phase_lr;          /* NULL: no phase diagrams */
    size_t phase_nl;
    int phase_log, phase_relative;
    cli_phase_style style;     /* phase.title, legend, curves, color... */
    int width, height;         /* --plot-size; 0: each picture's default */
    run_mc *mc;                /* NULL: no Monte Carlo experiments */
} run_spec;

static int spec_error(const run_spec *sp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int spec_error(const run_spec *sp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_error_line("run", sp->path, fmt, ap);
    va_end(ap);
    return EXIT_DATA;
}

static const char *const PARAM_KEYS[] = {
    "samples", "inputs", "outputs", "width", "depth", "activation",
    "spectrum", "rescale", "extra", "seed"};
#define NPARAM_KEYS (sizeof PARAM_KEYS / sizeof PARAM_KEYS[0])

/* Which family option bit (synth.h) a parameter needs; 0: every family. */
static unsigned param_use(const char *key)
{
    static const struct { const char *key; unsigned use; } uses[] = {
        {"width", SGDSTAB_SYNTH_USES_WIDTH},
        {"depth", SGDSTAB_SYNTH_USES_DEPTH},
        {"activation", SGDSTAB_SYNTH_USES_ACTIVATION},
        {"rescale", SGDSTAB_SYNTH_USES_RESCALE},
        {"extra", SGDSTAB_SYNTH_USES_EXTRA}};
    for (size_t i = 0; i < sizeof uses / sizeof uses[0]; i++)
        if (!strcmp(key, uses[i].key))
            return uses[i].use;
    return 0;
}

static int is_param_key(const char *key)
{
    for (size_t i = 0; i < NPARAM_KEYS; i++)
        if (!strcmp(key, PARAM_KEYS[i]))
            return 1;
    return 0;
}

/* A JSON number that is a whole number in [min, 2^53]. */
static int whole_number(const cJSON *v, double min, size_t *out)
{
    if (!cJSON_IsNumber(v))
        return -1;
    double x = v->valuedouble;
    if (!(x >= min) || x > 9007199254740992.0 || x != floor(x))
        return -1;
    *out = (size_t)x;
    return 0;
}

/* Set parameter `key` of par from the JSON value v; `where` names it in
 * messages (e.g. "params.width" or "sweep.width[2]"). */
static int set_param(const run_spec *sp, sgdstab_synth_params *par,
                     const char *key, const cJSON *v, const char *where)
{
    size_t z;
    if (!strcmp(key, "activation")) {
        if (!cJSON_IsString(v) ||
            sgdstab_activation_parse(v->valuestring, &par->activation))
            return spec_error(sp, "key '%s': need \"relu\" or \"tanh\"",
                              where);
        return EXIT_OK;
    }
    if (!strcmp(key, "spectrum")) {
        if (!cJSON_IsString(v) ||
            sgdstab_synth_spectrum_parse(v->valuestring, &par->alpha))
            return spec_error(sp, "key '%s': need \"iso\" or \"power:ALPHA\""
                              " with ALPHA >= 0", where);
        return EXIT_OK;
    }
    if (!strcmp(key, "rescale")) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) ||
            !isfinite(v->valuedouble))
            return spec_error(sp, "key '%s': need a positive number", where);
        par->rescale = v->valuedouble;
        return EXIT_OK;
    }
    int zero_ok = !strcmp(key, "extra") || !strcmp(key, "seed");
    if (whole_number(v, zero_ok ? 0 : 1, &z))
        return spec_error(sp, "key '%s': need a whole number >= %d", where,
                          zero_ok ? 0 : 1);
    if (!strcmp(key, "samples"))
        par->samples = z;
    else if (!strcmp(key, "inputs"))
        par->inputs = z;
    else if (!strcmp(key, "outputs"))
        par->outputs = z;
    else if (!strcmp(key, "width"))
        par->width = z;
    else if (!strcmp(key, "depth"))
        par->depth = z;
    else if (!strcmp(key, "extra"))
        par->extra = z;
    else
        par->seed = (unsigned long)z;
    return EXIT_OK;
}

/* A parameter key of params or sweep: known, and used by the family. */
static int check_param_key(const run_spec *sp, const char *section,
                           const char *key)
{
    if (!is_param_key(key))
        return spec_error(sp, "unknown key '%s.%s' (parameters: samples "
                          "inputs outputs width depth activation spectrum "
                          "rescale extra seed)", section, key);
    unsigned use = param_use(key);
    if (use && !(sgdstab_synth_uses(sp->base.family) & use))
        return spec_error(sp, "key '%s.%s' does not apply to family '%s'",
                          section, key,
                          sgdstab_synth_family_name(sp->base.family));
    return EXIT_OK;
}

/* A list of positive finite numbers into out (at most SPEC_MAX_LRS). */
static int number_list(const run_spec *sp, const cJSON *v, const char *key,
                       double *out, size_t *count)
{
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1 ||
        cJSON_GetArraySize(v) > SPEC_MAX_LRS)
        return spec_error(sp, "key '%s': need a list of 1 to %d positive "
                          "numbers", key, SPEC_MAX_LRS);
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsNumber(e) || !(e->valuedouble > 0) ||
            !isfinite(e->valuedouble))
            return spec_error(sp, "key '%s[%zu]': need a positive number",
                              key, i);
        out[i++] = e->valuedouble;
    }
    *count = i;
    return EXIT_OK;
}

/* A string key of "phase" parsed by one of phase's option parsers. */
static int phase_string(run_spec *sp, const cJSON *ph, const char *key,
                        int (*parse)(run_spec *sp, const char *text),
                        const char *need)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ph, key);
    if (v && (!cJSON_IsString(v) || parse(sp, v->valuestring)))
        return spec_error(sp, "key 'phase.%s': need %s", key, need);
    return EXIT_OK;
}

static int phase_title(run_spec *sp, const char *t)
{
    sp->style.title = t;
    return cli_check_title(NULL, t);
}

static int phase_legend(run_spec *sp, const char *t)
{
    return cli_parse_legend(NULL, t, &sp->style.legend);
}

static int phase_curves(run_spec *sp, const char *t)
{
    return cli_parse_curves(NULL, t, &sp->style.curves);
}

static int phase_color(run_spec *sp, const char *t)
{
    return cli_parse_color(NULL, t, &sp->style.color);
}

static int phase_color_range(run_spec *sp, const char *t)
{
    return cli_parse_color_range(NULL, t, sp->style.color,
                                 sp->style.color_range);
}

/* "phase": {"lr": "A:B:N[:log]" | "a,b,c" | [numbers], "lr_unit": ...,
 * and the picture's "title", "legend", "curves", "color", "color_range"
 * as for the phase options}. */
static int parse_phase(run_spec *sp, const cJSON *ph)
{
    static const char *const KEYS[] = {"lr", "lr_unit", "title", "legend",
                                       "curves", "color", "color_range"};
    if (!cJSON_IsObject(ph))
        return spec_error(sp, "key 'phase': need an object {\"lr\": ..., "
                          "\"lr_unit\": ...}");
    const cJSON *e;
    cJSON_ArrayForEach(e, ph) {
        int known = 0;
        for (size_t i = 0; i < sizeof KEYS / sizeof KEYS[0]; i++)
            known |= !strcmp(e->string, KEYS[i]);
        if (!known)
            return spec_error(sp, "key 'phase.%s': unknown (keys: lr "
                              "lr_unit title legend curves color "
                              "color_range)", e->string);
    }
    const cJSON *lr = cJSON_GetObjectItemCaseSensitive(ph, "lr");
    const cJSON *unit = cJSON_GetObjectItemCaseSensitive(ph, "lr_unit");
    if (unit && (!cJSON_IsString(unit) ||
                 (strcmp(unit->valuestring, "absolute") &&
                  strcmp(unit->valuestring, "mean"))))
        return spec_error(sp, "key 'phase.lr_unit': need \"absolute\" or "
                          "\"mean\"");
    sp->phase_relative = unit && !strcmp(unit->valuestring, "mean");
    if (run_parse_lrs(lr, &sp->phase_lr, &sp->phase_nl, &sp->phase_log))
        return spec_error(sp, "key 'phase.lr': need a string such as "
                          "\"0.1:2:40:log\" (A:B[:N][:log], 0 < A < B) or a "
                          "list of positive learning rates");
    int st;
    /* color before color_range: the range's meaning depends on it */
    if ((st = phase_string(sp, ph, "title", phase_title, "a string without "
                           "control characters, at most 400 bytes")) ||
        (st = phase_string(sp, ph, "legend", phase_legend, "\"below\", "
                           "\"top-left\", \"top-right\", \"bottom-left\", "
                           "\"bottom-right\" or \"none\"")) ||
        (st = phase_string(sp, ph, "curves", phase_curves, "a comma-"
                           "separated string of exact mean wu-ma-e "
                           "wu-wang-su mm-top mm-trace, or all or none")) ||
        (st = phase_string(sp, ph, "color", phase_color, "\"rate\" or "
                           "\"relative\"")) ||
        (st = phase_string(sp, ph, "color_range", phase_color_range,
                           sp->style.color == CLI_COLOR_RATE
                           ? "\"LO:HI\" with LO < 0 < HI (escape rates)"
                           : "\"LO:HI\" with 0 < LO < 1 < HI (eta/eta*)")))
        return st;
    return EXIT_OK;
}

static int parse_spec_keys(run_spec *sp)
{
    const cJSON *root = sp->root, *e;
    static const char *const KEYS[] = {"family", "batch", "params", "sweep",
                                       "sampling", "loss", "lr", "lr_factors",
                                       "phase", "epoch", "exit",
                                       "description"};
    cJSON_ArrayForEach(e, root) {
        int known = 0;
        for (size_t i = 0; i < sizeof KEYS / sizeof KEYS[0]; i++)
            known |= !strcmp(e->string, KEYS[i]);
        if (!known)
            return spec_error(sp, "unknown key '%s' (keys: family batch params "
                              "sweep sampling loss lr lr_factors phase epoch "
                              "exit description)",
                              e->string);
    }
    const cJSON *fam = cJSON_GetObjectItemCaseSensitive(root, "family");
    if (!fam)
        return spec_error(sp, "missing key 'family'");
    if (!cJSON_IsString(fam) ||
        sgdstab_synth_family_parse(fam->valuestring, &sp->base.family))
        return spec_error(sp, "key 'family': need \"linear\", \"rfm\", "
                          "\"deep-linear\" or \"two-layer\"");
    sp->batch = cJSON_GetObjectItemCaseSensitive(root, "batch");
    if (!sp->batch)
        return spec_error(sp, "missing key 'batch'");
    if (!cJSON_IsString(sp->batch) &&
        (!cJSON_IsArray(sp->batch) || cJSON_GetArraySize(sp->batch) < 1))
        return spec_error(sp, "key 'batch': need a list of batch sizes or a "
                          "string such as \"1:n:16:log\"");
    if ((e = cJSON_GetObjectItemCaseSensitive(root, "description"))) {
        if (!cJSON_IsString(e))
            return spec_error(sp, "key 'description': need a string");
        sp->description = e->valuestring;
    }
    if ((e = cJSON_GetObjectItemCaseSensitive(root, "sampling")) &&
        (!cJSON_IsString(e) ||
         sgdstab_sampling_parse(e->valuestring, &sp->sampling) ||
         sp->sampling == SGDSTAB_SAMPLING_RESHUFFLE))
        return spec_error(sp, "key 'sampling': need \"without\", \"with\" or "
                          "\"bernoulli\"");
    if ((e = cJSON_GetObjectItemCaseSensitive(root, "loss"))) {
        if (cJSON_IsString(e) && !strcmp(e->valuestring, "half-mean")) {
            sp->loss_name = "half-mean";
        } else if (cJSON_IsString(e) && !strcmp(e->valuestring, "mse")) {
            sp->loss = sp->loss_name = "mse";
        } else if (cJSON_IsNumber(e) && e->valuedouble > 0 &&
                   isfinite(e->valuedouble)) {
            sp->loss = "scale";
            snprintf(sp->loss_number, sizeof sp->loss_number, "%.17g",
                     e->valuedouble);
            sp->loss_name = sp->loss_number;
        } else {
            return spec_error(sp, "key 'loss': need \"half-mean\", \"mse\" or a "
                              "positive number");
        }
    }
    int st;
    if ((e = cJSON_GetObjectItemCaseSensitive(root, "lr")) &&
        (st = number_list(sp, e, "lr", sp->lr, &sp->nlr)))
        return st;
    if ((e = cJSON_GetObjectItemCaseSensitive(root, "lr_factors")) &&
        (st = number_list(sp, e, "lr_factors", sp->factor, &sp->nfactor)))
        return st;
    if ((e = cJSON_GetObjectItemCaseSensitive(root, "phase")) &&
        (st = parse_phase(sp, e)))
        return st;
    return run_mc_parse(sp->path, cJSON_GetObjectItemCaseSensitive(root,
                                                                   "epoch"),
                        cJSON_GetObjectItemCaseSensitive(root, "exit"),
                        sp->sampling, &sp->mc);
}

static int parse_params(run_spec *sp)
{
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(sp->root, "params");
    const cJSON *sweep = cJSON_GetObjectItemCaseSensitive(sp->root, "sweep");
    const cJSON *e;
    char where[64];
    int st;
    if (params && !cJSON_IsObject(params))
        return spec_error(sp, "key 'params': need an object");
    if (sweep && !cJSON_IsObject(sweep))
        return spec_error(sp, "key 'sweep': need an object");
    cJSON_ArrayForEach(e, params) {
        snprintf(where, sizeof where, "params.%s", e->string);
        if ((st = check_param_key(sp, "params", e->string)) ||
            (st = set_param(sp, &sp->base, e->string, e, where)))
            return st;
    }
    sp->ncases = 1;
    cJSON_ArrayForEach(e, sweep) {
        if ((st = check_param_key(sp, "sweep", e->string)))
            return st;
        if (cJSON_GetObjectItemCaseSensitive(params, e->string))
            return spec_error(sp, "key '%s' is both in params and in sweep",
                              e->string);
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) < 1)
            return spec_error(sp, "key 'sweep.%s': need a non-empty list",
                              e->string);
        if (sp->naxes == SPEC_MAX_AXES)
            return spec_error(sp, "key 'sweep': at most %d parameters",
                              SPEC_MAX_AXES);
        /* Check every value now, so that a bad one fails before any work. */
        sgdstab_synth_params scratch = sp->base;
        size_t i = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, e) {
            snprintf(where, sizeof where, "sweep.%s[%zu]", e->string, i++);
            if ((st = set_param(sp, &scratch, e->string, v, where)))
                return st;
        }
        sp->axis[sp->naxes++] = (sweep_axis){e->string, e};
        sp->ncases *= i;
        if (sp->ncases > SPEC_MAX_CASES)
            return spec_error(sp, "key 'sweep': more than %d cases",
                              SPEC_MAX_CASES);
    }
    return EXIT_OK;
}

static void spec_init(run_spec *sp, const char *path)
{
    memset(sp, 0, sizeof *sp);
    sp->path = path;
    sp->loss = sp->loss_name = "half-mean";
    cli_phase_style_init(&sp->style);
    sgdstab_synth_params_init(&sp->base);
}

static void spec_free(run_spec *sp)
{
    cJSON_Delete(sp->root);
    free(sp->phase_lr);
    run_mc_free(sp->mc);
    sp->root = NULL;
    sp->phase_lr = NULL;
    sp->mc = NULL;
}

/* The first key that appears twice in one object of v, or NULL: cJSON
 * keeps both, and a spec must not say two things. */
static const char *duplicate_key(const cJSON *v)
{
    const cJSON *a, *b;
    cJSON_ArrayForEach(a, v) {
        if (cJSON_IsObject(v))
            for (b = a->next; b; b = b->next)
                if (!strcmp(a->string, b->string))
                    return a->string;
        const char *d = duplicate_key(a);
        if (d)
            return d;
    }
    return NULL;
}

/* Parse and validate a spec's text (NUL-terminated, size bytes). */
static int parse_spec_text(run_spec *sp, const char *text, size_t size)
{
    const char *end = NULL;
    sp->root = cJSON_ParseWithOpts(text, &end, 1);
    if (!sp->root) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0, line = 1;
        for (size_t i = 0; i < at && i < size; i++)
            line += text[i] == '\n';
        return spec_error(sp, "not valid JSON (line %zu, byte %zu)", line, at);
    }
    if (!cJSON_IsObject(sp->root))
        return spec_error(sp, "need a JSON object at the top level");
    const char *dup = duplicate_key(sp->root);
    if (dup)
        return spec_error(sp, "key '%s' appears twice in one object", dup);
    int st = parse_spec_keys(sp);
    return st ? st : parse_params(sp);
}

static int load_spec(run_spec *sp, const char *path)
{
    spec_init(sp, path);
    FILE *f;
    size_t size;
    sgdstab_error err;
    if (sgdstab_open_input(path, &f, &size, &err))
        return cli_report(&err);
    if (size > SPEC_MAX_BYTES) {
        fclose(f);
        return spec_error(sp, "larger than %d bytes: not an experiment spec",
                          SPEC_MAX_BYTES);
    }
    char *text = malloc(size + 1);
    size_t got = text ? fread(text, 1, size, f) : 0;
    fclose(f);
    if (!text || got != size) {
        free(text);
        return spec_error(sp, "cannot read the file");
    }
    text[size] = '\0';
    int st = parse_spec_text(sp, text, size);
    free(text);
    return st;
}

int cli_run_spec_check(const char *file, const char *text, size_t size)
{
    run_spec sp;
    spec_init(&sp, file);
    int st = parse_spec_text(&sp, text, size);
    spec_free(&sp);
    return st;
}

/* Parameters of case c: base, then the sweep values, first axis slowest. */
static void case_params(const run_spec *sp, size_t c,
                        sgdstab_synth_params *par, const cJSON **value)
{
    *par = sp->base;
    for (size_t ax = sp->naxes; ax-- > 0;) {
        size_t len = (size_t)cJSON_GetArraySize(sp->axis[ax].values);
        value[ax] = cJSON_GetArrayItem(sp->axis[ax].values, (int)(c % len));
        c /= len;
        set_param(sp, par, sp->axis[ax].key, value[ax], "");
    }
}

/* The batch sizes of the spec for n samples. */
static int case_batches(const run_spec *sp, size_t n, size_t **list,
                        size_t *count)
{
    if (cJSON_IsString(sp->batch))
        return cli_parse_batches(NULL, sp->batch->valuestring, n, list, count)
                   ? spec_error(sp, "key 'batch': '%s' is not a list, all, "
                                "A:B, A:B:log or A:B:N:log (sizes from 1 to "
                                "at most a million of them, n the number of "
                                "samples)", sp->batch->valuestring)
                   : EXIT_OK;
    size_t m = (size_t)cJSON_GetArraySize(sp->batch), i = 0;
    size_t *v = malloc(m * sizeof *v);
    if (!v)
        return spec_error(sp, "out of memory");
    const cJSON *e;
    cJSON_ArrayForEach(e, sp->batch) {
        if (whole_number(e, 1, &v[i])) {
            free(v);
            return spec_error(sp, "key 'batch[%zu]': need a whole number >= 1",
                              i);
        }
        if (i > 0 && v[i] <= v[i - 1]) {
            free(v);
            return spec_error(sp, "key 'batch': sizes must increase");
        }
        i++;
    }
    *list = v;
    *count = m;
    return EXIT_OK;
}

/* ------------------------------------------------------------- outputs */

typedef struct {
    sgdstab_outfile *cases, *critical, *verify, *report;
    cJSON *summary, *case_list;
    size_t theorems_failed, not_monotone, verify_rows;
    const char *dir, *name;    /* NAME: the spec's, in default titles */
} run_output;

/* mkdir -p. */
static int make_dirs(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return -1;
    for (char *c = path + 1;; c++) {
        if (*c == '/' || *c == '\0') {
            char keep = *c;
            *c = '\0';
            if (mkdir(path, 0777) && errno != EEXIST)
                return -1;
            *c = keep;
            if (!keep)
                break;
        }
    }
    struct stat st;
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

static sgdstab_outfile *open_out(const char *dir, const char *name)
{
    char path[4200];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        fprintf(stderr, "sgdstab run: output directory name too long\n");
        return NULL;
    }
    return cli_csv_open(path);
}

static void csv_axes_header(FILE *f, const run_spec *sp)
{
    fputs("case,", f);
    for (size_t ax = 0; ax < sp->naxes; ax++)
        fprintf(f, "%s,", sp->axis[ax].key);
}

static void csv_axes(FILE *f, const run_spec *sp, size_t c,
                     const cJSON **value)
{
    fprintf(f, "%zu,", c);
    for (size_t ax = 0; ax < sp->naxes; ax++) {
        if (cJSON_IsString(value[ax]))
            fprintf(f, "%s,", value[ax]->valuestring);
        else
            cli_csv_number(f, value[ax]->valuedouble, ",");
    }
}

/* The CSV prefix of case c (or the header's, for value = NULL) as a
 * malloc'd string (NULL when out of memory). */
static char *axes_text(const run_spec *sp, size_t c, const cJSON **value)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    if (value)
        csv_axes(f, sp, c, value);
    else
        csv_axes_header(f, sp);
    if (fclose(f)) {
        free(text);
        return NULL;
    }
    return text;
}

static void write_headers(const run_spec *sp, run_output *o)
{
    FILE *f = sgdstab_outfile_stream(o->cases);
    csv_axes_header(f, sp);
    fputs("n,k,p,d,rank,residual,sharpness,hessian_frobenius,hessian_trace,"
          "nonuniformity,alignment_min,lr_critical_mean\n", f);
    f = sgdstab_outfile_stream(o->critical);
    csv_axes_header(f, sp);
    fputs("batch,b,lr_critical,rel_accuracy,lr_critical_mean,"
          "mulayoff_michaeli_top,mulayoff_michaeli_trace,wu_wang_su_lr,"
          "stable_sharpness\n", f);
}

/* The header of verify.csv, whose last columns are named after the checks
 * of the first verification. */
static void verify_header(const run_spec *sp, FILE *f,
                          const sgdstab_verification *v)
{
    csv_axes_header(f, sp);
    fputs("batch,lr,lr_factor,stable,verdict,spectral_radius,"
          "escape_rate_per_step,alignment_top,frobenius_bound,growth_bound,"
          "theorems_failed", f);
    for (size_t i = 0; i < v->nchecks; i++)
        fprintf(f, ",%s_holds,%s_ratio", v->checks[i].name,
                v->checks[i].name);
    fputc('\n', f);
}

/* ---------------------------------------------------------------- cases */

typedef struct {
    sgdstab_synth *syn;
    sgdstab_problem *prob;
    sgdstab_reduced *red;
    sgdstab_config cfg;        /* the spec's sampling and loss scale */
    sgdstab_stability *stab;
    sgdstab_theory th;
} run_case;

static void case_free(run_case *rc)
{
    sgdstab_stability_free(rc->stab);
    sgdstab_reduced_free(rc->red);
    sgdstab_problem_free(rc->prob);
    sgdstab_synth_free(rc->syn);
    memset(rc, 0, sizeof *rc);
}

static int case_setup(const run_spec *sp, const sgdstab_synth_params *par,
                      size_t c, run_case *rc)
{
    sgdstab_error err;
    memset(rc, 0, sizeof *rc);
    if (sgdstab_synth_generate(par, &rc->syn, &err) ||
        sgdstab_synth_problem(rc->syn, &rc->prob, &err) ||
        sgdstab_reduce(rc->prob, NULL, &rc->red, &err))
        goto fail;
    sgdstab_config_init(&rc->cfg);
    rc->cfg.sampling = sp->sampling;
    if (sgdstab_loss_scale(sp->loss_name, rc->prob->k, &rc->cfg.loss_scale,
                           &err) ||
        sgdstab_config_check(&rc->cfg, rc->red, 0, &err) ||
        !(rc->stab = sgdstab_stability_alloc(rc->red, &err)) ||
        sgdstab_theory_compute(rc->red, &rc->cfg, &rc->th, &err))
        goto fail;
    return EXIT_OK;
fail:
    case_free(rc);
    return spec_error(sp, "case %zu: %s", c, err.msg);
}

/* One verify row (and its JSON twin); counts failed theorems. */
static int verify_row(const run_spec *sp, run_output *o, run_case *rc,
                      size_t c, const cJSON **value, size_t batch, double lr,
                      double factor, cJSON *rows)
{
    sgdstab_verification v;
    sgdstab_error err;
    sgdstab_config at = rc->cfg;
    at.lr = lr;
    at.batch = batch;
    if (sgdstab_verify(rc->stab, &rc->th, &at, &v, &err))
        return spec_error(sp, "case %zu, B = %zu, lr = %g: %s", c, batch, lr,
                          err.msg);
    FILE *f = sgdstab_outfile_stream(o->verify);
    if (o->verify_rows++ == 0)
        verify_header(sp, f, &v);
    csv_axes(f, sp, c, value);
    fprintf(f, "%zu,", batch);
    cli_csv_number(f, lr, ",");
    cli_csv_number(f, factor, ",");
    fprintf(f, "%s,%s,", v.analysis.stable ? "true" : "false",
            sgdstab_verdict_name(v.analysis.verdict));
    cli_csv_number(f, v.analysis.radius.rho, ",");
    cli_csv_number(f, v.analysis.escape_rate_per_step, ",");
    cli_csv_number(f, v.alignment_top, ",");
    cli_csv_number(f, v.frobenius_bound, ",");
    cli_csv_number(f, v.growth_bound, ",");
    fprintf(f, "%zu", v.theorems_failed);
    for (size_t i = 0; i < v.nchecks; i++) {
        fprintf(f, ",%s,", v.checks[i].holds ? "true" : "false");
        cli_csv_number(f, v.checks[i].ratio, "");
    }
    fputc('\n', f);
    cJSON *r = cJSON_CreateObject();
    cli_json_size(r, "batch", batch);
    cli_json_number(r, "lr", lr);
    cli_json_number(r, "lr_factor", factor);
    cJSON_AddBoolToObject(r, "stable", v.analysis.stable);
    cJSON_AddStringToObject(r, "verdict",
                            sgdstab_verdict_name(v.analysis.verdict));
    cli_json_number(r, "spectral_radius", v.analysis.radius.rho);
    cli_json_number(r, "escape_rate_per_step", v.analysis.escape_rate_per_step);
    cli_json_number(r, "alignment_top", v.alignment_top);
    cli_json_size(r, "theorems_failed", v.theorems_failed);
    cJSON *checks = cJSON_AddObjectToObject(r, "checks");
    for (size_t i = 0; i < v.nchecks; i++) {
        cJSON *ch = cJSON_AddObjectToObject(checks, v.checks[i].name);
        cli_json_number(ch, "value", v.checks[i].value);
        cli_json_number(ch, "bound", v.checks[i].bound);
        cJSON_AddBoolToObject(ch, "holds", v.checks[i].holds);
        cJSON_AddBoolToObject(ch, "theorem", v.checks[i].theorem);
        if (v.checks[i].theorem && !v.checks[i].holds)
            fprintf(stderr, "sgdstab run: %s: case %zu, B = %zu, lr = %.17g: "
                    "THEOREM FAILS: %s (%s) -- this is a bug in sgdstab\n",
                    sp->path, c, batch, lr, v.checks[i].name,
                    v.checks[i].description);
    }
    cJSON_AddItemToArray(rows, r);
    o->theorems_failed += v.theorems_failed;
    return EXIT_OK;
}

/* All of case c: η*(B) with the bounds for every B, then the verify rows. */
/* The phase diagram of one case: phase[-c].csv, phase-boundary[-c].csv and
 * phase[-c].png in the output directory, and their names in the summary. */
static int phase_case(const run_spec *sp, run_output *o, run_case *rc,
                      size_t c, const size_t *batches, size_t nb, cJSON *jc)
{
    size_t nl = sp->phase_nl;
    double unit = sp->phase_relative ? sgdstab_lr_mean_limit(rc->red, &rc->cfg)
                                     : 1;
    double *lrs = malloc(nl * sizeof *lrs);
    sgdstab_phase_boundary *bd = calloc(nb, sizeof *bd);
    sgdstab_phase_point *grid = calloc(nb * nl, sizeof *grid);
    int st = EXIT_OK;
    if (!lrs || !bd || !grid) {
        st = spec_error(sp, "out of memory");
        goto done;
    }
    for (size_t j = 0; j < nl; j++)
        lrs[j] = unit * sp->phase_lr[j];
    sgdstab_error err;
    if (!(unit > 0) || !isfinite(unit)) {
        st = spec_error(sp, "case %zu: key 'phase.lr_unit': 2/lambda_max(H) "
                        "is not a positive number here", c);
        goto done;
    }
    if (sgdstab_phase_compute(rc->stab, &rc->th, &rc->cfg, batches, nb, lrs,
                              nl, bd, grid, NULL, NULL, &err)) {
        st = spec_error(sp, "case %zu: %s", c, err.msg);
        goto done;
    }
    char suffix[32] = "", names[3][64], paths[3][4200], title[512];
    if (sp->ncases > 1)
        snprintf(suffix, sizeof suffix, "-%zu", c);
    snprintf(names[0], sizeof names[0], "phase%s.csv", suffix);
    snprintf(names[1], sizeof names[1], "phase-boundary%s.csv", suffix);
    snprintf(names[2], sizeof names[2], "phase%s.png", suffix);
    for (int i = 0; i < 3; i++)
        snprintf(paths[i], sizeof paths[i], "%s/%s", o->dir, names[i]);
    char name[128];
    snprintf(name, sizeof name, "%s, case %zu (%s)", o->name, c,
             sgdstab_synth_family_name(sp->base.family));
    cli_phase_title(title, sizeof title, name, rc->prob->n, rc->prob->p,
                    sp->sampling, sp->loss);
    cli_plot_options po = {sp->style, sp->width ? sp->width : 960,
                           sp->height ? sp->height : 720,
                           cli_log_spaced_sizes(batches, nb), sp->phase_log,
                           sp->sampling, rc->prob->n, &rc->th};
    if (!po.style.title)
        po.style.title = title;
    cli_phase_files pf;
    if ((st = cli_phase_files_open("run", paths[0], paths[1], paths[2], &pf)) ||
        (st = cli_phase_files_write("run", &pf, &po, bd, nb, grid, lrs, nl)))
        goto done;
    size_t stable = 0;
    for (size_t i = 0; i < nb * nl; i++)
        stable += grid[i].stable != 0;
    cJSON *jp = cJSON_AddObjectToObject(jc, "phase");
    cJSON_AddStringToObject(jp, "grid_csv", names[0]);
    cJSON_AddStringToObject(jp, "boundary_csv", names[1]);
    cJSON_AddStringToObject(jp, "plot", names[2]);
    cli_json_size(jp, "batches", nb);
    cli_json_size(jp, "lrs", nl);
    cli_json_number(jp, "lr_min", lrs[0]);
    cli_json_number(jp, "lr_max", lrs[nl - 1]);
    cli_json_size(jp, "stable_points", stable);
done:
    free(lrs);
    free(bd);
    free(grid);
    return st;
}

/* The metadata of a case's problem, the library's text byte for byte where
 * it sits in summary.json (summary → cases → case → meta). */
static cJSON *meta_item(const sgdstab_synth *syn)
{
    char *text = sgdstab_synth_meta_json(syn, NULL);
    cJSON *item = text ? cli_json_verbatim(text, 3) : NULL;
    free(text);
    return item;
}

static int run_case_all(const run_spec *sp, run_output *o, size_t c)
{
    sgdstab_synth_params par;
    const cJSON *value[SPEC_MAX_AXES];
    case_params(sp, c, &par, value);
    run_case rc;
    int st = case_setup(sp, &par, c, &rc);
    if (st)
        return st;
    size_t *batches = NULL, nb = 0;
    sgdstab_critical *cr = NULL;
    sgdstab_error err;
    const sgdstab_problem *prob = rc.prob;
    const sgdstab_theory *th = &rc.th;
    if ((st = case_batches(sp, prob->n, &batches, &nb)))
        goto done;
    if (!(cr = malloc(nb * sizeof *cr))) {
        st = spec_error(sp, "out of memory");
        goto done;
    }
    if (sgdstab_critical_curve(rc.stab, &rc.cfg, batches, nb, cr, &err)) {
        st = spec_error(sp, "case %zu: key 'batch': %s", c, err.msg);
        goto done;
    }
    double mean = sgdstab_lr_mean_limit(rc.red, &rc.cfg);

    FILE *f = sgdstab_outfile_stream(o->cases);
    csv_axes(f, sp, c, value);
    fprintf(f, "%zu,%zu,%zu,%zu,%zu,", prob->n, prob->k, prob->p, rc.syn->d,
            rc.red->rank_J);
    double row[] = {rc.syn->residual, th->sharpness, th->hessian_frobenius,
                    th->hessian_trace, th->nonuniformity, th->alignment_min,
                    mean};
    for (size_t i = 0; i < sizeof row / sizeof row[0]; i++)
        cli_csv_number(f, row[i], i + 1 < sizeof row / sizeof row[0] ? ","
                                                                    : "\n");

    cJSON *jc = cJSON_CreateObject();
    cJSON_AddItemToArray(o->case_list, jc);
    cli_json_size(jc, "case", c);
    cJSON *jsweep = cJSON_AddObjectToObject(jc, "sweep");
    for (size_t ax = 0; ax < sp->naxes; ax++)
        cJSON_AddItemToObject(jsweep, sp->axis[ax].key,
                              cJSON_Duplicate(value[ax], 0));
    cJSON_AddItemToObject(jc, "meta", meta_item(rc.syn));
    cli_json_size(jc, "rank", rc.red->rank_J);
    cli_json_number(jc, "sharpness", th->sharpness);
    cli_json_number(jc, "hessian_frobenius", th->hessian_frobenius);
    cli_json_number(jc, "hessian_trace", th->hessian_trace);
    cli_json_number(jc, "nonuniformity", th->nonuniformity);
    cli_json_number(jc, "alignment_min", th->alignment_min);
    cli_json_number(jc, "lr_critical_mean", mean);
    cJSON *jcrit = cJSON_AddArrayToObject(jc, "critical");
    int monotone = 1;
    f = sgdstab_outfile_stream(o->critical);
    for (size_t i = 0; i < nb; i++) {
        double a, b;
        sgdstab_lr_bounds lb;
        sgdstab_batch_coefficients(sp->sampling, prob->n, batches[i], &a, &b,
                                   NULL);
        sgdstab_theory_lr_bounds(th, a, b, &lb);
        double eta = cr[i].lr_critical;
        /* Non-decreasing up to the solver's relative accuracy (1e-10). */
        if (i > 0 && eta < cr[i - 1].lr_critical * (1 - 1e-9))
            monotone = 0;
        double vals[] = {b, eta, cr[i].rel_accuracy, lb.mean,
                         lb.mulayoff_michaeli_top, lb.mulayoff_michaeli_trace,
                         lb.wu_wang_su,
                         eta * th->hessian_frobenius * sqrt(b)};
        const char *names[] = {"b", "lr_critical", "rel_accuracy",
                               "lr_critical_mean", "mulayoff_michaeli_top",
                               "mulayoff_michaeli_trace", "wu_wang_su_lr",
                               "stable_sharpness"};
        csv_axes(f, sp, c, value);
        fprintf(f, "%zu,", batches[i]);
        cJSON *r = cJSON_CreateObject();
        cli_json_size(r, "batch", batches[i]);
        for (size_t j = 0; j < sizeof vals / sizeof vals[0]; j++) {
            cli_csv_number(f, vals[j], j + 1 < sizeof vals / sizeof vals[0]
                                           ? "," : "\n");
            cli_json_number(r, names[j], vals[j]);
        }
        cJSON_AddItemToArray(jcrit, r);
    }
    cJSON_AddBoolToObject(jc, "lr_critical_nondecreasing", monotone);
    o->not_monotone += !monotone;

    if (o->verify) {
        cJSON *rows = cJSON_AddArrayToObject(jc, "verify");
        for (size_t i = 0; i < nb && !st; i++) {
            for (size_t j = 0; j < sp->nlr && !st; j++)
                st = verify_row(sp, o, &rc, c, value, batches[i], sp->lr[j],
                                sp->lr[j] / cr[i].lr_critical, rows);
            for (size_t j = 0; j < sp->nfactor && !st; j++)
                st = verify_row(sp, o, &rc, c, value, batches[i],
                                sp->factor[j] * cr[i].lr_critical,
                                sp->factor[j], rows);
        }
    }
    if (!st && sp->phase_lr)
        st = phase_case(sp, o, &rc, c, batches, nb, jc);
    if (!st && sp->mc) {
        char *axes = axes_text(sp, c, value), label[128];
        snprintf(label, sizeof label, "case %zu", c);
        cli_session ses = {rc.prob, rc.red, rc.cfg, rc.stab};
        st = axes ? run_mc_case(sp->mc, c, axes, label, &ses, batches, cr, nb,
                                jc)
                  : spec_error(sp, "out of memory");
        free(axes);
    }
done:
    free(batches);
    free(cr);
    case_free(&rc);
    return st;
}

/* A number of a JSON object, written either as a plain number or as the
 * raw 17-digit text of cli_json_number (null: NaN). */
static double json_number(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(obj, key);
    if (cJSON_IsNumber(v))
        return v->valuedouble;
    if (cJSON_IsRaw(v))
        return strtod(v->valuestring, NULL);
    return NAN;
}

/* An upper bound for the report: JSON null (NaN here) stands for +∞. */
static const char *bound_text(double x, char *buf, size_t size)
{
    if (isnan(x))
        return "∞";
    snprintf(buf, size, "%.6g", x);
    return buf;
}

/* What the report's columns mean for the spec's sampling: b, the
 * batch-noise coefficient, is what the Wu–Wang–Su quantity depends on. */
static void write_columns_note(const run_spec *sp, FILE *f)
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

/* report.md: what was run, how to run it again, and a table per case. */
static void write_report(const run_spec *sp, run_output *o, const char *name,
                         const char *command)
{
    FILE *f = sgdstab_outfile_stream(o->report);
    fprintf(f, "# %s\n\n", name);
    if (sp->description)
        fprintf(f, "%s\n\n", sp->description);
    fprintf(f, "Regenerate with:\n\n```sh\n%s\n```\n\n", command);
    fprintf(f, "Family `%s`, sampling `%s`, loss `%s`; %zu case%s. Tables: "
            "`cases.csv` (one row per case), `critical.csv` (η\\*(B) and its "
            "bounds)%s; everything also in `summary.json`.\n\n",
            sgdstab_synth_family_name(sp->base.family),
            sgdstab_sampling_name(sp->sampling), sp->loss, sp->ncases,
            sp->ncases == 1 ? "" : "s",
            o->verify ? ", `verify.csv` (the `verify` checks)" : "");
    fprintf(f, "Findings:\n\n- η\\*(B) is non-decreasing in B in %s.\n",
            o->not_monotone ? "NOT every case (a bug: see summary.json)"
                            : "every case");
    if (o->verify)
        fprintf(f, "- Theorem checks failed: %zu%s.\n", o->theorems_failed,
                o->theorems_failed ? " (a bug in sgdstab)" : "");
    fputs("\n| case |", f);
    for (size_t ax = 0; ax < sp->naxes; ax++)
        fprintf(f, " %s |", sp->axis[ax].key);
    fputs(" n | p | λmax(H) | ‖H‖_F | μ_min | B | η\\*(B) | 2/λmax | "
          "η\\*·‖H‖_F·√b | MM top | MM trace | WWS |\n|", f);
    for (size_t i = 0; i < 13 + sp->naxes; i++)
        fputs("---|", f);
    fputc('\n', f);
    const cJSON *jc;
    cJSON_ArrayForEach(jc, o->case_list) {
        /* n and p, read back from the metadata's text (meta_item). */
        const cJSON *text = cJSON_GetObjectItem(jc, "meta");
        cJSON *meta = cJSON_IsRaw(text) ? cJSON_Parse(text->valuestring)
                                        : NULL;
        const cJSON *sweep = cJSON_GetObjectItem(jc, "sweep");
        const cJSON *crit = cJSON_GetObjectItem(jc, "critical"), *r;
        size_t m = (size_t)cJSON_GetArraySize(crit), i = 0;
        /* At most 6 batch sizes per case in the table, spread evenly. */
        size_t stride = m > 6 ? (m + 5) / 6 : 1;
        cJSON_ArrayForEach(r, crit) {
            char wws[32];
            if (i++ % stride && i != m)
                continue;
            fprintf(f, "| %.0f |", json_number(jc, "case"));
            const cJSON *v;
            cJSON_ArrayForEach(v, sweep) {
                if (cJSON_IsString(v))
                    fprintf(f, " %s |", v->valuestring);
                else
                    fprintf(f, " %.6g |", v->valuedouble);
            }
            fprintf(f, " %.0f | %.0f | %.4g | %.4g | %.4g | %.0f | %.6g | "
                    "%.6g | %.4g | %.6g | %.6g | %s |\n",
                    json_number(meta, "n"), json_number(meta, "p"),
                    json_number(jc, "sharpness"),
                    json_number(jc, "hessian_frobenius"),
                    json_number(jc, "alignment_min"), json_number(r, "batch"),
                    json_number(r, "lr_critical"),
                    json_number(r, "lr_critical_mean"),
                    json_number(r, "stable_sharpness"),
                    json_number(r, "mulayoff_michaeli_top"),
                    json_number(r, "mulayoff_michaeli_trace"),
                    bound_text(json_number(r, "wu_wang_su_lr"), wws,
                               sizeof wws));
        }
        cJSON_Delete(meta);
    }
    write_columns_note(sp, f);
    cJSON_ArrayForEach(jc, o->case_list) {
        const cJSON *ph = cJSON_GetObjectItem(jc, "phase");
        if (!ph)
            continue;
        const char *png = cJSON_GetObjectItem(ph, "plot")->valuestring;
        fprintf(f, "\nPhase diagram of case %.0f (`%s`, tables `%s` and "
                "`%s`): %.0f of %.0f grid points stable, learning rates "
                "%.4g to %.4g.\n\n![phase diagram, case %.0f](%s)\n",
                json_number(jc, "case"), png,
                cJSON_GetObjectItem(ph, "grid_csv")->valuestring,
                cJSON_GetObjectItem(ph, "boundary_csv")->valuestring,
                json_number(ph, "stable_points"),
                json_number(ph, "batches") * json_number(ph, "lrs"),
                json_number(ph, "lr_min"), json_number(ph, "lr_max"),
                json_number(jc, "case"), png);
    }
    if (sp->mc)
        run_mc_report(sp->mc, f);
}

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
        CLI_OPT("out", required_argument, OPT_OUT),
        CLI_OPT("quiet", no_argument, OPT_QUIET),
        CLI_OPT("plot-size", required_argument, OPT_PLOT_SIZE), CLI_OPT_HELP,
        CLI_OPT_END};
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
    int st = load_spec(&sp, path);
    char name[256], dir[4096], command[8192];
    spec_name(path, name, sizeof name);
    if (!out_dir) {
        snprintf(dir, sizeof dir, "results/%s", name);
        out_dir = dir;
    }
    snprintf(command, sizeof command, "sgdstab run %s%s%s%s%s", path,
             out_dir == dir ? "" : " --out ", out_dir == dir ? "" : out_dir,
             size ? " --plot-size " : "", size ? size : "");
    sp.width = width;
    sp.height = height;
    run_output o = {0};
    o.dir = out_dir;
    o.name = name;
    if (!st && make_dirs(out_dir)) {
        fprintf(stderr, "sgdstab run: cannot create the directory %s: %s\n",
                out_dir, strerror(errno));
        st = EXIT_DATA;
    }
    /* Every file of the run, the cases' phase diagrams and pictures
     * included, is installed together at the very end, or none is. */
    int grouped = !st;
    if (grouped)
        sgdstab_outfile_group_begin();
    if (!st) {
        o.cases = open_out(out_dir, "cases.csv");
        o.critical = open_out(out_dir, "critical.csv");
        o.report = open_out(out_dir, "report.md");
        if (sp.nlr || sp.nfactor)
            o.verify = open_out(out_dir, "verify.csv");
        o.summary = cJSON_CreateObject();
        if (!o.cases || !o.critical || !o.report ||
            ((sp.nlr || sp.nfactor) && !o.verify) || !o.summary)
            st = EXIT_DATA;
    }
    if (!st && sp.mc) {
        char *header = axes_text(&sp, 0, NULL);
        st = header ? run_mc_open(sp.mc, out_dir, header)
                    : spec_error(&sp, "out of memory");
        free(header);
    }
    if (!st) {
        cJSON_AddStringToObject(o.summary, "spec", path);
        cJSON_AddStringToObject(o.summary, "command", command);
        cJSON_AddItemToObject(o.summary, "spec_contents",
                              cJSON_Duplicate(sp.root, 1));
        o.case_list = cJSON_AddArrayToObject(o.summary, "cases");
        write_headers(&sp, &o);
        int progress = !quiet && isatty(STDERR_FILENO);
        for (size_t k = 0; k < sp.ncases && !st; k++) {
            if (progress)
                fprintf(stderr, "\rsgdstab run: case %zu of %zu", k + 1,
                        sp.ncases);
            st = run_case_all(&sp, &o, k);
        }
        if (progress)
            fputc('\n', stderr);
    }
    if (!st) {
        cli_json_size(o.summary, "theorems_failed", o.theorems_failed);
        cJSON_AddBoolToObject(o.summary, "lr_critical_nondecreasing",
                              o.not_monotone == 0);
        write_report(&sp, &o, name, command);
        char *text = cJSON_Print(o.summary);
        sgdstab_outfile *js = text ? open_out(out_dir, "summary.json") : NULL;
        if (js)
            fprintf(sgdstab_outfile_stream(js), "%s\n", text);
        free(text);
        sgdstab_outfile *files[] = {js, o.cases, o.critical, o.report,
                                    o.verify};
        st = run_mc_finish(sp.mc, js ? EXIT_OK : EXIT_DATA, width, height);
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            if (!files[i])
                continue;
            if (st)
                sgdstab_outfile_abort(files[i]);
            else if (cli_csv_commit(files[i]))
                st = EXIT_DATA;
        }
        o.cases = o.critical = o.report = o.verify = NULL;
    }
    if (grouped && !st)
        st = cli_outputs_commit();
    else if (grouped)
        sgdstab_outfile_group_abort();
    sgdstab_outfile_abort(o.cases);
    sgdstab_outfile_abort(o.critical);
    sgdstab_outfile_abort(o.report);
    sgdstab_outfile_abort(o.verify);
    cJSON_Delete(o.summary);
    spec_free(&sp);
    if (!st && !quiet)
        printf("sgdstab run: %zu case%s of %s written to %s/\n", sp.ncases,
               sp.ncases == 1 ? "" : "s", path, out_dir);
    if (!st && (o.theorems_failed || o.not_monotone))
        st = EXIT_THEOREM;
    return st;
}
