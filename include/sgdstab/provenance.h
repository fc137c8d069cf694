/* sgdstab — provenance: where a minimum came from, as the metadata member
 * "meta.json" of an .npz says (a UTF-8 JSON object written by the exporter
 * or by `sgdstab synth`).
 *
 * Keys read (all optional; others are ignored; null counts as absent):
 *   "loss"            "half-mean", "mse" or a number > 0: the loss
 *                     convention of training (the meaning of --loss)
 *   "residual_rms"    number ≥ 0: sqrt((1/n) Σ_i ‖f(x_i) − y_i‖²)
 *   "max_residual"    number ≥ 0: max_i ‖f(x_i) − y_i‖
 *   "target_rms"      number > 0: sqrt((1/n) Σ_i ‖y_i‖²)
 *   "n", "k", "p"     whole numbers ≥ 1: the shape of J
 *   "train_lr"        number > 0, "train_batch" whole number ≥ 1,
 *   "train_sampling"  string: the SGD that found the minimum
 *   "optimizer"       object: the optimizer of training (optimizer.h), as
 *                     the exporter reads it from a PyTorch optimizer:
 *                     "kind" (required) "sgd", "rmsprop" (sgd whose v̂ is
 *                     the member V), "adam" or "adamw"; "momentum" (β or
 *                     β₁) and "dampening" in [0, 1), "nesterov" boolean,
 *                     "weight_decay" ≥ 0, "beta2" in [0, 1), "eps" > 0;
 *                     other keys (lr, step, ...) are ignored
 *
 * The noise model of linearized SGD (see the README) assumes an interpolating
 * minimum, f(x_i) = y_i for every i; the residuals tell how far a minimum is
 * from one. */
#ifndef SGDSTAB_PROVENANCE_H
#define SGDSTAB_PROVENANCE_H

#include <stddef.h>
#include "sgdstab/optimizer.h"
#include "sgdstab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A minimum counts as interpolating when its relative RMS residual
 * residual_rms / target_rms is at most this: the training residual is at
 * most 1% of the RMS norm of the targets. */
#define SGDSTAB_INTERPOLATION_RTOL 1e-2

typedef struct {
    int present;              /* 1: the file had a meta.json */
    char loss[32];            /* "half-mean", "mse", or a number as its text
                                 ("%.17g", e.g. "0.5"); "" when absent */
    double residual_rms;      /* NAN when absent (likewise below) */
    double max_residual;
    double target_rms;
    double train_lr;
    size_t train_batch;       /* 0 when absent */
    char train_sampling[16];  /* "" when absent */
    size_t n, k, p;           /* 0 when absent */
    int has_optimizer;        /* "optimizer" was given */
    int preconditioned;       /* its kind needs v̂: rmsprop, adam, adamw */
    sgdstab_optimizer optimizer;  /* its settings (second_moment NULL) */
} sgdstab_provenance;

/* Set pv to "nothing known": present 0, the absent values above. */
void sgdstab_provenance_init(sgdstab_provenance *pv);

/* Parse len bytes of meta.json text (no NUL needed; an embedded NUL is an
 * error) into *out, present = 1.  Strict: text that is not JSON, not an
 * object, a known key of the wrong type or out of its range, or a string
 * longer than its field (or holding control characters) is an
 * SGDSTAB_EFORMAT error, "LABEL: meta.json: ..." (label: the file name);
 * *out is then "nothing known". */
int sgdstab_provenance_parse(const char *text, size_t len, const char *label,
                             sgdstab_provenance *out, sgdstab_error *err);

/* residual_rms / target_rms, NAN when either is absent. */
double sgdstab_provenance_relative_residual(const sgdstab_provenance *pv);

/* 1 if residual_rms ≤ SGDSTAB_INTERPOLATION_RTOL · target_rms, 0 if not,
 * −1 when either is absent (unknown). */
int sgdstab_provenance_interpolating(const sgdstab_provenance *pv);

#ifdef __cplusplus
}
#endif

#endif
