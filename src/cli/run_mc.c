#include "run_mc.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "sgdstab/epoch.h"
#include "sgdstab/simulate.h"

#define MC_MAX_LIST 64
#define MC_MAX_ROWS 4096
/* Exit-time points with fewer exits are too censored to fit. */
#define EXIT_MIN_EXITS 10

typedef struct {
    double alpha, clip;
    double *lr;
    size_t nlr;
} exit_series;

/* One threshold row and one exit point, kept for the pictures and the
 * report. */
typedef struct {
    size_t c, batch, si;
    double ratio, ratio_se, lr, lr_se, exact;
} epoch_row;

typedef struct {
    size_t c, batch, series;
    double lr, mean, se, fit_slope, fit_se, chi2;
    size_t exited, points;
} exit_row;

struct run_mc {
    const char *path;
    sgdstab_sampling sampling;      /* the spec's, for the exact values */
    /* epoch */
    int epoch;
    sgdstab_sampling samp[4];  /* of the epoch experiment */
    size_t nsamp;
    double factor[MC_MAX_LIST];
    size_t nfactor, epoch_runs;
    size_t rate_checks, rate_checks_failed;  /* fresh rates vs exact */
    unsigned long epoch_seed;
    /* exit */
    int exit;
    double radius, noise_scale;
    size_t exit_runs, exit_steps;
    unsigned long exit_seed;
    exit_series *series;
    size_t nseries;
    /* outputs */
    const char *dir;
    sgdstab_outfile *epoch_csv, *threshold_csv, *epoch_png;
    sgdstab_outfile *exit_csv, *fit_csv, *exit_png;
    char epoch_png_path[4200], exit_png_path[4200];
    epoch_row erow[MC_MAX_ROWS];
    size_t nerow;
    exit_row xrow[MC_MAX_ROWS];
    size_t nxrow;
    char labels[64][128];          /* case labels, for the pictures */
    size_t nlabels;
};

static int mc_error(const run_mc *mc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int mc_error(const run_mc *mc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_error_line("run", mc->path, fmt, ap);
    va_end(ap);
    return EXIT_DATA;
}

int run_parse_lrs(const cJSON *v, double **list, size_t *count,
                  int *log_spaced)
{
    char text[4096] = "";
    if (cJSON_IsString(v)) {
        snprintf(text, sizeof text, "%s", v->valuestring);
    } else if (cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0) {
        size_t len = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, v) {
            if (!cJSON_IsNumber(e))
                return -1;
            len += (size_t)snprintf(text + len, len < sizeof text ?
                                    sizeof text - len : 0, "%s%.17g",
                                    len ? "," : "", e->valuedouble);
        }
        if (len >= sizeof text)
            return -1;
    } else {
        return -1;
    }
    return cli_parse_lrs(NULL, text, list, count, log_spaced) ? -1 : 0;
}

/* Keys of obj must be among the space-separated names of `keys`. */
static int known_keys(const run_mc *mc, const cJSON *obj, const char *section,
                      const char *keys)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, obj) {
        size_t len = strlen(e->string);
        const char *k = keys;
        int found = 0;
        while (*k && !found) {
            size_t kl = strcspn(k, " ");
            found = kl == len && !strncmp(k, e->string, len);
            k += kl + (k[kl] == ' ');
        }
        if (!found)
            return mc_error(mc, "unknown key '%s.%s' (keys: %s)", section,
                            e->string, keys);
    }
    return EXIT_OK;
}

/* An optional positive number (whole: a whole number ≥ min ≤ 2^53). */
static int get_number(const run_mc *mc, const cJSON *obj, const char *section,
                      const char *key, int whole, double min, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return EXIT_OK;
    double x = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(x >= min) || !isfinite(x) || (whole && (x != floor(x) ||
                                                  x > 9007199254740992.0)) ||
        (!whole && !(x > 0)))
        return mc_error(mc, "key '%s.%s': need %s", section, key,
                        whole ? (min > 0 ? "a whole number >= 2"
                                         : "a whole number >= 0")
                              : "a positive number");
    *out = x;
    return EXIT_OK;
}

