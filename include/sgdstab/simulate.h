/* sgdstab — Monte Carlo SGD: independent trajectories of the linearized
 * recursion δ_{t+1} = δ_t − η·(H_ξ δ_t − Z_t) (README, The mathematics)
 * with real minibatches, optional injected noise Z_t and clipping of the step
 * (Wang, Oh, Rhee, ICLR 2022).
 *
 * Trajectories run in reduced coordinates: δ = Q z + w with z ∈ R^r and w
 * in the directions that never move.  Without noise w stays where it
 * starts; with noise it only accumulates the noise's null-space part, whose
 * direction is uniform, so |w| is simulated exactly from the component of
 * each noise draw along w and the norm of the rest.  A step costs
 * O(B·k·r) (plus O(r²) with a supplied H, for the fixed part H − G).
 *
 * Run j draws from its own generator (GSL MT19937 seeded from the seed and
 * j), and per-step statistics are accumulated per fixed group of runs and
 * combined in group order: the results depend on the seed only, never on
 * the number of threads. */
#ifndef SGDSTAB_SIMULATE_H
#define SGDSTAB_SIMULATE_H

#include <stddef.h>
#include "sgdstab/config.h"
#include "sgdstab/problem.h"
#include "sgdstab/progress.h"
#include "sgdstab/reduce.h"
#include "sgdstab/second_moment.h"
#include "sgdstab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SGDSTAB_NOISE_NONE = 0,
    SGDSTAB_NOISE_GAUSSIAN,   /* Z = scale·N(0, I_p) */
    SGDSTAB_NOISE_PARETO      /* uniform direction, |Z| = scale·U^(−1/α) */
} sgdstab_noise_kind;

typedef enum {
    SGDSTAB_INIT_ISOTROPIC = 0,  /* δ_0 ~ N(0, I/p): E‖δ_0‖² = 1 */
    SGDSTAB_INIT_ZERO,           /* δ_0 = 0 */
    SGDSTAB_INIT_MATRIX          /* δ_0 ~ N(0, S_0), S_0 given (p×p PSD) */
} sgdstab_init_kind;

typedef struct {
    sgdstab_config config;  /* η, B, the sampling rule (reshuffle
                               included) and the loss scale c: every A_i
                               and H scaled by it */
    size_t steps, runs;
    unsigned long seed;
    sgdstab_init_kind init;
    const sgdstab_second_moment *init_moment;  /* S_0 for SGDSTAB_INIT_MATRIX */
    sgdstab_noise_kind noise;
    double noise_scale, noise_alpha;
    const double *residuals;  /* n×k residuals r_i (the problem's R), or
                                 NULL: their gradients c·J_iᵀr_i add to every
                                 batch's (stationary.h) */
    double label_noise;       /* σ ≥ 0: label noise, fresh for every
                                 element of every batch */
    int lyapunov;             /* each run estimates the top Lyapunov
                                 exponent instead (sgdstab_sim_lyapunov) */
    double clip;            /* > 0: the step is scaled to norm ≤ clip */
    double radius;          /* > 0: runs stop at their first exit ‖δ_t‖ > radius
                               and only exit steps are recorded */
    size_t threads;         /* 0: one per online processor */
} sgdstab_sim_options;

typedef struct {
    size_t steps, runs, groups;
    /* Per step t = 0..steps (NULL with a radius): sample mean and standard
     * deviation over runs of ‖δ_t‖² and of L_t = (c/2)·δ_tᵀGδ_t. */
    double *norm2_mean, *norm2_sd, *loss_mean, *loss_sd;
    /* Mean of ‖δ_t‖² within each group: groups × (steps + 1), and the
     * number of runs of each group (for the jackknife). */
    double *group_norm2_mean;
    size_t *group_runs;
    /* With a radius: the first exit step of every run, 0 if it never left
     * within `steps`. */
    size_t *exit_step;
    /* With lyapunov: each run's estimate of the top Lyapunov exponent of
     * ‖δ_t‖ per step on the directions that move (NaN where the state
     * vanished). */
    double *lyapunov;
} sgdstab_sim_result;

