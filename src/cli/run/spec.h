/* The experiment spec of `sgdstab run` (a JSON object; `sgdstab run --help`
 * lists its keys): read and validated in one place, before any work, with
 * one error style — a line "sgdstab run: SPEC: key 'K': problem" naming the
 * key (escaped: keys and values are untrusted). */
#ifndef SGDSTAB_CLI_RUN_SPEC_H
#define SGDSTAB_CLI_RUN_SPEC_H

#include <cjson/cJSON.h>

#include "../phase_output.h"
#include "../session.h"
#include "sgdstab/synth.h"

#define RUN_MAX_AXES 4
#define RUN_MAX_LIST 64       /* learning rates, factors, exit series */
#define RUN_MAX_CASES 10000
#define RUN_MAX_SAMPLINGS 4

typedef struct {
    const char *key;
    const cJSON *values;      /* a non-empty array */
} run_axis;

/* "phase": a diagram per case over the spec's batch sizes. */
typedef struct {
    double *lr;               /* NULL: no phase diagrams */
    size_t nl;
    int log_spaced;
    int relative;             /* lr in multiples of 2/λmax(H) */
    cli_phase_style style;
    int lyapunov;             /* "lyapunov": the Monte Carlo boundary */
    sgdstab_lyapunov_options lyap;
} run_phase_spec;

/* "epoch": thresholds and rates of the one-epoch map. */
typedef struct {
    int on;
    sgdstab_sampling sampling[RUN_MAX_SAMPLINGS];
    size_t nsampling;
    double factor[RUN_MAX_LIST];
    size_t nfactor;
    size_t runs;
    unsigned long seed;
} run_epoch_spec;

typedef struct {
    double alpha, clip;
    double *lr;
    size_t nlr;
} run_exit_series;

/* "exit": exit times of clipped SGD with Pareto noise. */
typedef struct {
    int on;
    double radius, noise_scale;
    size_t runs, steps;
    unsigned long seed;
    run_exit_series *series;
    size_t nseries;
} run_exit_spec;

typedef struct {
    const char *path;
    cJSON *root;
    const char *description;
    /* "problem": the cases' problem file as the spec gives it, or NULL
     * (each case synthesized from "family" and "params"); problem_path is
     * it resolved against the spec's directory (malloc'd). */
    const char *problem;
    char *problem_path;
    size_t problem_params;     /* "problem_params" (p of a Gram file); 0:
                                  not given */
    sgdstab_synth_params base;
    run_axis axis[RUN_MAX_AXES];
    size_t naxes, ncases;
    const cJSON *batch;        /* a string, or the list batch_list */
    size_t *batch_list, nbatch;
    sgdstab_sampling sampling;
    const char *loss;          /* as the report names it */
    const char *loss_name;     /* for sgdstab_loss_scale, per case's k */
    char loss_number[32];
    double lr[RUN_MAX_LIST], factor[RUN_MAX_LIST];
    size_t nlr, nfactor;
    run_phase_spec phase;
    run_epoch_spec epoch;
    run_exit_spec exit;
    sgdstab_optimizer optimizer;  /* "optimizer" (SGD's settings); the
                                     sweep may set its momentum */
    int optimizer_given;       /* "optimizer" or a momentum sweep */
    int plain;                 /* plain SGD in every case */
} run_spec;

/* Read and validate the spec at path; EXIT_OK, or EXIT_DATA after the
 * error line.  run_spec_free releases it either way. */
int run_spec_load(run_spec *sp, const char *path);
void run_spec_free(run_spec *sp);

/* Validate a spec's text (NUL-terminated, size bytes) as FILE, as
 * run_spec_load does: EXIT_OK, or EXIT_DATA after one error line. */
int run_spec_check(const char *file, const char *text, size_t size);

/* The keys that need plain SGD ("lr", "lr_factors", "epoch", "exit"),
 * refused when the cases' optimizer has momentum or weight decay (why
 * says where it comes from); EXIT_OK or EXIT_DATA after the error line. */
int run_spec_plain_only(const run_spec *sp, const char *why);

/* The error line about the spec; returns EXIT_DATA. */
int run_spec_error(const run_spec *sp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Case c's synth parameters, optimizer and sweep values (value[ax] for
 * each axis): the first axis varies slowest. */
void run_spec_case(const run_spec *sp, size_t c, sgdstab_synth_params *par,
                   sgdstab_optimizer *opt, const cJSON **value);

/* What the cases are of, for titles: the problem file's name without its
 * directories, or the synth family's name. */
const char *run_spec_origin(const run_spec *sp);

/* The spec's batch sizes for n samples (malloc'd). */
int run_spec_batches(const run_spec *sp, size_t n, size_t **list,
                     size_t *count);

#endif