static int parse_epoch(run_mc *mc, const cJSON *ep)
{
    if (!cJSON_IsObject(ep))
        return mc_error(mc, "key 'epoch': need an object");
    int st;
    if ((st = known_keys(mc, ep, "epoch", "samplings lr_factors runs seed")))
        return st;
    mc->epoch = 1;
    double runs = 10000, seed = 1;
    if ((st = get_number(mc, ep, "epoch", "runs", 1, 2, &runs)) ||
        (st = get_number(mc, ep, "epoch", "seed", 1, 0, &seed)))
        return st;
    if (seed > 4294967295.0)
        return mc_error(mc, "key 'epoch.seed': above 2^32 - 1");
    mc->epoch_runs = (size_t)runs;
    mc->epoch_seed = (unsigned long)seed;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(ep, "samplings"), *e;
    if (!s) {
        mc->samp[mc->nsamp++] = mc->sampling;
        mc->samp[mc->nsamp++] = SGDSTAB_SAMPLING_RESHUFFLE;
    } else if (!cJSON_IsArray(s) || cJSON_GetArraySize(s) < 1 ||
               cJSON_GetArraySize(s) > 4) {
        return mc_error(mc, "key 'epoch.samplings': need a list of 1 to 4 of "
                        "\"without\", \"with\", \"bernoulli\", \"reshuffle\"");
    } else {
        cJSON_ArrayForEach(e, s) {
            sgdstab_sampling m;
            if (!cJSON_IsString(e) ||
                sgdstab_sampling_parse(e->valuestring, &m))
                return mc_error(mc, "key 'epoch.samplings[%zu]': need "
                                "\"without\", \"with\", \"bernoulli\" or "
                                "\"reshuffle\"", mc->nsamp);
            mc->samp[mc->nsamp++] = m;
        }
    }
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(ep, "lr_factors");
    if (f) {
        if (!cJSON_IsArray(f) || cJSON_GetArraySize(f) < 1 ||
            cJSON_GetArraySize(f) > MC_MAX_LIST)
            return mc_error(mc, "key 'epoch.lr_factors': need a list of 1 to "
                            "%d positive numbers", MC_MAX_LIST);
        cJSON_ArrayForEach(e, f) {
            if (!cJSON_IsNumber(e) || !(e->valuedouble > 0) ||
                !isfinite(e->valuedouble))
                return mc_error(mc, "key 'epoch.lr_factors[%zu]': need a "
                                "positive number", mc->nfactor);
            mc->factor[mc->nfactor++] = e->valuedouble;
        }
    }
    return EXIT_OK;
}

/* Most clipped jumps a ball's radius may ask for (radius / clip). */
#define EXIT_MAX_JUMPS 1e15

static int parse_exit(run_mc *mc, const cJSON *ex)
{
    if (!cJSON_IsObject(ex))
        return mc_error(mc, "key 'exit': need an object");
    int st;
    if ((st = known_keys(mc, ex, "exit", "radius noise_scale runs steps seed "
                         "series")))
        return st;
    mc->exit = 1;
    double runs = 200, steps = 1000000, seed = 1;
    mc->radius = mc->noise_scale = NAN;
    if ((st = get_number(mc, ex, "exit", "radius", 0, 0, &mc->radius)) ||
        (st = get_number(mc, ex, "exit", "noise_scale", 0, 0,
                         &mc->noise_scale)) ||
        (st = get_number(mc, ex, "exit", "runs", 1, 2, &runs)) ||
        (st = get_number(mc, ex, "exit", "steps", 1, 1, &steps)) ||
        (st = get_number(mc, ex, "exit", "seed", 1, 0, &seed)))
        return st;
    if (isnan(mc->radius) || isnan(mc->noise_scale))
        return mc_error(mc, "key 'exit': needs 'radius' and 'noise_scale'");
    if (seed > 4294967295.0)
        return mc_error(mc, "key 'exit.seed': above 2^32 - 1");
    mc->exit_runs = (size_t)runs;
    mc->exit_steps = (size_t)steps;
    mc->exit_seed = (unsigned long)seed;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(ex, "series"), *e;
    if (!cJSON_IsArray(s) || cJSON_GetArraySize(s) < 1 ||
        cJSON_GetArraySize(s) > MC_MAX_LIST)
        return mc_error(mc, "key 'exit.series': need a list of 1 to %d objects "
                        "{\"alpha\": A, \"clip\": C, \"lr\": ...}", MC_MAX_LIST);
    mc->series = calloc((size_t)cJSON_GetArraySize(s), sizeof *mc->series);
    if (!mc->series)
        return mc_error(mc, "out of memory");
    cJSON_ArrayForEach(e, s) {
        char where[64];
        size_t i = mc->nseries;
        snprintf(where, sizeof where, "exit.series[%zu]", i);
        exit_series *es = &mc->series[mc->nseries++];
        es->alpha = es->clip = NAN;
        if (!cJSON_IsObject(e))
            return mc_error(mc, "key '%s': need an object", where);
        int lg;
        if ((st = known_keys(mc, e, where, "alpha clip lr")) ||
            (st = get_number(mc, e, where, "alpha", 0, 0, &es->alpha)) ||
            (st = get_number(mc, e, where, "clip", 0, 0, &es->clip)))
            return st;
        if (isnan(es->alpha) || isnan(es->clip))
            return mc_error(mc, "key '%s': needs 'alpha' and 'clip'", where);
        /* The clipped jumps an exit needs are counted in a size_t (and
         * printed): keep radius / clip far below its limit. */
        if (!(mc->radius / es->clip <= EXIT_MAX_JUMPS))
            return mc_error(mc, "key '%s.clip': radius / clip = %g is above "
                            "%g clipped jumps (no run could ever exit)",
                            where, mc->radius / es->clip, EXIT_MAX_JUMPS);
        if (run_parse_lrs(cJSON_GetObjectItemCaseSensitive(e, "lr"), &es->lr,
                          &es->nlr, &lg) || es->nlr < 2)
            return mc_error(mc, "key '%s.lr': need at least two learning "
                            "rates, as \"A:B:N:log\" or a list", where);
    }
    return EXIT_OK;
}

