/* Internal: what the Monte Carlo analyses share — the problem in reduced
 * coordinates as a trajectory sees it, the batch sampler of every sampling
 * rule (fresh batches and reshuffled epochs), H_ξ applied to a vector, the
 * random stream of run j, and the runs spread over threads in fixed
 * groups so that results never depend on the number of threads.  Used by
 * simulate.c (trajectories) and epoch.c (the one-epoch second-moment map). */
#ifndef SGDSTAB_MINIBATCH_H
#define SGDSTAB_MINIBATCH_H

#include <gsl/gsl_rng.h>
#include <stddef.h>
#include "sgdstab/progress.h"
#include "sgdstab/reduce.h"
#include "sgdstab/simulate.h"   /* sgdstab_sim_options, read by mb_problem */
#include "sgdstab/status.h"

/* Groups of runs: the unit of work of a thread, of the deterministic
 * combination of statistics and of the jackknife. */
enum { MB_GROUPS = 20 };

typedef struct {
    const sgdstab_reduced *red;
    const sgdstab_sim_options *opt;
    size_t n, k, r, p, nnull;    /* nnull = p − r directions that never move */
    double c;                    /* loss scale */
    double *fixed;               /* r×r c·(H − G) with a supplied H, else NULL */
} mb_problem;

/* Per-thread scratch. */
typedef struct {
    gsl_rng *rng;
    size_t *perm, pos;           /* a permutation of the samples */
    size_t *batch;               /* indices of the current batch */
    double *z, *g, *gp;          /* r, r, 3·max(p, r) */
    double *buf;                 /* r: the optimizer's buffer (momentum,
                                    Adam's first moment) */
    double *v;                   /* r: the start's part J never moves,
                                    seen from z (param_space.h) */
} mb_work;

int mb_problem_make(mb_problem *pb, const sgdstab_reduced *red,
                    const sgdstab_sim_options *opt, sgdstab_error *err);
void mb_problem_free(mb_problem *pb);

int mb_work_alloc(const mb_problem *pb, mb_work *w);
void mb_work_free(mb_work *w);

/* Start run j: its own generator state and a fresh epoch. */
void mb_start_run(const mb_problem *pb, mb_work *w, size_t run);

/* The next batch into w->batch; returns its size and sets *scale to the
 * divisor of its sum. */
size_t mb_draw_batch(const mb_problem *pb, mb_work *w, double *scale);

/* g = H_ξ z in reduced coordinates for the batch just drawn:
 * c·(1/scale) Σ_{i∈ξ} Φ_iᵀΦ_i z + c(H − G) z. */
void mb_gradient(const mb_problem *pb, const mb_work *w, size_t m,
                 double scale, const double *z, double *g);

/* Runs first..first+count−1 of group g are g·R/G .. (g+1)·R/G − 1. */
/* g += c·(1/scale) Σ_{i∈ξ} Φ_iᵀ(r_i + σ ε_i): the additive gradient noise
 * of the residuals and of label noise (ε fresh for every element of the
 * batch), for the batch just drawn (stationary.h). */
void mb_gradient_noise(const mb_problem *pb, mb_work *w, size_t m,
                       double scale, double *g);

size_t mb_groups(size_t runs);
size_t mb_group_first(size_t runs, size_t g);

/* Call job(ctx, w, g) for every group g of `runs` runs on `threads`
 * threads (0: one per online processor), each thread with its own mb_work.
 * progress (may be NULL) gets the number of groups done; a non-zero return
 * stops with SGDSTAB_ECANCELED.  `what` names the work in messages. */
int mb_parallel(const mb_problem *pb, size_t runs, size_t threads,
                void (*job)(void *ctx, mb_work *w, size_t g), void *ctx,
                sgdstab_progress_fn progress, void *pctx, const char *what,
                sgdstab_error *err);

#endif
