#include "spec.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "../exit_status.h"
#include "../report.h"

#define SPEC_MAX_BYTES (1 << 20)
/* The largest whole number a double holds exactly. */
#define WHOLE_MAX 9007199254740992.0
/* Most clipped jumps a ball's radius may ask for (radius / clip): the
 * jumps an exit needs are counted in a size_t, and printed. */
#define EXIT_MAX_JUMPS 1e15

int run_spec_error(const run_spec *sp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_error_line("run", sp->path, fmt, ap);
    va_end(ap);
    return EXIT_DATA;
}

/* ------------------------------------------------------ generic checks */

/* key must be among the space-separated names of keys; where names its
 * object ("" at the top level). */
static int known_key(const run_spec *sp, const char *where, const char *key,
                     const char *keys)
{
    size_t len = strlen(key);
    for (const char *k = keys; *k;) {
        size_t kl = strcspn(k, " ");
        if (kl == len && !strncmp(k, key, len))
            return EXIT_OK;
        k += kl + (k[kl] == ' ');
    }
    return run_spec_error(sp, "unknown key '%s%s%s' (keys: %s)", where,
                          *where ? "." : "", key, keys);
}

static int known_keys(const run_spec *sp, const cJSON *obj, const char *where,
                      const char *keys)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, obj) {
        int st = known_key(sp, where, e->string, keys);
        if (st)
            return st;
    }
    return EXIT_OK;
}

/* A JSON number: whole, a whole number in [min, 2^53]; else a positive
 * finite number. */
static int need_number(const run_spec *sp, const cJSON *v, const char *where,
                       int whole, double min, double *out)
{
    double x = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (whole && !(x >= min && x <= WHOLE_MAX && x == floor(x)))
        return run_spec_error(sp, "key '%s': need a whole number >= %.0f",
                              where, min);
    if (!whole && !(x > 0 && isfinite(x)))
        return run_spec_error(sp, "key '%s': need a positive number", where);
    *out = x;
    return EXIT_OK;
}

/* The number obj.key, if present (need_number). */
static int optional_number(const run_spec *sp, const cJSON *obj,
                           const char *where, const char *key, int whole,
                           double min, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    char name[96];
    snprintf(name, sizeof name, "%s.%s", where, key);
    return v ? need_number(sp, v, name, whole, min, out) : EXIT_OK;
}

/* obj.key must be present. */
static int required(const run_spec *sp, const cJSON *obj, const char *where,
                    const char *key)
{
    if (cJSON_GetObjectItemCaseSensitive(obj, key))
        return EXIT_OK;
    return run_spec_error(sp, "missing key '%s%s%s'", where, *where ? "." : "",
                          key);
}

/* A seed (default 1): a whole number below 2^32. */
static int optional_seed(const run_spec *sp, const cJSON *obj,
                         const char *where, unsigned long *out)
{
    double seed = 1;
    int st = optional_number(sp, obj, where, "seed", 1, 0, &seed);
    if (st)
        return st;
    if (seed > 4294967295.0)
        return run_spec_error(sp, "key '%s.seed': above 2^32 - 1", where);
    *out = (unsigned long)seed;
    return EXIT_OK;
}

/* A list of 1 to RUN_MAX_LIST positive numbers. */
static int number_list(const run_spec *sp, const cJSON *v, const char *where,
                       double *out, size_t *count)
{
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1 ||
        cJSON_GetArraySize(v) > RUN_MAX_LIST)
        return run_spec_error(sp, "key '%s': need a list of 1 to %d positive "
                              "numbers", where, RUN_MAX_LIST);
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        char name[96];
        snprintf(name, sizeof name, "%s[%zu]", where, i);
        int st = need_number(sp, e, name, 0, 0, &out[i++]);
        if (st)
            return st;
    }
    *count = i;
    return EXIT_OK;
}

/* Insert x into the increasing list v[0..m) unless it is there; the new
 * length. */
static size_t insert_sorted(double *v, size_t m, double x)
{
    size_t i = m;
    while (i > 0 && v[i - 1] > x)
        i--;
    if (i > 0 && v[i - 1] == x)
        return m;
    memmove(v + i + 1, v + i, (m - i) * sizeof *v);
    v[i] = x;
    return m + 1;
}

/* Learning rates: "A:B:N[:log]" or "a,b,c" as for 'sgdstab phase --lr', or
 * a list of positive numbers; sorted, without duplicates.  0 or −1. */