int run_mc_parse(const char *path, const cJSON *epoch, const cJSON *exit,
                 sgdstab_sampling sampling, run_mc **out)
{
    *out = NULL;
    if (!epoch && !exit)
        return EXIT_OK;
    run_mc *mc = calloc(1, sizeof *mc);
    if (!mc) {
        fprintf(stderr, "sgdstab run: out of memory\n");
        return EXIT_DATA;
    }
    mc->path = path;
    mc->sampling = sampling;
    int st = EXIT_OK;
    if ((epoch && (st = parse_epoch(mc, epoch))) ||
        (exit && (st = parse_exit(mc, exit)))) {
        run_mc_free(mc);
        return st;
    }
    *out = mc;
    return EXIT_OK;
}

void run_mc_free(run_mc *mc)
{
    if (!mc)
        return;
    for (size_t i = 0; i < mc->nseries; i++)
        free(mc->series[i].lr);
    free(mc->series);
    sgdstab_outfile *files[] = {mc->epoch_csv, mc->threshold_csv,
                                mc->epoch_png, mc->exit_csv, mc->fit_csv,
                                mc->exit_png};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        sgdstab_outfile_abort(files[i]);
    free(mc);
}

static sgdstab_outfile *open_in(const char *dir, const char *name,
                                char *path_out)
{
    char path[4200];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        fprintf(stderr, "sgdstab run: output directory name too long\n");
        return NULL;
    }
    if (path_out)
        memcpy(path_out, path, sizeof path);
    if (cli_plot_format(path) >= 0) {
        sgdstab_error err;
        sgdstab_outfile *of = sgdstab_outfile_open(path, &err);
        if (!of)
            cli_report(&err);
        return of;
    }
    return cli_csv_open(path);
}

int run_mc_open(run_mc *mc, const char *dir, const char *axes_header)
{
    mc->dir = dir;
    if (mc->epoch) {
        if (!(mc->threshold_csv = open_in(dir, "epoch-threshold.csv", NULL)) ||
            !(mc->epoch_png = open_in(dir, "epoch.png", mc->epoch_png_path)))
            return EXIT_DATA;
        fprintf(sgdstab_outfile_stream(mc->threshold_csv),
                "%sbatch,sampling,epoch_steps,runs,lr_threshold,"
                "lr_threshold_stderr,lr_critical,threshold_ratio,"
                "threshold_ratio_stderr\n", axes_header);
        if (mc->nfactor) {
            if (!(mc->epoch_csv = open_in(dir, "epoch-rate.csv", NULL)))
                return EXIT_DATA;
            fprintf(sgdstab_outfile_stream(mc->epoch_csv),
                    "%sbatch,lr_factor,lr,sampling,rate_per_step,rate_stderr,"
                    "exact_rate_per_step,z_vs_exact\n", axes_header);
        }
    }
    if (mc->exit) {
        if (!(mc->exit_csv = open_in(dir, "exit.csv", NULL)) ||
            !(mc->fit_csv = open_in(dir, "exit-fit.csv", NULL)) ||
            !(mc->exit_png = open_in(dir, "exit.png", mc->exit_png_path)))
            return EXIT_DATA;
        fprintf(sgdstab_outfile_stream(mc->exit_csv),
                "%sbatch,alpha,clip,jumps,lr,runs,steps,exited,"
                "never_exited_fraction,mean_exited,censored_mean,"
                "censored_mean_stderr,q10,median,q90\n", axes_header);
        fprintf(sgdstab_outfile_stream(mc->fit_csv),
                "%sbatch,alpha,clip,jumps,points,fitted_slope,"
                "fitted_slope_stderr,chi2_per_dof,predicted_slope\n",
                axes_header);
    }
    return EXIT_OK;
}

/* ------------------------------------------------------------- epoch */

static sgdstab_sim_options epoch_options(const run_mc *mc,
                                         const cli_session *ses,
                                         sgdstab_sampling s, size_t batch,
                                         double lr)
{
    sgdstab_sim_options o;
    memset(&o, 0, sizeof o);
    o.config = ses->cfg;
    o.config.lr = lr;
    o.config.batch = batch;
    o.config.sampling = s;
    o.runs = mc->epoch_runs;
    o.seed = mc->epoch_seed;
    return o;
}

