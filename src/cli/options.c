#include <errno.h>
#include <float.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exit_status.h"
#include "options.h"
#include "report.h"
#include "sgdstab/config.h"
#include "sgdstab/memplan.h"
#include "sgdstab/reduce.h"

int cli_getopt_short(int argc, char **argv, const char *cmd,
                     const char *shortopts, const struct option *longopts)
{
    opterr = 0;
    /* Long options plus -h and shortopts: the leading '-' returns operands
     * in order (as 1, in optarg); ':' reports missing values. */
    char spec[32];
    snprintf(spec, sizeof spec, "-:h%s", shortopts);
    int c = getopt_long(argc, argv, spec, longopts, NULL);
    if (c == '?' || c == ':') {
        char q[CLI_QUOTE_SIZE];
        const char *arg = cli_quote(argv[optind - 1], q, sizeof q);
        if (c == ':') {
            cli_usage_error(cmd, "option '%s' needs a value", arg);
        } else if (optopt && optopt != '?' && optopt < 256) {
            char opt[2] = {(char)optopt, '\0'};
            cli_usage_error(cmd, "unknown option '-%s'",
                            cli_quote(opt, q, sizeof q));
        } else {
            cli_usage_error(cmd, "unknown option '%s'", arg);
        }
        return '?';
    }
    return c;
}

int cli_getopt(int argc, char **argv, const char *cmd,
               const struct option *longopts)
{
    return cli_getopt_short(argc, argv, cmd, "", longopts);
}