static int parse_lrs(const cJSON *v, double **list, size_t *count,
                     int *log_spaced)
{
    *list = NULL;
    *count = 0;
    *log_spaced = 0;
    if (cJSON_IsString(v))
        return cli_parse_lrs(NULL, v->valuestring, list, count, log_spaced)
                   ? -1 : 0;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1)
        return -1;
    double *lr = malloc((size_t)cJSON_GetArraySize(v) * sizeof *lr);
    size_t m = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        /* as cli_parse_double takes them: normal, finite, and positive */
        if (!lr || !cJSON_IsNumber(e) || !(e->valuedouble >= DBL_MIN) ||
            !isfinite(e->valuedouble)) {
            free(lr);
            return -1;
        }
        m = insert_sorted(lr, m, e->valuedouble);
    }
    *list = lr;
    *count = m;
    return 0;
}

/* ------------------------------------------------- synth parameters */

#define PARAM_KEYS \
    "samples inputs outputs width depth activation spectrum rescale extra " \
    "seed"

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

/* Where a whole-number parameter goes in par; NULL for the others. */
static size_t *whole_param(sgdstab_synth_params *par, const char *key)
{
    static const char *const names[] = {"samples", "inputs", "outputs",
                                        "width", "depth", "extra"};
    size_t *fields[] = {&par->samples, &par->inputs, &par->outputs,
                        &par->width, &par->depth, &par->extra};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(key, names[i]))
            return fields[i];
    return NULL;
}

/* Set parameter `key` (a known one) of par from v; where names it in
 * messages (e.g. "params.width" or "sweep.width[2]"). */
static int set_param(const run_spec *sp, sgdstab_synth_params *par,
                     const char *key, const cJSON *v, const char *where)
{
    if (!strcmp(key, "activation")) {
        if (!cJSON_IsString(v) ||
            sgdstab_activation_parse(v->valuestring, &par->activation))
            return run_spec_error(sp, "key '%s': need \"relu\" or \"tanh\"",
                                  where);
        return EXIT_OK;
    }
    if (!strcmp(key, "spectrum")) {
        if (!cJSON_IsString(v) ||
            sgdstab_synth_spectrum_parse(v->valuestring, &par->alpha))
            return run_spec_error(sp, "key '%s': need \"iso\" or "
                                  "\"power:ALPHA\" with ALPHA >= 0", where);
        return EXIT_OK;
    }
    if (!strcmp(key, "rescale"))
        return need_number(sp, v, where, 0, 0, &par->rescale);
    size_t *field = whole_param(par, key);
    double x = 0;
    int st = need_number(sp, v, where, 1, field && field != &par->extra,
                         &x);
    if (st)
        return st;
    if (field)
        *field = (size_t)x;
    else
        par->seed = (unsigned long)x;
    return EXIT_OK;
}

/* A parameter key of params or sweep: known, and used by the family. */
static int check_param_key(const run_spec *sp, const char *section,
                           const char *key)
{
    int st = known_key(sp, section, key, PARAM_KEYS);
    if (st)
        return st;
    unsigned use = param_use(key);
    if (use && !(sgdstab_synth_uses(sp->base.family) & use))
        return run_spec_error(sp, "key '%s.%s' does not apply to family '%s'",
                              section, key,
                              sgdstab_synth_family_name(sp->base.family));
    return EXIT_OK;
}

/* A sweep's momentum: a number in [0, 1). */
static int momentum_value(const run_spec *sp, const cJSON *v,
                          const char *where, double *out)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < 1))
        return run_spec_error(sp, "key '%s': need a number in [0, 1)", where);
    *out = v->valuedouble;
    return EXIT_OK;
}

/* Set the sweep's value of key (a synth parameter, or the optimizer's
 * momentum). */
static int set_axis(const run_spec *sp, sgdstab_synth_params *par,
                    sgdstab_optimizer *opt, const char *key, const cJSON *v,
                    const char *where)
{
    if (!strcmp(key, "momentum"))
        return momentum_value(sp, v, where, &opt->momentum);
    return set_param(sp, par, key, v, where);
}