static int epoch_case(run_mc *mc, size_t c, const char *axes,
                      const cli_session *ses, const size_t *batches,
                      const sgdstab_critical *cr, size_t nb, cJSON *jc)
{
    sgdstab_error err;
    cJSON *je = cJSON_AddArrayToObject(jc, "epoch");
    for (size_t i = 0; i < nb; i++) {
        size_t B = batches[i];
        double eta = cr[i].lr_critical;
        if (cr[i].kind != SGDSTAB_MINIMUM_OK)
            return mc_error(mc, "case %zu, B = %zu: no stable learning rate, "
                            "no threshold to compare with", c, B);
        for (size_t s = 0; s < mc->nsamp; s++) {
            sgdstab_sampling ms = mc->samp[s];
            const char *name = sgdstab_sampling_name(ms);
            sgdstab_sim_options o = epoch_options(mc, ses, ms, B, eta);
            double lr, se;
            sgdstab_epoch_estimate est;
            if (sgdstab_epoch_threshold(ses->red, &o, &lr, &se, &err))
                return mc_error(mc, "case %zu, B = %zu, %s: %s", c, B, name,
                                err.msg);
            FILE *f = sgdstab_outfile_stream(mc->threshold_csv);
            fprintf(f, "%s%zu,%s,%zu,%zu,", axes, B, name,
                    sgdstab_epoch_steps(ses->red->n, B), o.runs);
            double vals[] = {lr, se, eta, lr / eta, se / eta};
            for (size_t v = 0; v < 5; v++)
                cli_csv_number(f, vals[v], v < 4 ? "," : "\n");
            cJSON *r = cJSON_CreateObject();
            cli_json_size(r, "batch", B);
            cJSON_AddStringToObject(r, "sampling", name);
            cli_json_number(r, "lr_threshold", lr);
            cli_json_number(r, "lr_threshold_stderr", se);
            cli_json_number(r, "lr_critical", eta);
            cJSON *rates = cJSON_AddArrayToObject(r, "rates");
            cJSON_AddItemToArray(je, r);
            if (mc->nerow < MC_MAX_ROWS)
                mc->erow[mc->nerow++] = (epoch_row){c, B, s, lr / eta,
                                                    se / eta, lr, se, eta};
            for (size_t k = 0; k < mc->nfactor; k++) {
                double at = mc->factor[k] * eta;
                sgdstab_radius rad;
                sgdstab_config fresh = ses->cfg;
                fresh.lr = o.config.lr = at;
                fresh.batch = B;
                if (sgdstab_epoch_estimate_at(ses->red, &o, &est, &err) ||
                    sgdstab_spectral_radius(ses->stab, &fresh, &cr[i], &rad,
                                            NULL, &err))
                    return mc_error(mc, "case %zu, B = %zu, lr = %g: %s", c,
                                    B, at, err.msg);
                f = sgdstab_outfile_stream(mc->epoch_csv);
                fprintf(f, "%s%zu,", axes, B);
                cli_csv_number(f, mc->factor[k], ",");
                cli_csv_number(f, at, ",");
                fprintf(f, "%s,", name);
                cli_csv_number(f, est.rate_per_step, ",");
                cli_csv_number(f, est.rate_stderr, ",");
                cli_csv_number(f, log(rad.rho), ",");
                /* The estimator's check: only the spec's own sampling has
                 * an exact counterpart. */
                double z = NAN, exact = log(rad.rho);
                if (ms == mc->sampling) {
                    /* Rounding floor: at B = n every epoch is the same. */
                    double se = fmax(est.rate_stderr,
                                     1e-12 * fmax(1, fabs(exact)));
                    z = (est.rate_per_step - exact) / se;
                    mc->rate_checks++;
                    mc->rate_checks_failed += !(fabs(z) <= 3);
                }
                cli_csv_number(f, z, "\n");
                cJSON *q = cJSON_CreateObject();
                cli_json_number(q, "lr_factor", mc->factor[k]);
                cli_json_number(q, "rate_per_step", est.rate_per_step);
                cli_json_number(q, "rate_stderr", est.rate_stderr);
                cli_json_number(q, "exact_rate_per_step", log(rad.rho));
                cJSON_AddItemToArray(rates, q);
            }
        }
    }
    return EXIT_OK;
}

/* -------------------------------------------------------------- exit */

static size_t jumps_needed(double radius, double clip)
{
    return (size_t)ceil(radius / clip - 1e-12);
}

/* Weighted least squares of ln(censored mean) on ln(1/η), weights the
 * numbers of exits (the relative variance of an exponential mean's
 * estimate is 1/exits): slope, its standard error and χ²/dof. */
static void fit_slope(const exit_row *rows, size_t m, double *slope,
                      double *se, double *chi2, size_t *points)
{
    double sw = 0, sx = 0, sy = 0;
    *points = 0;
    for (size_t i = 0; i < m; i++)
        if (rows[i].exited >= EXIT_MIN_EXITS) {
            double w = (double)rows[i].exited;
            sw += w;
            sx += w * log(1 / rows[i].lr);
            sy += w * log(rows[i].mean);
            ++*points;
        }
    *slope = *se = *chi2 = NAN;
    if (*points < 2)
        return;
    double mx = sx / sw, my = sy / sw, sxx = 0, sxy = 0;
    for (size_t i = 0; i < m; i++)
        if (rows[i].exited >= EXIT_MIN_EXITS) {
            double w = (double)rows[i].exited, dx = log(1 / rows[i].lr) - mx;
            sxx += w * dx * dx;
            sxy += w * dx * (log(rows[i].mean) - my);
        }
    *slope = sxy / sxx;
    *se = 1 / sqrt(sxx);
    if (*points > 2) {
        double q = 0;
        for (size_t i = 0; i < m; i++)
            if (rows[i].exited >= EXIT_MIN_EXITS) {
                double w = (double)rows[i].exited;
                double d = log(rows[i].mean) - my -
                           *slope * (log(1 / rows[i].lr) - mx);
                q += w * d * d;
            }
        *chi2 = q / (double)(*points - 2);
    }
}