int cli_parse_double(const char *cmd, const char *opt, const char *text,
                     double *out)
{
    char *end, q[CLI_QUOTE_SIZE];
    errno = 0;
    double v = strtod(text, &end);
    const char *why = NULL;
    if (end == text || *end != '\0' || (!isfinite(v) && errno != ERANGE))
        why = "is not a finite number";
    else if (errno == ERANGE && fabs(v) > 1)
        why = "is too large (it overflows a double)";
    /* Underflow, to zero or to a subnormal (which strtod may return without
     * ERANGE when exact): subnormals have lost precision, and no rate or
     * tolerance is that small. */
    else if (errno == ERANGE || (v != 0 && fabs(v) < DBL_MIN))
        why = "is too close to zero to use (it underflows a double)";
    if (why) {
        cli_usage_error(cmd, "--%s: '%s' %s", opt,
                        cli_quote(text, q, sizeof q), why);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_label_noise(const char *cmd, const char *text, double *sigma)
{
    *sigma = 0;
    if (text && cli_parse_double(cmd, "label-noise", text, sigma))
        return -1;
    if (*sigma < 0) {
        cli_usage_error(cmd, "--label-noise %g is negative", *sigma);
        return -1;
    }
    return 0;
}

int cli_parse_size(const char *cmd, const char *opt, const char *text,
                   size_t min, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE || text[0] == '-' ||
        v < min || v > SIZE_MAX) {
        char q[CLI_QUOTE_SIZE];
        cli_usage_error(cmd, "--%s: '%s' is not a whole number >= %zu", opt,
                        cli_quote(text, q, sizeof q), min);
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

int cli_parse_seed(const char *cmd, const char *text, unsigned long *out)
{
    size_t seed;
    if (cli_parse_size(cmd, "seed", text, 0, &seed))
        return -1;
    if (seed > 0xFFFFFFFFul) {
        cli_usage_error(cmd, "--seed %zu is above 2^32 - 1", seed);
        return -1;
    }
    *out = (unsigned long)seed;
    return 0;
}

void cli_args_init(cli_args *a, const char *cmd)
{
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->loss = a->loss_name = "half-mean";
    a->sampling = SGDSTAB_SAMPLING_WITHOUT;
    a->flat_rtol = SGDSTAB_FLAT_RTOL_DEFAULT;
    sgdstab_optimizer_init(&a->optimizer);
}

/* --betas B1[,B2]. */
static int parse_betas(cli_args *a, const char *arg)
{
    char first[64];
    const char *comma = strchr(arg, ',');
    size_t len = comma ? (size_t)(comma - arg) : strlen(arg);
    if (len >= sizeof first)
        len = sizeof first - 1;
    memcpy(first, arg, len);
    first[len] = '\0';
    if (cli_parse_double(a->cmd, "betas", first, &a->optimizer.momentum))
        return EXIT_USAGE;
    a->optimizer_set |= CLI_SET_MOMENTUM;
    if (comma &&
        cli_parse_double(a->cmd, "betas", comma + 1, &a->optimizer.beta2))
        return EXIT_USAGE;
    a->optimizer_set |= comma ? CLI_SET_BETA2 : 0;
    return 0;
}

/* The optimizer's options (the values are checked with the rest of the
 * configuration, sgdstab_optimizer_check). */
static int optimizer_option(cli_args *a, int c, const char *arg)
{
    sgdstab_optimizer *o = &a->optimizer;
    char q[CLI_QUOTE_SIZE];
    a->optimizer_given = 1;
    switch (c) {
    case OPT_OPTIMIZER:
        if (sgdstab_optimizer_parse(arg, &o->kind))
            return cli_usage_error(a->cmd, "--optimizer: '%s' is not one of "
                                   "sgd, adam, adamw",
                                   cli_quote(arg, q, sizeof q));
        return 0;
    case OPT_MOMENTUM:
        a->optimizer_set |= CLI_SET_MOMENTUM;
        return cli_parse_double(a->cmd, "momentum", arg, &o->momentum);
    case OPT_DAMPENING:
        a->optimizer_set |= CLI_SET_DAMPENING;
        return cli_parse_double(a->cmd, "dampening", arg, &o->dampening);
    case OPT_NESTEROV:
        o->nesterov = 1;
        return 0;
    case OPT_WEIGHT_DECAY:
        a->optimizer_set |= CLI_SET_WEIGHT_DECAY;
        return cli_parse_double(a->cmd, "weight-decay", arg,
                                &o->weight_decay);
    case OPT_BETAS:
        return parse_betas(a, arg);
    case OPT_EPS:
        a->optimizer_set |= CLI_SET_EPS;
        return cli_parse_double(a->cmd, "eps", arg, &o->eps);
    default:  /* OPT_SECOND_MOMENT */
        a->second_moment = arg;
        return 0;
    }
}

static int parse_loss(cli_args *a, const char *arg)
{
    char q[CLI_QUOTE_SIZE];
    double c;  /* the scale needs k, known once FILE is read */
    if (sgdstab_loss_scale(arg, 1, &c, NULL))
        return cli_usage_error(a->cmd, "--loss: '%s' is not half-mean, mse "
                               "or a positive number",
                               cli_quote(arg, q, sizeof q));
    a->loss = a->loss_name = arg;
    a->have_loss = 1;
    return 0;
}

int cli_common_option(cli_args *a, int c, const char *arg)
{
    char q[CLI_QUOTE_SIZE];
    switch (c) {
    case 1:
        if (a->file)
            return cli_usage_error(a->cmd, "unexpected argument '%s'",
                                   cli_quote(arg, q, sizeof q));
        a->file = arg;
        return 0;
    case OPT_LR:
        if (cli_parse_double(a->cmd, "lr", arg, &a->lr))
            return EXIT_USAGE;
        if (!(a->lr > 0))
            return cli_usage_error(a->cmd, "--lr must be positive, not %s",
                                   cli_quote(arg, q, sizeof q));
        a->have_lr = 1;
        return 0;
    case OPT_BATCH:
        a->batch = arg;
        return 0;
    case OPT_SAMPLING:
        if (sgdstab_sampling_parse(arg, &a->sampling))
            return cli_usage_error(a->cmd, "--sampling: '%s' is not one of "
                                   "without, with, bernoulli, reshuffle",
                                   cli_quote(arg, q, sizeof q));
        return 0;
    case OPT_LOSS:
        return parse_loss(a, arg);
    case OPT_HESSIAN:
        a->hessian = arg;
        return 0;
    case OPT_RANK_TOL:
        if (cli_parse_double(a->cmd, "rank-tol", arg, &a->rank_rtol))
            return EXIT_USAGE;
        if (!(a->rank_rtol > 0 && a->rank_rtol < 1))
            return cli_usage_error(a->cmd, "--rank-tol must lie in (0, 1), "
                                   "not %s", cli_quote(arg, q, sizeof q));
        return 0;
    case OPT_NEGATIVE_CURVATURE:
        if (!strcmp(arg, "strict")) {
            a->flat_rtol = 0;
            return 0;
        }
        if (cli_parse_double(a->cmd, "negative-curvature", arg, &a->flat_rtol))
            return EXIT_USAGE;
        /* Beyond 1e-2 "flat" curvature matters within 50 steps. */
        if (!(a->flat_rtol >= 0 && a->flat_rtol <= 1e-2))
            return cli_usage_error(a->cmd, "--negative-curvature must be "
                                   "strict or a number in [0, 0.01], not %s",
                                   cli_quote(arg, q, sizeof q));
        return 0;
    case OPT_MAX_MEMORY:
        if (!((a->max_memory = sgdstab_parse_memory_size(arg)) > 0)) {
            char q[CLI_QUOTE_SIZE];
            return cli_usage_error(a->cmd, "--max-memory: '%s' is not a size "
                                   "such as 8G or 512M",
                                   cli_quote(arg, q, sizeof q));
        }
        return 0;
    case OPT_PARAM_COUNT:
        return cli_parse_size(a->cmd, "params", arg, 1, &a->params) ? EXIT_USAGE
                                                                    : 0;
    case OPT_OPTIMIZER:
    case OPT_MOMENTUM:
    case OPT_DAMPENING:
    case OPT_NESTEROV:
    case OPT_WEIGHT_DECAY:
    case OPT_BETAS:
    case OPT_EPS:
    case OPT_SECOND_MOMENT:
        return optimizer_option(a, c, arg) ? EXIT_USAGE : 0;
    case OPT_JSON:
        a->json = 1;
        return 0;
    case OPT_CSV:
        a->csv = arg;
        return 0;
    default:  /* '?' from cli_getopt: already reported */
        return EXIT_USAGE;
    }
}

int cli_parse_common(int argc, char **argv, const char *cmd, cli_args *a,
                     const struct option *longopts, const char *help)
{
    cli_args_init(a, cmd);
    int c;
    while ((c = cli_getopt(argc, argv, a->cmd, longopts)) != -1) {
        if (c == 'h') {
            fputs(help, stdout);
            return CLI_HELP_SHOWN;
        }
        if (cli_common_option(a, c, optarg))
            return EXIT_USAGE;
    }
    return EXIT_OK;
}

int cli_main(const char *cmd, int argc, char **argv,
             const struct option *longopts, const char *help,
             int (*job)(cli_args *a))
{
    cli_args args;
    int status = cli_parse_common(argc, argv, cmd, &args, longopts, help);
    if (status)
        return status == CLI_HELP_SHOWN ? EXIT_OK : status;
    return job(&args);
}

int cli_require(const cli_args *a, int need_lr, int need_batch)
{
    if (!a->file)
        return cli_usage_error(a->cmd, "missing input FILE");
    if (need_lr && !a->have_lr)
        return cli_usage_error(a->cmd, "missing --lr");
    if (need_batch && !a->batch)
        return cli_usage_error(a->cmd, "missing --batch");
    return EXIT_OK;
}

static int cmp_size(const void *x, const void *y)
{
    size_t a = *(const size_t *)x, b = *(const size_t *)y;
    return a < b ? -1 : a > b;
}

/* Sort, drop duplicates; returns the new count. */
static size_t sort_unique(size_t *v, size_t m)
{
    qsort(v, m, sizeof *v, cmp_size);
    size_t k = 0;
    for (size_t i = 0; i < m; i++)
        if (k == 0 || v[i] != v[k - 1])
            v[k++] = v[i];
    return k;
}

/* Append x to the growing array *v; 0 on success. */
static int push(size_t **v, size_t *m, size_t *cap, size_t x)
{
    if (*m == *cap) {
        size_t *nv = realloc(*v, 2 * *cap * sizeof *nv);
        if (!nv)
            return -1;
        *v = nv;
        *cap *= 2;
    }
    (*v)[(*m)++] = x;
    return 0;
}

/* A batch size of a --batch list: a whole number ≥ 1, or n for the number
 * of samples. */
static int parse_batch_size(const char *cmd, const char *text, size_t n,
                            size_t *out)
{
    if (!strcmp(text, "n")) {
        *out = n;
        return 0;
    }
    char q[CLI_QUOTE_SIZE];
    if (cli_parse_size(NULL, "batch", text, 1, out))
        return cli_usage_error(cmd, "--batch: '%s' is not a batch size (a "
                               "whole number >= 1, or n)",
                               cli_quote(text, q, sizeof q));
    return 0;
}

/* Split s in place at each ':' into fields f[0..max-1]; returns how many
 * fields there are, counting at most max + 1 (only max are stored: more
 * means too many). */
static int split_colons(char *s, char **f, int max)
{
    int nf = 1;
    f[0] = s;
    for (char *c = s; *c && nf <= max; c++)
        if (*c == ':') {
            *c = '\0';
            if (nf < max)
                f[nf] = c + 1;
            nf++;
        }
    return nf;
}

/* Most sizes or rates a list or range may ask for: more would only exhaust
 * memory before anything checks them against the problem. */
#define CLI_LIST_MAX 1000000

/* The usage error of a list or range asking for too many sizes. */
static int too_many_batches(const char *cmd, const char *shown)
{
    return cli_usage_error(cmd, "--batch: '%s' asks for more than a million "
                           "batch sizes", shown);
}

/* Every size from a to b. */
static int push_range(const char *cmd, const char *shown, size_t a, size_t b,
                      size_t **v, size_t *m, size_t *cap)
{
    if (b - a >= CLI_LIST_MAX)
        return too_many_batches(cmd, shown);
    for (size_t x = a; x <= b; x++)
        if (push(v, m, cap, x))
            return cli_usage_error(cmd, "out of memory");
    return EXIT_OK;
}

/* a, 2a, 4a, ..., b (steps 0) or steps log-spaced sizes from a to b,
 * rounded and distinct. */
static int push_log(const char *cmd, const char *shown, size_t a, size_t b,
                    size_t steps, size_t **v, size_t *m, size_t *cap)
{
    if (steps > b - a + 1)
        steps = b - a + 1;  /* every size in the range, then */
    if (steps > CLI_LIST_MAX)
        return too_many_batches(cmd, shown);
    for (size_t i = 0;; i++) {
        double x = steps ? (steps < 2 ? (double)a
                            : (double)a * pow((double)b / (double)a,
                                              (double)i /
                                                  (double)(steps - 1)))
                         : (double)a * pow(2.0, (double)i);
        size_t bi = x >= (double)b ? b : (size_t)llround(x);
        /* N distinct sizes: step past rounding collisions at the small
         * end, and leave room for the sizes still to come. */
        if (*m > 0 && bi <= (*v)[*m - 1])
            bi = (*v)[*m - 1] + 1;
        if (steps && bi > b - (steps - 1 - i))
            bi = b - (steps - 1 - i);
        if (push(v, m, cap, bi))
            return cli_usage_error(cmd, "out of memory");
        if (bi == b || (steps && i + 1 == steps))
            return EXIT_OK;
    }
}

/* A:B, A:B:log (A, 2A, 4A, ..., B) or A:B:N:log (N log-spaced); text is
 * split in place. */
static int push_batch_range(const char *cmd, const char *shown, char *text,
                            size_t n, size_t **v, size_t *m, size_t *cap)
{
    char *f[4];
    size_t a, b, steps = 0;
    int nf = split_colons(text, f, 4);
    int log_tail = nf >= 3 && nf <= 4 && !strcmp(f[nf - 1], "log");
    if (nf > 4 || (nf == 4 && !log_tail) || (nf == 3 && !log_tail) ||
        parse_batch_size(cmd, f[0], n, &a) ||
        parse_batch_size(cmd, f[1], n, &b) ||
        (nf == 4 && cli_parse_size(cmd, "batch", f[2], 2, &steps)))
        return nf > 4 || (nf >= 3 && !log_tail)
            ? cli_usage_error(cmd, "--batch: '%s' is not LIST, all, A:B, "
                              "A:B:log or A:B:N:log", shown)
            : EXIT_USAGE;
    if (a > b)
        return cli_usage_error(cmd, "--batch: empty range '%s'", shown);
    if (nf == 2)
        return push_range(cmd, shown, a, b, v, m, cap);
    return push_log(cmd, shown, a, b, steps, v, m, cap);
}

/* A comma-separated list of sizes; text is split in place. */
static int push_batch_list(const char *cmd, char *text, size_t n,
                           size_t **v, size_t *m, size_t *cap)
{
    for (char *tok = strtok(text, ","); tok; tok = strtok(NULL, ",")) {
        size_t x;
        if (parse_batch_size(cmd, tok, n, &x))
            return EXIT_USAGE;
        if (push(v, m, cap, x))
            return cli_usage_error(cmd, "out of memory");
    }
    return EXIT_OK;
}

int cli_parse_batches(const char *cmd, const char *text, size_t n,
                      size_t **list, size_t *count)
{
    char q[CLI_QUOTE_SIZE];
    const char *shown = cli_quote(text, q, sizeof q);
    *list = NULL;
    *count = 0;
    size_t m = 0, cap = 16;
    size_t *v = malloc(cap * sizeof *v);
    char *copy = strdup(text);
    int status;
    if (!v || !copy)
        status = cli_usage_error(cmd, "out of memory");
    else if (!strcmp(text, "all"))
        status = push_range(cmd, shown, 1, n, &v, &m, &cap);
    else if (strchr(copy, ':'))
        status = push_batch_range(cmd, shown, copy, n, &v, &m, &cap);
    else
        status = push_batch_list(cmd, copy, n, &v, &m, &cap);
    if (!status && m == 0)
        status = cli_usage_error(cmd, "--batch: no batch sizes in '%s'",
                                 shown);
    if (!status) {
        *count = sort_unique(v, m);
        *list = v;
        v = NULL;
    }
    free(v);
    free(copy);
    return status;
}

static int compare_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* The learning rates of a range A:B[:N][:log], split into its nf fields f
 * (nf <= 4 + 1); *v is malloc'd. */
static int lr_range(const char *cmd, const char *shown, char **f, int nf,
                    double **v, size_t *m, int *log_spaced)
{
    if (nf > 4)
        return cli_usage_error(cmd, "--lr: '%s' is not A:B[:N][:log] or a "
                               "list", shown);
    int lg = nf >= 3 && !strcmp(f[nf - 1], "log");
    size_t steps = CLI_LR_STEPS;
    double a, b;
    if (nf == 4 && !lg)
        return cli_usage_error(cmd, "--lr: '%s' is not A:B[:N][:log] or a "
                               "list", shown);
    if (cli_parse_double(cmd, "lr", f[0], &a) ||
        cli_parse_double(cmd, "lr", f[1], &b) ||
        (nf - lg == 3 && cli_parse_size(cmd, "lr", f[2], 2, &steps)))
        return EXIT_USAGE;
    if (!(a > 0) || !(b > a))
        return cli_usage_error(cmd, "--lr: '%s' needs 0 < A < B", shown);
    if (steps > 100000)
        return cli_usage_error(cmd, "--lr: more than 100000 learning rates");
    if (!(*v = malloc(steps * sizeof **v)))
        return cli_usage_error(cmd, "out of memory");
    /* b / a may overflow (1e-300:1e300); the logarithms cannot. */
    double ratio = b / a, lra = log(b) - log(a);
    for (size_t i = 0; i < steps; i++) {
        double t = (double)i / (double)(steps - 1);
        (*v)[i] = !lg ? a + (b - a) * t
                      : isfinite(ratio) ? a * pow(ratio, t) : a * exp(lra * t);
    }
    (*v)[0] = a;          /* the ends exactly as given */
    (*v)[steps - 1] = b;
    *m = steps;
    *log_spaced = lg;
    return EXIT_OK;
}

/* The learning rates of a list "0.1,0.5,2" in copy (split in place); *v is
 * malloc'd. */
static int lr_list(const char *cmd, const char *shown, char *copy, double **v,
                   size_t *m)
{
    char q[CLI_QUOTE_SIZE];
    size_t cap = 1;
    for (const char *c = copy; *c; c++)
        cap += *c == ',';
    if (!(*v = malloc(cap * sizeof **v)))
        return cli_usage_error(cmd, "out of memory");
    for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
        if (cli_parse_double(cmd, "lr", tok, &(*v)[*m]))
            return EXIT_USAGE;
        if (!((*v)[*m] > 0))
            return cli_usage_error(cmd, "--lr: %s is not a positive learning "
                                   "rate", cli_quote(tok, q, sizeof q));
        (*m)++;
    }
    if (*m == 0)
        return cli_usage_error(cmd, "--lr: no learning rates in '%s'", shown);
    return EXIT_OK;
}

int cli_parse_lrs(const char *cmd, const char *text, double **list,
                  size_t *count, int *log_spaced)
{
    *list = NULL;
    *count = 0;
    *log_spaced = 0;
    char q[CLI_QUOTE_SIZE];
    const char *shown = cli_quote(text, q, sizeof q);
    char *copy = strdup(text);
    double *v = NULL;
    size_t m = 0;
    if (!copy)
        return cli_usage_error(cmd, "out of memory");
    char *f[4];
    int status = strchr(copy, ':')
        ? lr_range(cmd, shown, f, split_colons(copy, f, 4), &v, &m, log_spaced)
        : lr_list(cmd, shown, copy, &v, &m);
    free(copy);
    if (status) {
        free(v);
        *log_spaced = 0;
        return status;
    }
    /* A range's rates are sorted already, but rounding may repeat one when
     * A and B are a few ulps apart. */
    qsort(v, m, sizeof *v, compare_double);
    size_t u = 1;
    for (size_t i = 1; i < m; i++)
        if (v[i] != v[u - 1])
            v[u++] = v[i];
    *list = v;
    *count = u;
    return EXIT_OK;
}