/* "params" and "sweep": the base parameters, and the axes of the cases. */
static int parse_params(run_spec *sp)
{
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(sp->root, "params");
    const cJSON *sweep = cJSON_GetObjectItemCaseSensitive(sp->root, "sweep");
    const cJSON *e;
    char where[96];
    int st;
    if (params && !cJSON_IsObject(params))
        return run_spec_error(sp, "key 'params': need an object");
    if (sweep && !cJSON_IsObject(sweep))
        return run_spec_error(sp, "key 'sweep': need an object");
    cJSON_ArrayForEach(e, params) {
        snprintf(where, sizeof where, "params.%s", e->string);
        if ((st = check_param_key(sp, "params", e->string)) ||
            (st = set_param(sp, &sp->base, e->string, e, where)))
            return st;
    }
    sp->ncases = 1;
    cJSON_ArrayForEach(e, sweep) {
        int momentum = !strcmp(e->string, "momentum");
        if (!momentum && sp->problem)
            return run_spec_error(sp, "key 'sweep.%s': with 'problem' the "
                                  "file is every case's problem: only "
                                  "\"momentum\" may be swept", e->string);
        if (!momentum && (st = check_param_key(sp, "sweep", e->string)))
            return st;
        sp->optimizer_given |= momentum;
        if (cJSON_GetObjectItemCaseSensitive(params, e->string))
            return run_spec_error(sp, "key '%s' is both in params and in "
                                  "sweep", e->string);
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) < 1)
            return run_spec_error(sp, "key 'sweep.%s': need a non-empty list",
                                  e->string);
        if (sp->naxes == RUN_MAX_AXES)
            return run_spec_error(sp, "key 'sweep': at most %d parameters",
                                  RUN_MAX_AXES);
        sgdstab_synth_params scratch = sp->base;
        sgdstab_optimizer opt = sp->optimizer;
        size_t i = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, e) {
            snprintf(where, sizeof where, "sweep.%s[%zu]", e->string, i++);
            sgdstab_error err;
            if ((st = set_axis(sp, &scratch, &opt, e->string, v, where)))
                return st;
            if (sgdstab_optimizer_check(&opt, 0, &err))
                return run_spec_error(sp, "key '%s': %s", where, err.msg);
            sp->plain &= opt.momentum == 0;
        }
        sp->axis[sp->naxes++] = (run_axis){e->string, e};
        sp->ncases *= i;
        if (sp->ncases > RUN_MAX_CASES)
            return run_spec_error(sp, "key 'sweep': more than %d cases",
                                  RUN_MAX_CASES);
    }
    return EXIT_OK;
}

void run_spec_case(const run_spec *sp, size_t c, sgdstab_synth_params *par,
                   sgdstab_optimizer *opt, const cJSON **value)
{
    *par = sp->base;
    *opt = sp->optimizer;
    for (size_t ax = sp->naxes; ax-- > 0;) {
        size_t len = (size_t)cJSON_GetArraySize(sp->axis[ax].values);
        value[ax] = cJSON_GetArrayItem(sp->axis[ax].values, (int)(c % len));
        c /= len;
        /* checked by parse_params: cannot fail */
        set_axis(sp, par, opt, sp->axis[ax].key, value[ax],
                 sp->axis[ax].key);
    }
}

/* "optimizer": SGD's momentum, dampening, nesterov and weight_decay (the
 * synthetic problems have no second moment for Adam), checked as the
 * library checks them. */
static int parse_optimizer(run_spec *sp, const cJSON *o)
{
    sgdstab_optimizer *opt = &sp->optimizer;
    int st;
    if (!cJSON_IsObject(o))
        return run_spec_error(sp, "key 'optimizer': need an object");
    if ((st = known_keys(sp, o, "optimizer",
                         "momentum dampening nesterov weight_decay")))
        return st;
    static const char *const keys[] = {"momentum", "dampening",
                                       "weight_decay"};
    double *fields[] = {&opt->momentum, &opt->dampening, &opt->weight_decay};
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
        if (v && !cJSON_IsNumber(v))
            return run_spec_error(sp, "key 'optimizer.%s': need a number",
                                  keys[i]);
        if (v)
            *fields[i] = v->valuedouble;
    }
    const cJSON *nesterov = cJSON_GetObjectItemCaseSensitive(o, "nesterov");
    if (nesterov && !cJSON_IsBool(nesterov))
        return run_spec_error(sp, "key 'optimizer.nesterov': need true or "
                              "false");
    opt->nesterov = cJSON_IsTrue(nesterov);
    sgdstab_error err;
    if (sgdstab_optimizer_check(opt, 0, &err))
        return run_spec_error(sp, "key 'optimizer': %s", err.msg);
    sp->plain = opt->momentum == 0 && opt->weight_decay == 0;
    sp->optimizer_given = 1;
    return EXIT_OK;
}