static int exit_case(run_mc *mc, size_t c, const char *axes,
                     const cli_session *ses, const size_t *batches, size_t nb,
                     cJSON *jc)
{
    sgdstab_error err;
    cJSON *jx = cJSON_AddArrayToObject(jc, "exit");
    for (size_t i = 0; i < nb; i++)
        for (size_t s = 0; s < mc->nseries; s++) {
            const exit_series *es = &mc->series[s];
            size_t first = mc->nxrow, jumps = jumps_needed(mc->radius,
                                                           es->clip);
            cJSON *r = cJSON_CreateObject();
            cJSON_AddItemToArray(jx, r);
            cli_json_size(r, "batch", batches[i]);
            cli_json_number(r, "alpha", es->alpha);
            cli_json_number(r, "clip", es->clip);
            cli_json_size(r, "jumps", jumps);
            cJSON *pts = cJSON_AddArrayToObject(r, "points");
            for (size_t l = 0; l < es->nlr; l++) {
                sgdstab_sim_options o;
                memset(&o, 0, sizeof o);
                o.config = ses->cfg;
                o.config.lr = es->lr[l];
                o.config.batch = batches[i];
                o.steps = mc->exit_steps;
                o.runs = mc->exit_runs;
                o.seed = mc->exit_seed;
                o.init = SGDSTAB_INIT_ZERO;
                o.noise = SGDSTAB_NOISE_PARETO;
                o.noise_alpha = es->alpha;
                o.noise_scale = mc->noise_scale;
                o.clip = es->clip;
                o.radius = mc->radius;
                sgdstab_sim_result *res;
                if (sgdstab_simulate(ses->red, ses->prob, &o, &res, NULL, NULL,
                                     &err))
                    return mc_error(mc,
                                    "case %zu, B = %zu, exit series %zu, "
                                    "lr = %g: %s",
                                    c, batches[i], s, o.config.lr, err.msg);
                sgdstab_exit_stats st;
                sgdstab_sim_exit_stats(res, &st);
                sgdstab_sim_result_free(res);
                double se = st.censored_mean / sqrt((double)st.exited);
                FILE *f = sgdstab_outfile_stream(mc->exit_csv);
                fprintf(f, "%s%zu,", axes, batches[i]);
                cli_csv_number(f, es->alpha, ",");
                cli_csv_number(f, es->clip, ",");
                fprintf(f, "%zu,", jumps);
                cli_csv_number(f, o.config.lr, ",");
                fprintf(f, "%zu,%zu,%zu,", o.runs, o.steps, st.exited);
                double vals[] = {st.never_fraction, st.mean, st.censored_mean,
                                 se, st.quantiles[0], st.quantiles[2],
                                 st.quantiles[4]};
                for (size_t v = 0; v < 7; v++)
                    cli_csv_number(f, vals[v], v < 6 ? "," : "\n");
                cJSON *p = cJSON_CreateObject();
                cli_json_number(p, "lr", o.config.lr);
                cli_json_size(p, "exited", st.exited);
                cli_json_number(p, "censored_mean", st.censored_mean);
                cli_json_number(p, "median", st.quantiles[2]);
                cJSON_AddItemToArray(pts, p);
                if (mc->nxrow < MC_MAX_ROWS)
                    mc->xrow[mc->nxrow++] = (exit_row){
                        .c = c, .batch = batches[i], .series = s,
                        .lr = o.config.lr, .mean = st.censored_mean, .se = se,
                        .exited = st.exited};
            }
            double slope, sse, chi2, pred = 1 + (es->alpha - 1) * (double)jumps;
            size_t points;
            fit_slope(mc->xrow + first, mc->nxrow - first, &slope, &sse, &chi2,
                      &points);
            for (size_t k = first; k < mc->nxrow; k++) {
                mc->xrow[k].fit_slope = slope;
                mc->xrow[k].fit_se = sse;
                mc->xrow[k].chi2 = chi2;
                mc->xrow[k].points = points;
            }
            FILE *f = sgdstab_outfile_stream(mc->fit_csv);
            fprintf(f, "%s%zu,", axes, batches[i]);
            cli_csv_number(f, es->alpha, ",");
            cli_csv_number(f, es->clip, ",");
            fprintf(f, "%zu,%zu,", jumps, points);
            cli_csv_number(f, slope, ",");
            cli_csv_number(f, sse, ",");
            cli_csv_number(f, chi2, ",");
            cli_csv_number(f, pred, "\n");
            cli_json_size(r, "points_fitted", points);
            cli_json_number(r, "fitted_slope", slope);
            cli_json_number(r, "fitted_slope_stderr", sse);
            cli_json_number(r, "chi2_per_dof", chi2);
            cli_json_number(r, "predicted_slope", pred);
        }
    return EXIT_OK;
}

int run_mc_case(run_mc *mc, size_t c, const char *axes, const char *label,
                const cli_session *ses, const size_t *batches,
                const sgdstab_critical *cr, size_t nb, cJSON *jc)
{
    if (mc->nlabels < 64)
        snprintf(mc->labels[mc->nlabels++], sizeof mc->labels[0], "%s",
                 label);
    int st = EXIT_OK;
    if (mc->epoch)
        st = epoch_case(mc, c, axes, ses, batches, cr, nb, jc);
    if (!st && mc->exit)
        st = exit_case(mc, c, axes, ses, batches, nb, jc);
    return st;
}

