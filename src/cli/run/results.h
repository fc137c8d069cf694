/* What `sgdstab run` computes, case by case, as plain structs: the case
 * code (case.c, experiments.c) fills them, and every writer (tables.c,
 * summary.c, report.c, pictures.c) reads them. */
#ifndef SGDSTAB_CLI_RUN_RESULTS_H
#define SGDSTAB_CLI_RUN_RESULTS_H

#include "spec.h"
#include "sgdstab/fit.h"
#include "sgdstab/simulate.h"
#include "sgdstab/theory.h"

/* η*(B) at one batch size, with the theory's bounds on it. */
typedef struct {
    size_t batch;
    double b;                  /* the batch-noise coefficient */
    double lr_critical, rel_accuracy;
    sgdstab_lr_bounds bounds;
    double stable_sharpness;   /* η*·‖H‖_F·√b */
} run_critical_row;

/* sgdstab_verify at (batch, lr = factor·η*(B)). */
typedef struct {
    size_t batch;
    double lr, factor;
    sgdstab_verification v;
} run_verify_row;

/* The phase diagram's files (in the output directory) and its extent. */
typedef struct {
    char grid_csv[64], boundary_csv[64], plot[64];
    size_t batches, lrs, stable_points;
    double lr_min, lr_max;
    /* With the Monte Carlo boundary: the rows where it falls inside the
     * grid, and the least and greatest η_L/η*(B) among them. */
    int lyapunov;
    size_t lyapunov_inside;
    double band_min, band_max;
} run_phase_result;

/* The estimated escape rate of the one-epoch map at factor·η*(B), beside
 * the exact ln ρ of fresh batches of the spec's sampling. */
typedef struct {
    double factor, lr, rate, rate_stderr, exact;
    double z;                  /* (rate − exact)/s.e.; NaN: no exact rate */
} run_epoch_rate;

/* The threshold of the one-epoch map at one batch size and sampling. */
typedef struct {
    size_t batch, sampling;    /* index into the spec's epoch samplings */
    size_t epoch_steps, runs;
    double lr, lr_stderr, lr_critical, ratio, ratio_stderr;
    run_epoch_rate *rates;     /* one per epoch.lr_factors */
} run_epoch_row;

/* The exit statistics at one learning rate. */
typedef struct {
    double lr;
    sgdstab_exit_stats stats;
    double censored_mean_stderr;
} run_exit_point;

/* One exit series at one batch size: its points and the fitted slope. */
typedef struct {
    size_t batch, series;      /* index into the spec's exit series */
    size_t jumps;              /* l* = ⌈R/b⌉ */
    double predicted_slope;    /* 1 + (α − 1)·l* */
    run_exit_point *points;    /* one per learning rate of the series */
    sgdstab_line_fit fit;      /* ln censored mean on ln(1/η) */
} run_exit_group;

typedef struct {
    size_t index;
    const cJSON *value[RUN_MAX_AXES];  /* the sweep's values (the spec's) */
    char *meta;                /* sgdstab_synth_meta_json (NULL: out of
                                  memory, or a problem file) */
    const char *input;         /* a problem file's: "jacobian" or "gram";
                                  NULL: synthesized */
    size_t n, k, p, d, rank;   /* p 0: not known (a Gram file); d 0: no
                                  input dimension (a problem file) */
    double residual;           /* max |r_io| over the training residuals
                                  (a file's R; NAN: it has none) */
    double lr_critical_mean;
    sgdstab_optimizer optimizer;  /* the case's (spec and sweep) */
    sgdstab_theory th;
    run_critical_row *critical;
    size_t ncritical;
    int nondecreasing;         /* η*(B) non-decreasing in B */
    run_verify_row *verify;
    size_t nverify;
    run_phase_result *phase;   /* NULL: no phase diagram */
    run_epoch_row *epoch;
    size_t nepoch;
    run_exit_group *exit;
    size_t nexit;
} run_case_result;

typedef struct {
    run_case_result *cases;
    size_t ncases;             /* those computed */
    size_t theorems_failed, not_monotone;
} run_results;

/* What every case of a run shares: the loss convention and, for a spec
 * with "problem", the file, loaded and factorized once before any
 * output. */
typedef struct {
    const char *loss;          /* as the report names it */
    const char *loss_name;     /* for sgdstab_loss_scale */
    char loss_text[64];
    sgdstab_problem *prob;     /* the file's problem; NULL: synthesized */
    sgdstab_reduced *red;      /* its reduced form for plain SGD */
    int file_optimizer;        /* the cases take the SGD settings of the
                                  file's meta.json, optimizer below */
    sgdstab_optimizer optimizer;
} run_source;

/* The source of sp's cases: EXIT_OK, or EXIT_DATA after the error line
 * (the file's errors under the key 'problem').  run_source_close releases
 * it either way. */
int run_source_open(const run_spec *sp, run_source *src);
void run_source_close(run_source *src);

/* Where and how the case code writes the phase diagrams, and the source
 * of the cases (set by run_experiment). */
typedef struct {
    const char *dir, *name;    /* NAME: the spec's, in default titles */
    int width, height;         /* --plot-size; 0: each picture's default */
    const run_source *source;
} run_context;

/* Case c of the spec, computed into r (zeroed first); its phase diagram
 * files are written.  Theorem failures are reported on stderr as found. */
int run_case_compute(const run_spec *sp, const run_context *ctx, size_t c,
                     run_case_result *r);
void run_case_result_free(run_case_result *r);

/* The Monte Carlo experiments of case c (case.c's session and η*(B)),
 * into r->epoch and r->exit. */
int run_epoch_compute(const run_spec *sp, const cli_session *ses,
                      run_case_result *r, const sgdstab_critical *cr);
int run_exit_compute(const run_spec *sp, const cli_session *ses,
                     run_case_result *r);

/* Exit points with fewer exits are too censored to fit. */
#define RUN_EXIT_MIN_EXITS 10

#endif