int run_spec_plain_only(const run_spec *sp, const char *why)
{
    static const char *const keys[] = {"lr", "lr_factors", "epoch", "exit"};
    for (int i = 0; i < 4; i++)
        if (cJSON_GetObjectItemCaseSensitive(sp->root, keys[i]))
            return run_spec_error(sp, "key '%s': the verify checks, the "
                                  "one-epoch map and exit times are plain "
                                  "SGD's, not with %s", keys[i], why);
    return EXIT_OK;
}

/* ------------------------------------------------------------ phase */

/* A string key of "phase" parsed by one of phase's option parsers. */
static int phase_string(run_spec *sp, const cJSON *ph, const char *key,
                        int (*parse)(run_phase_spec *ph, const char *text),
                        const char *need)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ph, key);
    if (v && (!cJSON_IsString(v) || parse(&sp->phase, v->valuestring)))
        return run_spec_error(sp, "key 'phase.%s': need %s", key, need);
    return EXIT_OK;
}

static int phase_title(run_phase_spec *ph, const char *t)
{
    ph->style.title = t;
    return cli_check_title(NULL, t);
}

static int phase_legend(run_phase_spec *ph, const char *t)
{
    return cli_parse_legend(NULL, t, &ph->style.legend);
}

static int phase_curves(run_phase_spec *ph, const char *t)
{
    return cli_parse_curves(NULL, t, &ph->style.curves);
}

static int phase_color(run_phase_spec *ph, const char *t)
{
    return cli_parse_color(NULL, t, &ph->style.color);
}

static int phase_color_range(run_phase_spec *ph, const char *t)
{
    return cli_parse_color_range(NULL, t, ph->style.color,
                                 ph->style.color_range);
}

/* The picture's keys of "phase", as for the phase options. */
static int phase_style(run_spec *sp, const cJSON *ph)
{
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
                           sp->phase.style.color == CLI_COLOR_RATE
                           ? "\"LO:HI\" with LO < 0 < HI (escape rates)"
                           : "\"LO:HI\" with 0 < LO < 1 < HI (eta/eta*)")))
        return st;
    return EXIT_OK;
}

/* "phase.lyapunov": {"runs": R, "steps": T, "seed": S}, as for
 * 'sgdstab phase --lyapunov' (SGDSTAB_LYAPUNOV_DEFAULTS). */
static int parse_phase_lyapunov(run_spec *sp, const cJSON *ly)
{
    const char *where = "phase.lyapunov";
    if (!cJSON_IsObject(ly))
        return run_spec_error(sp, "key '%s': need an object", where);
    sgdstab_lyapunov_options *o = &sp->phase.lyap;
    *o = (sgdstab_lyapunov_options)SGDSTAB_LYAPUNOV_DEFAULTS;
    double runs = (double)o->runs, steps = (double)o->steps;
    int st;
    if ((st = known_keys(sp, ly, where, "runs steps seed")) ||
        (st = optional_number(sp, ly, where, "runs", 1, 2, &runs)) ||
        (st = optional_number(sp, ly, where, "steps", 1, 10, &steps)) ||
        (st = optional_seed(sp, ly, where, &o->seed)))
        return st;
    o->runs = (size_t)runs;
    o->steps = (size_t)steps;
    sp->phase.lyapunov = 1;
    return EXIT_OK;
}

/* "phase": {"lr": "A:B:N[:log]" | "a,b,c" | [numbers], "lr_unit": ...,
 * "lyapunov": {...}, and the picture's keys}. */