/* ---------------------------------------------------------- pictures */

/* The end of the group of exit rows starting at i: one (case, batch,
 * series). */
static size_t group_end(const run_mc *mc, size_t i)
{
    const exit_row *e = &mc->xrow[i];
    size_t j = i;
    while (j < mc->nxrow && mc->xrow[j].c == e->c &&
           mc->xrow[j].batch == e->batch && mc->xrow[j].series == e->series)
        j++;
    return j;
}

static const char *const COLOURS[] = {"#1b9e77", "#d95f02", "#7570b3",
                                      "#e7298a", "#66a61e", "#e6ab02",
                                      "#a6761d", "#666666"};
#define NCOLOURS (sizeof COLOURS / sizeof COLOURS[0])

/* "case c, " in legends when there are several cases, else nothing. */
static const char *case_label(const run_mc *mc, size_t c, char *buf,
                              size_t size)
{
    snprintf(buf, size, "%s, ", c < mc->nlabels ? mc->labels[c] : "");
    return mc->nlabels > 1 ? buf : "";
}

/* The pictures' sizes (0: their defaults) and frames: legend below. */
typedef struct {
    const run_mc *mc;
    int width, height;
} mc_picture;

/* Returns the plot area's height in pixels (cli_plot_frame). */
static double mc_frame(FILE *f, const mc_picture *pic, const char *title,
                       size_t entries, size_t label_chars)
{
    cli_frame fr = {pic->width, pic->height, title, CLI_LEGEND_BELOW,
                    entries, label_chars, 3};
    double height = cli_plot_frame(f, &fr);
    fprintf(f, "set grid lc rgb '#cccccc'\n");
    return height;
}

/* Threshold ratio η_threshold/η*(B) against B, one line per case and
 * sampling, with ±1 standard error bars. */
static void epoch_script(FILE *f, void *ctx)
{
    const mc_picture *pic = ctx;
    const run_mc *mc = pic->mc;
    char title[256], label[160];
    snprintf(title, sizeof title, "Stability threshold of the one-epoch map, "
             "relative to the exact η*(B) of fresh batches (sampling %s)",
             sgdstab_sampling_name(mc->sampling));
    size_t chars = strlen("exact η*(B)");
    for (size_t c = 0; c < mc->nlabels; c++)
        for (size_t s = 0, len; s < mc->nsamp; s++)
            if ((len = strlen(case_label(mc, c, label, sizeof label)) +
                       strlen(sgdstab_sampling_name(mc->samp[s]))) > chars)
                chars = len;
    mc_frame(f, pic, title, 1 + mc->nlabels * mc->nsamp, chars);
    fprintf(f, "set xlabel 'batch size B'\nset ylabel 'η_{threshold} / "
            "η*(B)'\nset logscale x\n"
            "set offsets 0, 0, graph 0.1, graph 0.1\n");
    /* an explicit range: gnuplot cannot autoscale a single batch size */
    double lo = INFINITY, hi = 0;
    for (size_t i = 0; i < mc->nerow; i++) {
        lo = fmin(lo, (double)mc->erow[i].batch);
        hi = fmax(hi, (double)mc->erow[i].batch);
    }
    fprintf(f, "set xrange [%.17g:%.17g]\n", lo / sqrt(2.0), hi * sqrt(2.0));
    cli_plot_log_tics(f, "x", lo / sqrt(2.0), hi * sqrt(2.0));
    size_t series = 0;
    fprintf(f, "plot 1 with lines lc rgb '#555555' dt 2 title 'exact η*(B)'");
    for (size_t c = 0; c < mc->nlabels; c++)
        for (size_t s = 0; s < mc->nsamp; s++, series++)
            fprintf(f, ", \\\n  '-' using 1:2:3 with yerrorlines lw 2 pt 7 "
                    "lc rgb '%s' title \"%s%s\" noenhanced",
                    COLOURS[series % NCOLOURS],
                    case_label(mc, c, label, sizeof label),
                    sgdstab_sampling_name(mc->samp[s]));
    fputc('\n', f);
    for (size_t c = 0; c < mc->nlabels; c++)
        for (size_t s = 0; s < mc->nsamp; s++) {
            for (size_t i = 0; i < mc->nerow; i++) {
                const epoch_row *e = &mc->erow[i];
                if (e->c == c && e->si == s)
                    fprintf(f, "%zu %.17g %.17g\n", e->batch, e->ratio,
                            e->ratio_se);
            }
            fprintf(f, "e\n");
        }
}

/* Did some run of the exit rows i..j−1 exit? */
static int group_has_points(const run_mc *mc, size_t i, size_t j)
{
    for (size_t k = i; k < j; k++)
        if (mc->xrow[k].exited > 0)
            return 1;
    return 0;
}

/* The legend entry of the exit group starting at row i. */
static size_t exit_label(const run_mc *mc, size_t i, char *buf, size_t size)
{
    const exit_row *e = &mc->xrow[i];
    const exit_series *es = &mc->series[e->series];
    size_t jumps = jumps_needed(mc->radius, es->clip);
    char cl[160];
    snprintf(buf, size, "%sα = %g, b = %g (l* = %zu): slope %.3f ± %.3f, "
             "predicted %g", case_label(mc, e->c, cl, sizeof cl), es->alpha,
             es->clip, jumps, e->fit_slope, e->fit_se,
             1 + (es->alpha - 1) * (double)jumps);
    return strlen(buf);
}

