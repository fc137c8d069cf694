/* sgdstab — the verdict: spectral radius on the range, escape rate and the
 * critical learning rate η*(B) (README, The mathematics).
 *
 * ρ⊥ = λmax(𝒯) on symmetric r×r matrices of the reduced space (𝒯 preserves
 * the PSD cone and is self-adjoint, so its spectral radius is its largest
 * eigenvalue, with a PSD eigenmatrix).  E‖δ_t‖² grows like ρ⊥^t: the escape
 * rate is ln ρ⊥ per step and (n/B)·ln ρ⊥ per epoch, and the RMS distance
 * changes by a factor e every 2/|ln ρ⊥| steps.
 *
 * η*(B) = 1 / λmax(𝒜₁^{-1/2} 𝒜₂ 𝒜₁^{-1/2}) (README, η*(B)): the stable rates
 * are exactly (0, η*], so the verdict "stable" is η ≤ η*.  𝒜₁^{-1/2} acts
 * entry-wise in H's eigenbasis, Z_jl / √(h_j + h_l).
 *
 * Learning rates here are in the user's loss convention: with loss scale c
 * of the configuration (config.h; A_i → c·A_i, H → c·H) the operators see
 * c·η, and η* is divided by c.  Every entry point checks its configuration
 * (sgdstab_config_check). */
#ifndef SGDSTAB_STABILITY_H
#define SGDSTAB_STABILITY_H

#include <stddef.h>
#include "sgdstab/config.h"
#include "sgdstab/eig.h"
#include "sgdstab/reduce.h"
#include "sgdstab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Why η* is 0 without an eigenproblem. */
typedef enum {
    SGDSTAB_MINIMUM_OK = 0,
    SGDSTAB_NOT_A_MINIMUM,  /* H has a negative eigenvalue */
    SGDSTAB_DEGENERATE      /* H is singular on a direction some J_i moves:
                               with batch noise (b > 0) nothing damps it */
} sgdstab_minimum_kind;

/* The workspace of one reduced problem ("plan once, solve many"): the
 * noise operator's factors, and per family and sampling rule an eigensolver
 * basis that every solve extends and the next one starts from (eig.h).  The
 * basis is a warm start: it changes how many applications a solve takes,
 * and its result within the solver's tolerance, never what is solved.  No
 * other state survives a call.  A workspace may be used by one thread at a
 * time; threads that solve at once each need their own (the reduced
 * problem itself is read only and may be shared). */
typedef struct sgdstab_stability sgdstab_stability;

sgdstab_stability *sgdstab_stability_alloc(const sgdstab_reduced *red,
                                           sgdstab_error *err);
void sgdstab_stability_free(sgdstab_stability *s);

/* ------------------------------------------------------ memory plan */

/* The eigensolver basis: SGDSTAB_BASIS_DEFAULT vectors of r(r+1)/2
 * doubles (stored twice: the vectors and 𝒩 applied to them) per family;
 * fewer fit less memory and cost more applications (restarts keep only
 * the best Ritz vectors), down to SGDSTAB_BASIS_MIN. */
#define SGDSTAB_BASIS_DEFAULT 48
#define SGDSTAB_BASIS_MIN 8

/* Bytes a workspace for red takes once `families` eigenproblem families
 * (1: η* alone, `critical`; 2: ρ⊥ and η*) of `basis` vectors exist: the
 * bases, the diagonals and work vectors (about 13 of r(r+1)/2 doubles)
 * and the noise operator's (n·k)×r and r×r buffers. */
double sgdstab_stability_memory(const sgdstab_reduced *red, size_t basis,
                                int families);

typedef struct {
    size_t basis;       /* vectors per family basis (the ncv to set) */
    double need;        /* bytes the workspace takes with that basis */
    double need_default;/* ... with SGDSTAB_BASIS_DEFAULT */
    double available;   /* bytes it may take (see below) */
    char source[96];    /* where that figure comes from */
} sgdstab_engine_plan;

/* Fit the workspace of red to the memory left: the smaller of 90% of
 * MemAvailable and max_memory less what the process holds already (0:
 * SGDSTAB_MAX_MEMORY or no limit; < 0: no check), and of the address space
 * ulimit -v leaves.  The basis is the default if that fits, else the
 * largest that does; if not even SGDSTAB_BASIS_MIN vectors fit,
 * SGDSTAB_ENOMEM with one line: what it needs, what there is, the largest
 * r that fits, what to do. */