static int parse_phase(run_spec *sp, const cJSON *ph)
{
    if (!cJSON_IsObject(ph))
        return run_spec_error(sp, "key 'phase': need an object {\"lr\": ..., "
                              "\"lr_unit\": ...}");
    int st = known_keys(sp, ph, "phase", "lr lr_unit title legend curves "
                        "color color_range lyapunov");
    if (st)
        return st;
    const cJSON *ly = cJSON_GetObjectItemCaseSensitive(ph, "lyapunov");
    if (ly && (st = parse_phase_lyapunov(sp, ly)))
        return st;
    const cJSON *unit = cJSON_GetObjectItemCaseSensitive(ph, "lr_unit");
    if (unit && (!cJSON_IsString(unit) ||
                 (strcmp(unit->valuestring, "absolute") &&
                  strcmp(unit->valuestring, "mean"))))
        return run_spec_error(sp, "key 'phase.lr_unit': need \"absolute\" or "
                              "\"mean\"");
    sp->phase.relative = unit && !strcmp(unit->valuestring, "mean");
    if (parse_lrs(cJSON_GetObjectItemCaseSensitive(ph, "lr"), &sp->phase.lr,
                  &sp->phase.nl, &sp->phase.log_spaced))
        return run_spec_error(sp, "key 'phase.lr': need a string such as "
                              "\"0.1:2:40:log\" (A:B[:N][:log], 0 < A < B) or "
                              "a list of positive learning rates");
    return phase_style(sp, ph);
}

/* ------------------------------------------------- Monte Carlo */

static int parse_epoch(run_spec *sp, const cJSON *ep)
{
    run_epoch_spec *e = &sp->epoch;
    if (!cJSON_IsObject(ep))
        return run_spec_error(sp, "key 'epoch': need an object");
    double runs = 10000;
    int st;
    if ((st = known_keys(sp, ep, "epoch", "samplings lr_factors runs seed")) ||
        (st = optional_number(sp, ep, "epoch", "runs", 1, 2, &runs)) ||
        (st = optional_seed(sp, ep, "epoch", &e->seed)))
        return st;
    e->on = 1;
    e->runs = (size_t)runs;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(ep, "samplings"), *v;
    if (!s) {
        e->sampling[e->nsampling++] = sp->sampling;
        e->sampling[e->nsampling++] = SGDSTAB_SAMPLING_RESHUFFLE;
    } else if (!cJSON_IsArray(s) || cJSON_GetArraySize(s) < 1 ||
               cJSON_GetArraySize(s) > RUN_MAX_SAMPLINGS) {
        return run_spec_error(sp, "key 'epoch.samplings': need a list of 1 to "
                              "%d of \"without\", \"with\", \"bernoulli\", "
                              "\"reshuffle\"", RUN_MAX_SAMPLINGS);
    } else {
        cJSON_ArrayForEach(v, s) {
            sgdstab_sampling m;
            if (!cJSON_IsString(v) ||
                sgdstab_sampling_parse(v->valuestring, &m))
                return run_spec_error(sp, "key 'epoch.samplings[%zu]': need "
                                      "\"without\", \"with\", \"bernoulli\" "
                                      "or \"reshuffle\"", e->nsampling);
            e->sampling[e->nsampling++] = m;
        }
    }
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(ep, "lr_factors");
    return f ? number_list(sp, f, "epoch.lr_factors", e->factor, &e->nfactor)
             : EXIT_OK;
}

/* exit.series[i]: {"alpha": A, "clip": b, "lr": ...}. */
static int parse_exit_series(run_spec *sp, const cJSON *v, size_t i)
{
    run_exit_series *es = &sp->exit.series[i];
    char where[64];
    snprintf(where, sizeof where, "exit.series[%zu]", i);
    if (!cJSON_IsObject(v))
        return run_spec_error(sp, "key '%s': need an object", where);
    int st, lg;
    if ((st = known_keys(sp, v, where, "alpha clip lr")) ||
        (st = required(sp, v, where, "alpha")) ||
        (st = required(sp, v, where, "clip")) ||
        (st = optional_number(sp, v, where, "alpha", 0, 0, &es->alpha)) ||
        (st = optional_number(sp, v, where, "clip", 0, 0, &es->clip)))
        return st;
    if (!(sp->exit.radius / es->clip <= EXIT_MAX_JUMPS))
        return run_spec_error(sp, "key '%s.clip': radius / clip = %g is "
                              "above %g clipped jumps (no run could ever "
                              "exit)", where, sp->exit.radius / es->clip,
                              EXIT_MAX_JUMPS);
    if (parse_lrs(cJSON_GetObjectItemCaseSensitive(v, "lr"), &es->lr,
                  &es->nlr, &lg) || es->nlr < 2)
        return run_spec_error(sp, "key '%s.lr': need at least two learning "
                              "rates, as \"A:B:N:log\" or a list", where);
    return EXIT_OK;
}