/* The axes of the exit picture: 1/η and the exit steps of the points with
 * their error bars, padded; log tics on both. */
static void exit_axes(FILE *f, const run_mc *mc)
{
    double x0 = INFINITY, x1 = 0, y0 = INFINITY, y1 = 0;
    for (size_t i = 0; i < mc->nxrow; i++) {
        const exit_row *e = &mc->xrow[i];
        x0 = fmin(x0, 1 / e->lr);
        x1 = fmax(x1, 1 / e->lr);
        if (e->exited > 0) {
            y0 = fmin(y0, fmax(e->mean - e->se, e->mean / 2));
            y1 = fmax(y1, e->mean + e->se);
        }
    }
    if (!(y1 > 0))
        y0 = 1, y1 = 10;
    x0 /= 1.2, x1 *= 1.2, y0 /= 1.5, y1 *= 1.5;
    fprintf(f, "set xrange [%.17g:%.17g]\nset yrange [%.17g:%.17g]\n", x0, x1,
            y0, y1);
    cli_plot_log_tics(f, "x", x0, x1);
    cli_plot_log_tics(f, "y", y0, y1);
}

/* Censored mean exit step against 1/η on log-log axes, one colour per
 * series with its fitted power law. */
static void exit_script(FILE *f, void *ctx)
{
    const mc_picture *pic = ctx;
    const run_mc *mc = pic->mc;
    char title[256], label[400];
    snprintf(title, sizeof title, "First exit from the ball |δ| ≤ %g: "
             "clipped SGD with Pareto noise of scale %g", mc->radius,
             mc->noise_scale);
    size_t entries = 0, chars = 0;
    for (size_t i = 0, j; i < mc->nxrow; i = j) {
        j = group_end(mc, i);
        if (group_has_points(mc, i, j)) {
            entries++;
            size_t len = exit_label(mc, i, label, sizeof label);
            chars = len > chars ? len : chars;
        }
    }
    double height = mc_frame(f, pic, title, entries ? entries : 1,
                             entries ? chars : 14);
    /* The full y label where the plot is tall enough for it (a long legend
     * in a small picture leaves little); the report says the rest. */
    static const char full[] = "mean exit step (censored mean, ±1 s.e.)";
    fprintf(f, "set xlabel '1/η'\nset ylabel '%s'\nset logscale xy\n",
            height >= (double)(sizeof full - 3) * CLI_PLOT_CHAR_W
                ? full : "mean exit step");
    exit_axes(f, mc);
    /* Groups of rows: one per (case, batch, series), in order; a group
     * gets its points only if some run exited, and its line only if the
     * slope was fitted (gnuplot complains about empty data). */
    size_t g = 0, clauses = 0;
    fprintf(f, "plot");
    for (size_t i = 0; i < mc->nxrow; g++) {
        const exit_row *e = &mc->xrow[i];
        size_t j = group_end(mc, i);
        const char *col = COLOURS[g % NCOLOURS];
        if (group_has_points(mc, i, j)) {
            exit_label(mc, i, label, sizeof label);
            fprintf(f, "%s '-' using 1:2:3 with yerrorbars pt 7 lc rgb '%s' "
                    "title \"%s\" noenhanced", clauses++ ? ", \\\n " : "",
                    col, label);
        }
        if (isfinite(e->fit_slope))
            fprintf(f, "%s '-' using 1:2 with lines lw 2 lc rgb '%s' notitle",
                    clauses++ ? ", \\\n " : "", col);
        i = j;
    }
    if (!clauses)
        fprintf(f, " 1 lc rgb 'white' title 'no run exited'");
    fputc('\n', f);
    for (size_t i = 0; i < mc->nxrow;) {
        size_t j = group_end(mc, i);
        /* Points, then the fitted line through their weighted centre. */
        double sw = 0, sx = 0, sy = 0;
        for (size_t k = i; k < j; k++) {
            const exit_row *e = &mc->xrow[k];
            if (e->exited > 0)
                fprintf(f, "%.17g %.17g %.17g\n", 1 / e->lr, e->mean, e->se);
            if (e->exited >= EXIT_MIN_EXITS) {
                sw += (double)e->exited;
                sx += (double)e->exited * log(1 / e->lr);
                sy += (double)e->exited * log(e->mean);
            }
        }
        if (group_has_points(mc, i, j))
            fprintf(f, "e\n");
        double slope = mc->xrow[i].fit_slope;
        if (isfinite(slope)) {
            for (size_t k = i; k < j; k++) {
                double x = log(1 / mc->xrow[k].lr);
                fprintf(f, "%.17g %.17g\n", 1 / mc->xrow[k].lr,
                        exp(sy / sw + slope * (x - sx / sw)));
            }
            fprintf(f, "e\n");
        }
        i = j;
    }
}