/* The most floating-point operations one simulation may take: about a day
 * at 1 GFLOP/s (it shows a progress bar on a terminal); an epoch estimate,
 * which has none, about a quarter of an hour.  Beyond, the options are
 * refused before any work. */
#define SGDSTAB_WORK_MAX 1e14
#define SGDSTAB_EPOCH_WORK_MAX 1e12

/* Floating-point operations of the trajectories (the worst case with a
 * radius, where runs may stop early): runs × steps × a step's cost. */
double sgdstab_sim_work(const sgdstab_reduced *red,
                        const sgdstab_sim_options *opt);

/* An SGDSTAB_EINVAL naming `what` when flops exceed max. */
int sgdstab_work_check(double flops, double max, const char *what,
                       sgdstab_error *err);

/* Check the options against the problem (message names the option); this
 * includes the bound on the work. */
int sgdstab_sim_check(const sgdstab_reduced *red,
                      const sgdstab_sim_options *opt, sgdstab_error *err);

/* Run the simulation.  prob is the problem red was made from (needed for
 * SGDSTAB_INIT_MATRIX).  progress (may be NULL) is called with the number
 * of groups of runs done; a non-zero return stops with SGDSTAB_ECANCELED.
 * It may be called from any worker thread, one call at a time. */
int sgdstab_simulate(const sgdstab_reduced *red, const sgdstab_problem *prob,
                     const sgdstab_sim_options *opt,
                     sgdstab_sim_result **out, sgdstab_progress_fn progress,
                     void *ctx, sgdstab_error *err);

void sgdstab_sim_result_free(sgdstab_sim_result *res);

/* The top Lyapunov exponent λ₁ of the random product of the steps, per
 * step, of ‖δ_t‖: the mean over runs of (1/(T − T₀)) Σ_{t>T₀} ln(‖u_t‖/
 * ‖u_{t−1}‖), the state u (δ's moving part, and the buffer) renormalized
 * every step and the first T₀ = T/10 steps left out, and its standard
 * error over the independent runs.  Almost every run grows at λ₁ ≤ ½ ln ρ
 * (Jensen), which can be below 0 where ρ > 1: mean-square unstable while
 * almost every run stays. */
void sgdstab_sim_lyapunov(const sgdstab_sim_result *res, double *mean,
                          double *stderr_);

/* The mean of ‖δ_t‖² over the runs averaged over the steps t = from..to
 * (an estimate of the stationary E‖δ‖² once the runs have settled), and
 * its standard error from the spread of the groups' averages (NaN with
 * fewer than two groups). */
void sgdstab_sim_time_average(const sgdstab_sim_result *res, size_t from,
                              size_t to, double *mean, double *stderr_);

/* Least-squares slope of ln(mean ‖δ_t‖²) on t = from..to, and its jackknife
 * standard error over the groups of runs (NaN when a mean is not positive
 * or there are fewer than two groups). */
void sgdstab_sim_growth_rate(const sgdstab_sim_result *res, size_t from,
                             size_t to, double *rate, double *stderr_);

/* The least-squares slope of ln y_t on t = from..to (NaN if some y_t ≤ 0):
 * sgdstab_fit_log_line (fit.h) on those points. */
double sgdstab_log_slope(const double *y, size_t from, size_t to);

/* Exit statistics of a run with a radius.  quantiles[i] is the
 * ⌈q_i·runs⌉-th smallest exit step, runs that never exited counting as +∞
 * (then it is INFINITY); mean over exited runs (NAN if none), which is
 * biased low when some runs never exit; censored_mean = Σ_runs min(τ, T) /
 * exited, the maximum-likelihood mean of exponentially distributed exit
 * steps observed up to T (exits from a metastable state are memoryless),
 * unbiased by censoring (NAN if none exited). */
typedef struct {
    size_t exited;
    double never_fraction, mean, censored_mean;
    double quantiles[5];   /* q = 0.1, 0.25, 0.5, 0.75, 0.9 */
} sgdstab_exit_stats;

extern const double SGDSTAB_EXIT_QUANTILES[5];

void sgdstab_sim_exit_stats(const sgdstab_sim_result *res,
                            sgdstab_exit_stats *out);

#ifdef __cplusplus
}
#endif

#endif