static int parse_exit(run_spec *sp, const cJSON *ex)
{
    run_exit_spec *x = &sp->exit;
    if (!cJSON_IsObject(ex))
        return run_spec_error(sp, "key 'exit': need an object");
    double runs = 200, steps = 1000000;
    int st;
    if ((st = known_keys(sp, ex, "exit", "radius noise_scale runs steps seed "
                         "series")) ||
        (st = required(sp, ex, "exit", "radius")) ||
        (st = required(sp, ex, "exit", "noise_scale")) ||
        (st = optional_number(sp, ex, "exit", "radius", 0, 0, &x->radius)) ||
        (st = optional_number(sp, ex, "exit", "noise_scale", 0, 0,
                              &x->noise_scale)) ||
        (st = optional_number(sp, ex, "exit", "runs", 1, 2, &runs)) ||
        (st = optional_number(sp, ex, "exit", "steps", 1, 1, &steps)) ||
        (st = optional_seed(sp, ex, "exit", &x->seed)))
        return st;
    x->on = 1;
    x->runs = (size_t)runs;
    x->steps = (size_t)steps;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(ex, "series"), *v;
    if (!cJSON_IsArray(s) || cJSON_GetArraySize(s) < 1 ||
        cJSON_GetArraySize(s) > RUN_MAX_LIST)
        return run_spec_error(sp, "key 'exit.series': need a list of 1 to %d "
                              "objects {\"alpha\": A, \"clip\": C, \"lr\": "
                              "...}", RUN_MAX_LIST);
    x->series = calloc((size_t)cJSON_GetArraySize(s), sizeof *x->series);
    if (!x->series)
        return run_spec_error(sp, "out of memory");
    cJSON_ArrayForEach(v, s)
        if ((st = parse_exit_series(sp, v, x->nseries++)))
            return st;
    return EXIT_OK;
}

/* ------------------------------------------------- batch sizes */

/* The batch string for n samples, as 'sgdstab critical --batch' reads it. */
static int batch_text(const run_spec *sp, size_t n, size_t **list,
                      size_t *count)
{
    if (cli_parse_batches(NULL, sp->batch->valuestring, n, list, count))
        return run_spec_error(sp, "key 'batch': '%s' is not a list, all, A:B, "
                              "A:B:log or A:B:N:log (sizes from 1 to at most "
                              "a million of them, n the number of samples)",
                              sp->batch->valuestring);
    return EXIT_OK;
}

/* The batch string read for n samples, only to check it. */
static int check_batch_text(const run_spec *sp, size_t n)
{
    size_t *list, count;
    int st = batch_text(sp, n, &list, &count);
    if (!st)
        free(list);
    return st;
}

/* "batch": a list of increasing sizes, or a string read at every number of
 * samples the cases have (a problem file's once it is loaded). */
static int parse_batch(run_spec *sp)
{
    if (cJSON_IsString(sp->batch) && sp->problem)
        return EXIT_OK;
    if (cJSON_IsString(sp->batch)) {
        const cJSON *samples = NULL, *v;
        for (size_t ax = 0; ax < sp->naxes; ax++)
            if (!strcmp(sp->axis[ax].key, "samples"))
                samples = sp->axis[ax].values;
        if (!samples)
            return check_batch_text(sp, sp->base.samples);
        cJSON_ArrayForEach(v, samples) {
            int st = check_batch_text(sp, (size_t)v->valuedouble);
            if (st)
                return st;
        }
        return EXIT_OK;
    }
    size_t m = (size_t)cJSON_GetArraySize(sp->batch), i = 0;
    if (!(sp->batch_list = malloc(m * sizeof *sp->batch_list)))
        return run_spec_error(sp, "out of memory");
    const cJSON *e;
    cJSON_ArrayForEach(e, sp->batch) {
        double x = 0;
        char where[32];
        snprintf(where, sizeof where, "batch[%zu]", i);
        int st = need_number(sp, e, where, 1, 1, &x);
        if (st)
            return st;
        sp->batch_list[i] = (size_t)x;
        if (i > 0 && sp->batch_list[i] <= sp->batch_list[i - 1])
            return run_spec_error(sp, "key 'batch': sizes must increase");
        i++;
    }
    sp->nbatch = m;
    return EXIT_OK;
}