int run_mc_finish(run_mc *mc, int status, int width, int height)
{
    if (!mc)
        return status;
    mc_picture epoch = {mc, width ? width : 960, height ? height : 640};
    mc_picture exit = {mc, width ? width : 960,
                       height ? height : 560 + 24 * (int)mc->nseries};
    if (!status && mc->epoch && mc->nerow)
        status = cli_gnuplot("run", mc->epoch_png_path, mc->epoch_png,
                             epoch.width, epoch.height, epoch_script, &epoch);
    if (!status && mc->exit && mc->nxrow)
        status = cli_gnuplot("run", mc->exit_png_path, mc->exit_png,
                             exit.width, exit.height, exit_script, &exit);
    sgdstab_outfile **files[] = {&mc->epoch_csv, &mc->threshold_csv,
                                 &mc->epoch_png, &mc->exit_csv, &mc->fit_csv,
                                 &mc->exit_png};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (!*files[i])
            continue;
        if (status)
            sgdstab_outfile_abort(*files[i]);
        else if (cli_csv_commit(*files[i]))
            status = EXIT_DATA;
        *files[i] = NULL;
    }
    return status;
}

/* ------------------------------------------------------------ report */

void run_mc_report(const run_mc *mc, FILE *f)
{
    if (mc->epoch) {
        fprintf(f, "\n## Reshuffling and fresh batches: the one-epoch map\n\n"
                "For every batch size the one-epoch second-moment map was "
                "estimated from %zu sampled epochs (seed %lu) and the "
                "learning rate where its spectral radius crosses 1 located "
                "(`sgdstab simulate --threshold`), beside the exact η\\*(B) "
                "of fresh batches (sampling `%s`). Table `epoch-threshold."
                "csv`%s, picture `epoch.png`.\n\n![thresholds](epoch.png)\n\n",
                mc->epoch_runs, mc->epoch_seed,
                sgdstab_sampling_name(mc->sampling),
                mc->nfactor ? ", rates at multiples of η\\*(B) in "
                              "`epoch-rate.csv`" : "");
        if (mc->nfactor)
            fprintf(f, "Check of the estimator on fresh batches, whose rate "
                    "is known exactly: %zu of %zu estimated rates in "
                    "`epoch-rate.csv` are more than 3 standard errors from "
                    "ln ρ (column `z_vs_exact`). Far above the threshold "
                    "with long epochs (B ≪ n) the product of an epoch's "
                    "factors is heavy-tailed, and the estimate falls short of "
                    "the true rate by more than its error; reshuffled rates "
                    "at those learning rates share the bias. The thresholds "
                    "below are not affected: there ρ = 1.\n\n",
                    mc->rate_checks_failed, mc->rate_checks);
        fprintf(f, "| case | B | sampling | threshold | ± s.e. | exact "
                "η\\*(B) | ratio | ± s.e. |\n|---|---|---|---|---|---|---|---|"
                "\n");
        for (size_t i = 0; i < mc->nerow; i++) {
            const epoch_row *e = &mc->erow[i];
            fprintf(f,
                    "| %zu | %zu | %s | %.6g | %.2g | %.6g | %.4f | %.4f "
                    "|\n",
                    e->c, e->batch, sgdstab_sampling_name(mc->samp[e->si]),
                    e->lr, e->lr_se, e->exact, e->ratio, e->ratio_se);
        }
    }
    if (mc->exit) {
        fprintf(f, "\n## Exit times of clipped SGD with heavy-tailed noise\n\n"
                "From δ_0 = 0, %zu runs per learning rate (seed %lu, at most "
                "%zu steps) of SGD whose step η(H_ξ δ − Z) is clipped to norm "
                "b, Z with a uniform direction and a Pareto magnitude of tail "
                "index α and scale %g; exit when |δ| > R = %g. The exit "
                "time is the censored mean (total steps run / exits: the "
                "maximum-likelihood mean of memoryless exits, not biased by "
                "runs that never left); the slope of its logarithm against "
                "ln(1/η) is fitted by least squares weighted by the numbers "
                "of exits (points with fewer than %d exits left out) and set "
                "beside Wang–Oh–Rhee's prediction 1 + (α − 1)·l\\*, "
                "l\\* = ⌈R/b⌉ (the number of clipped jumps needed to leave), "
                "which holds as η → 0 and up to constants. Tables `exit.csv` "
                "(every point) and `exit-fit.csv`, picture `exit.png`.\n\n"
                "![exit times](exit.png)\n\n"
                "| case | B | α | b | l\\* | points | fitted slope | ± s.e. | "
                "χ²/dof | predicted |\n|---|---|---|---|---|---|---|---|---|"
                "---|\n", mc->exit_runs, mc->exit_seed, mc->exit_steps,
                mc->noise_scale, mc->radius, EXIT_MIN_EXITS);
        for (size_t i = 0; i < mc->nxrow;) {
            const exit_row *e = &mc->xrow[i];
            const exit_series *es = &mc->series[e->series];
            size_t jumps = jumps_needed(mc->radius, es->clip);
            fprintf(f, "| %zu | %zu | %g | %g | %zu | %zu | %.3f | %.3f | "
                    "%.3g | %g |\n", e->c, e->batch, es->alpha, es->clip,
                    jumps, e->points, e->fit_slope, e->fit_se, e->chi2,
                    1 + (es->alpha - 1) * (double)jumps);
            i = group_end(mc, i);
        }
    }
}