int sgdstab_engine_plan_fit(const sgdstab_reduced *red, int families,
                            double max_memory, sgdstab_engine_plan *plan,
                            sgdstab_error *err);

/* Bytes a run on prob, reduced to red, needs at its peak: the larger of
 * loading and factorizing (memplan.h) and of holding the problem and its
 * reduced form beside a workspace with families of the default basis
 * (families 2: ρ⊥ and η*, what `analyze` and `phase` solve). */
double sgdstab_run_memory(const sgdstab_problem *prob,
                          const sgdstab_reduced *red, int families);

/* sgdstab_stability_alloc after sgdstab_engine_plan_fit (plan may be
 * NULL): the workspace's bases then hold plan->basis vectors. */
sgdstab_stability *sgdstab_stability_alloc_fit(const sgdstab_reduced *red,
                                               int families,
                                               double max_memory,
                                               sgdstab_engine_plan *plan,
                                               sgdstab_error *err);

/* Solver settings for every solve of this workspace (NULL: defaults); ncv
 * is the largest basis size.  Set before the first solve.  The default
 * tolerance is 1e-11 for ρ⊥ (and at most 5e-11 absolute) and 3e-10 for η*
 * (relative error estimates). */
void sgdstab_stability_set_eig(sgdstab_stability *s,
                               const sgdstab_eig_options *opt);

typedef struct {
    double rho;          /* ρ⊥, the largest eigenvalue of 𝒯 on the range */
    double residual;     /* rigorous: ρ⊥ is within this of an eigenvalue */
    double error_estimate;  /* a-posteriori estimate of |ρ⊥ − λmax| */
    size_t matvecs;      /* applications of the noise operator this solve
                            made, those that seeded a new basis included */
    int converged;
} sgdstab_radius;

/* The escape rate ln ρ⊥ per step (−∞ for ρ⊥ ≤ 0, which rounding can give
 * when 𝒯 is nilpotent on the range) and (n/B)·ln ρ⊥ per epoch. */
void sgdstab_escape_rates(double rho, size_t n, size_t batch,
                          double *per_step, double *per_epoch);

/* η* = 1/(c·θ) with θ the converged Ritz value of K = 𝒜₁^{-1/2}𝒜₂𝒜₁^{-1/2}
 * and R its residual: the residual interval.  θ is a Rayleigh quotient, so
 * θ ≤ λmax(K) and η* ≤ lr_upper always; an eigenvalue of K lies within ‖R‖
 * of θ, so η* ≥ lr_lower = 1/(c·(θ + ‖R‖)) provided that eigenvalue is the
 * largest — checked (θ is at least every Rayleigh quotient of K at a unit
 * matrix, or the solve is repeated), not proven.  Both ends are widened by
 * the rounding of θ, 4·√dim·ε relative.  rel_accuracy is the much tighter
 * a-posteriori estimate: tests hold the true error within twice it. */
typedef struct {
    size_t batch;
    double lr_critical;      /* η*(B); 0 when kind != SGDSTAB_MINIMUM_OK */
    double rel_accuracy;     /* estimate of |Δη*| / η* (eig.h) */
    double rel_residual;     /* ‖R‖/θ */
    double lr_lower, lr_upper;  /* the interval above (both 0 when kind !=
                                   SGDSTAB_MINIMUM_OK; equal to lr_critical
                                   where it is a closed form) */
    double threshold_band;   /* relative half-width of "at the threshold":
                                2·(rel_accuracy + tol), tol the η*
                                tolerance, so that an η* from any other
                                solve (its error within 2·tol) lands in it */
    size_t matvecs;          /* as in sgdstab_radius */
    int converged;
    sgdstab_minimum_kind kind;
} sgdstab_critical;

/* η*(B) at cfg's batch size, sampling rule and loss scale (cfg->lr is not
 * used). */
int sgdstab_critical_lr(sgdstab_stability *s, const sgdstab_config *cfg,
                        sgdstab_critical *out, sgdstab_error *err);