int run_spec_batches(const run_spec *sp, size_t n, size_t **list,
                     size_t *count)
{
    if (cJSON_IsString(sp->batch))
        return batch_text(sp, n, list, count);
    if (!(*list = malloc(sp->nbatch * sizeof **list)))
        return run_spec_error(sp, "out of memory");
    memcpy(*list, sp->batch_list, sp->nbatch * sizeof **list);
    *count = sp->nbatch;
    return EXIT_OK;
}

/* ------------------------------------------------- the whole spec */

const char *run_spec_origin(const run_spec *sp)
{
    if (!sp->problem)
        return sgdstab_synth_family_name(sp->base.family);
    const char *slash = strrchr(sp->problem, '/');
    return slash ? slash + 1 : sp->problem;
}

/* "loss": half-mean | mse | a positive number. */
static int parse_loss(run_spec *sp, const cJSON *e)
{
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
        return run_spec_error(sp, "key 'loss': need \"half-mean\", \"mse\" or "
                              "a positive number");
    }
    return EXIT_OK;
}

/* file resolved against the directory of the spec at spec_path (an
 * absolute file as it is); malloc'd. */
static char *beside_spec(const char *spec_path, const char *file)
{
    const char *slash = strrchr(spec_path, '/');
    size_t dir = file[0] == '/' || !slash ? 0
                                          : (size_t)(slash - spec_path) + 1;
    char *path = malloc(dir + strlen(file) + 1);
    if (path) {
        memcpy(path, spec_path, dir);
        strcpy(path + dir, file);
    }
    return path;
}

/* "problem" (and "problem_params"): the file every case analyzes, in place
 * of the synthesized problems of "family" and "params". */
static int parse_problem(run_spec *sp, const cJSON *file)
{
    static const char *const synth_keys[] = {"family", "params"};
    for (int i = 0; i < 2; i++)
        if (cJSON_GetObjectItemCaseSensitive(sp->root, synth_keys[i]))
            return run_spec_error(sp, "key '%s': a spec with 'problem' "
                                  "takes its problem from the file, not from "
                                  "'%s'", synth_keys[i], synth_keys[i]);
    if (!cJSON_IsString(file) || !file->valuestring[0])
        return run_spec_error(sp, "key 'problem': need the path of a problem "
                              "file (.npy or .npz), relative to the spec's "
                              "directory");
    sp->problem = file->valuestring;
    if (!(sp->problem_path = beside_spec(sp->path, sp->problem)))
        return run_spec_error(sp, "out of memory");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(sp->root,
                                                      "problem_params");
    double params = 0;
    int st = p ? need_number(sp, p, "problem_params", 1, 1, &params)
               : EXIT_OK;
    sp->problem_params = (size_t)params;
    return st;
}

/* Where the cases' problems come from: "problem", or "family". */
static int parse_source(run_spec *sp)
{
    const cJSON *root = sp->root;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "problem");
    if (e)
        return parse_problem(sp, e);
    if (cJSON_GetObjectItemCaseSensitive(root, "problem_params"))
        return run_spec_error(sp, "key 'problem_params': only with "
                              "'problem' (a Gram-matrix file)");
    int st = required(sp, root, "", "family");
    if (st)
        return st;
    e = cJSON_GetObjectItemCaseSensitive(root, "family");
    if (!cJSON_IsString(e) ||
        sgdstab_synth_family_parse(e->valuestring, &sp->base.family))
        return run_spec_error(sp, "key 'family': need \"linear\", \"rfm\", "
                              "\"deep-linear\" or \"two-layer\"");
    return EXIT_OK;
}

/* family or problem, batch (its form), description, sampling. */
static int parse_basics(run_spec *sp)
{
    const cJSON *root = sp->root, *e;
    int st;
    if ((st = parse_source(sp)) ||
        (st = required(sp, root, "", "batch")))
        return st;
    sp->batch = cJSON_GetObjectItemCaseSensitive(root, "batch");
    if (!cJSON_IsString(sp->batch) &&
        (!cJSON_IsArray(sp->batch) || cJSON_GetArraySize(sp->batch) < 1))
        return run_spec_error(sp, "key 'batch': need a list of batch sizes or "
                              "a string such as \"1:n:16:log\"");
    if ((e = cJSON_GetObjectItemCaseSensitive(root, "description"))) {
        if (!cJSON_IsString(e))
            return run_spec_error(sp, "key 'description': need a string");
        sp->description = e->valuestring;
    }
    if ((e = cJSON_GetObjectItemCaseSensitive(root, "sampling")) &&
        (!cJSON_IsString(e) ||
         sgdstab_sampling_parse(e->valuestring, &sp->sampling) ||
         sp->sampling == SGDSTAB_SAMPLING_RESHUFFLE))
        return run_spec_error(sp, "key 'sampling': need \"without\", \"with\" "
                              "or \"bernoulli\"");
    return EXIT_OK;
}

/* Every key of the spec, in the order the help lists them. */
static int parse_spec_keys(run_spec *sp)
{
    const cJSON *root = sp->root, *e;
    int st;
    if ((st = known_keys(sp, root, "", "family problem problem_params batch "
                         "params sweep sampling loss optimizer lr lr_factors "
                         "phase epoch exit description")) ||
        (st = parse_basics(sp)))
        return st;
    if ((e = cJSON_GetObjectItemCaseSensitive(root, "optimizer")) &&
        (st = parse_optimizer(sp, e)))
        return st;
    if (((e = cJSON_GetObjectItemCaseSensitive(root, "loss")) &&
         (st = parse_loss(sp, e))) ||
        ((e = cJSON_GetObjectItemCaseSensitive(root, "lr")) &&
         (st = number_list(sp, e, "lr", sp->lr, &sp->nlr))) ||
        ((e = cJSON_GetObjectItemCaseSensitive(root, "lr_factors")) &&
         (st = number_list(sp, e, "lr_factors", sp->factor, &sp->nfactor))) ||
        ((e = cJSON_GetObjectItemCaseSensitive(root, "phase")) &&
         (st = parse_phase(sp, e))) ||
        ((e = cJSON_GetObjectItemCaseSensitive(root, "epoch")) &&
         (st = parse_epoch(sp, e))) ||
        ((e = cJSON_GetObjectItemCaseSensitive(root, "exit")) &&
         (st = parse_exit(sp, e))))
        return st;
    if ((st = parse_params(sp)) ||
        (!sp->plain && (st = run_spec_plain_only(sp, "'optimizer' or a "
                                                 "momentum sweep"))))
        return st;
    return parse_batch(sp);
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

static void spec_init(run_spec *sp, const char *path)
{
    memset(sp, 0, sizeof *sp);
    sp->path = path;
    sp->loss = sp->loss_name = "half-mean";
    cli_phase_style_init(&sp->phase.style);
    sgdstab_synth_params_init(&sp->base);
    sgdstab_optimizer_init(&sp->optimizer);
    sp->plain = 1;
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
        return run_spec_error(sp, "not valid JSON (line %zu, byte %zu)", line,
                              at);
    }
    if (!cJSON_IsObject(sp->root))
        return run_spec_error(sp, "need a JSON object at the top level");
    const char *dup = duplicate_key(sp->root);
    if (dup)
        return run_spec_error(sp, "key '%s' appears twice in one object", dup);
    return parse_spec_keys(sp);
}

int run_spec_load(run_spec *sp, const char *path)
{
    spec_init(sp, path);
    FILE *f;
    size_t size;
    sgdstab_error err;
    if (sgdstab_open_input(path, &f, &size, &err))
        return cli_report(&err);
    if (size > SPEC_MAX_BYTES) {
        fclose(f);
        return run_spec_error(sp, "larger than %d bytes: not an experiment "
                              "spec", SPEC_MAX_BYTES);
    }
    char *text = malloc(size + 1);
    size_t got = text ? fread(text, 1, size, f) : 0;
    fclose(f);
    if (!text || got != size) {
        free(text);
        return run_spec_error(sp, "cannot read the file");
    }
    text[size] = '\0';
    int st = parse_spec_text(sp, text, size);
    free(text);
    return st;
}

void run_spec_free(run_spec *sp)
{
    cJSON_Delete(sp->root);
    free(sp->problem_path);
    free(sp->batch_list);
    free(sp->phase.lr);
    for (size_t i = 0; i < sp->exit.nseries; i++)
        free(sp->exit.series[i].lr);
    free(sp->exit.series);
    sp->root = NULL;
    sp->problem_path = NULL;
    sp->batch_list = NULL;
    sp->phase.lr = NULL;
    sp->exit.series = NULL;
    sp->exit.nseries = 0;
}

int run_spec_check(const char *file, const char *text, size_t size)
{
    run_spec sp;
    spec_init(&sp, file);
    int st = parse_spec_text(&sp, text, size);
    run_spec_free(&sp);
    return st;
}