/* η*(B) for m batch sizes (cfg->batch and cfg->lr are not used).  All
 * solves of one workspace share their eigensolver basis (eig.h), so
 * neighbouring batch sizes cost little. */
int sgdstab_critical_curve(sgdstab_stability *s, const sgdstab_config *cfg,
                           const size_t *batches, size_t m,
                           sgdstab_critical *out, sgdstab_error *err);

/* ρ⊥ at cfg (learning rate, batch size, sampling, loss scale) and, if S is
 * not NULL, a top eigenmatrix of 𝒯 in S (r×r, unit Frobenius norm, sign
 * arbitrary): the shape E δ_tδ_tᵀ takes as t grows when ρ⊥ is simple.  It
 * is converged to a residual ‖𝒯S − ρ⊥S‖_F ≤ 1e-10·ρ⊥ (out->residual), so
 * its error is about that over the gap to the next eigenvalue of 𝒯.
 *
 * At a minimum ρ⊥ > 1 exactly when η > η*(B), and a ρ⊥ on the wrong side
 * of 1 is solved again from scratch.  known is η*(B) of the same
 * configuration when the caller has it (its batch must be cfg->batch), or
 * NULL: then it is solved here, and its applications are counted in
 * out->matvecs. */
int sgdstab_spectral_radius(sgdstab_stability *s, const sgdstab_config *cfg,
                            const sgdstab_critical *known,
                            sgdstab_radius *out, double *S,
                            sgdstab_error *err);

/* The reduced problem the workspace was made for. */
const sgdstab_reduced *sgdstab_stability_reduced(const sgdstab_stability *s);

/* Mean (first-moment) stability limit 2/(c·λmax(H)) for the loss scale c
 * of cfg; 0 if H has a negative eigenvalue (no η > 0 is stable even in the
 * mean). */
double sgdstab_lr_mean_limit(const sgdstab_reduced *red,
                             const sgdstab_config *cfg);

/* The verdict at (η, B): stable (η < η*), unstable (η > η*, or no η is
 * stable), or at the threshold: |η/η* − 1| ≤ threshold_band, where the
 * accuracy reached cannot tell the side of 1 on which ρ⊥ falls. */
typedef enum {
    SGDSTAB_VERDICT_STABLE = 0,
    SGDSTAB_VERDICT_UNSTABLE,
    SGDSTAB_VERDICT_THRESHOLD
} sgdstab_verdict;

/* "stable", "unstable", "threshold". */
const char *sgdstab_verdict_name(sgdstab_verdict v);

/* The verdict of learning rate lr against a solved η*(B). */
sgdstab_verdict sgdstab_verdict_at(const sgdstab_critical *crit, double lr);

/* Everything `sgdstab analyze` reports. */
typedef struct {
    sgdstab_config config;        /* what was analyzed */
    double a, b;                  /* batch coefficients (moments.h) */
    sgdstab_radius radius;
    sgdstab_critical critical;
    int stable;                   /* lr ≤ η*(B) */
    sgdstab_verdict verdict;
    double escape_rate_per_step;  /* ln ρ⊥ */
    double escape_rate_per_epoch; /* (n/B)·ln ρ⊥ */
    double rms_efold_steps;       /* 2/|ln ρ⊥| (+∞ if ρ⊥ = 1) */
    double lr_critical_mean;      /* 2/λmax(H) */
    double sharpness;             /* λmax(H) */
    double hessian_frobenius;     /* ‖H‖_F */
    double hessian_trace;         /* tr H */
    size_t matvecs;               /* applications of the noise operator in
                                     all: η*(B), ρ⊥ and any re-solve */
    double null_decay_rate;       /* per step, of E‖δ‖² in directions J
                                     never moves: weight decay's
                                     (plan.h; 0 without, NaN if none) */
} sgdstab_analysis;

/* The verdict at cfg: η*(B) once, then ρ⊥ with it (and, if S is not NULL,
 * the top eigenmatrix as sgdstab_spectral_radius gives it). */
int sgdstab_analyze(sgdstab_stability *s, const sgdstab_config *cfg,
                    sgdstab_analysis *out, double *S, sgdstab_error *err);

#ifdef __cplusplus
}
#endif

#endif
