/* sgdstab — the configuration: the training run being analyzed.
 *
 * One struct describes the optimizer run at a minimum — learning rate,
 * batch size, how batches are drawn, the loss convention — and every entry
 * point of the library takes it (stability.h, phase.h, theory.h,
 * moments.h, simulate.h, epoch.h).  sgdstab_config_init sets the defaults;
 * sgdstab_config_check validates a configuration against a problem for
 * what an entry point uses of it, so that callers check once, in one
 * place, and get one readable message.  Entry points call it themselves:
 * a caller that checks first only learns of an error earlier. */
#ifndef SGDSTAB_CONFIG_H
#define SGDSTAB_CONFIG_H

#include <stddef.h>
#include "sgdstab/optimizer.h"
#include "sgdstab/reduce.h"
#include "sgdstab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the batch of each step is drawn from the n samples.  Each batch is
 * averaged over its size (B, or the size of the last batch of a reshuffled
 * epoch). */
typedef enum {
    SGDSTAB_SAMPLING_WITHOUT = 0,  /* B distinct samples, uniform, fresh
                                      each step */
    SGDSTAB_SAMPLING_WITH,         /* B i.i.d. uniform draws */
    SGDSTAB_SAMPLING_BERNOULLI,    /* each sample kept w.p. B/n, sum / B */
    SGDSTAB_SAMPLING_RESHUFFLE     /* epochs of a random permutation cut into
                                      batches of B (the last n mod B when B
                                      does not divide n): no per-step
                                      second-moment map exists, so only the
                                      Monte Carlo analyses take it */
} sgdstab_sampling;

/* "without", "with", "bernoulli", "reshuffle" ("?" if out of range). */
const char *sgdstab_sampling_name(sgdstab_sampling s);

/* The sampling named text; SGDSTAB_EINVAL if there is none. */
int sgdstab_sampling_parse(const char *text, sgdstab_sampling *s);

typedef struct {
    double lr;                  /* η > 0 in the loss convention of
                                   loss_scale; default 0: not set */
    size_t batch;               /* B ≥ 1; default 0: not set */
    sgdstab_sampling sampling;  /* default SGDSTAB_SAMPLING_WITHOUT */
    double loss_scale;          /* c > 0: the training loss is c times the
                                   canonical L = (1/2n) Σ‖r_i‖² (A_i → c·A_i,
                                   H → c·H, the operators see c·η);
                                   default 1 (sgdstab_loss_scale) */
    sgdstab_optimizer optimizer;  /* default plain SGD (optimizer.h); the
                                     reduced problem must be the one
                                     sgdstab_reduce_for made for it */
} sgdstab_config;

/* The defaults above. */
void sgdstab_config_init(sgdstab_config *cfg);

/* What an entry point uses of a configuration (a bitwise or). */
enum {
    SGDSTAB_USES_LR = 1u << 0,       /* lr: finite, > 0, and η·c·λmax(H) at
                                        most 1e50 (the solvers square it
                                        twice) */
    SGDSTAB_USES_BATCH = 1u << 1,    /* batch: 1 ≤ B, and B ≤ n unless
                                        batches are drawn with replacement */
    SGDSTAB_USES_STEP_MAP = 1u << 2, /* the exact per-step map 𝒯: every
                                        sampling but reshuffle */
    SGDSTAB_USES_EPOCH_MAP = 1u << 3 /* the one-epoch map (epoch.h): with
                                        reshuffle, B must divide n */
};

/* Check cfg against the reduced problem red for the uses above: the loss
 * scale always (finite, > 0, and c·λmax(H) within the curvature range of
 * reduce.h), the optimizer always (sgdstab_optimizer_check) and that red
 * is the problem as it sees it (its preconditioner and coupled weight
 * decay, plan.h).  SGDSTAB_OK, or an error with one readable line that names the
 * value and the rule it breaks: SGDSTAB_EVALUE when the value is valid in
 * itself but out of range for this problem's curvature (the message names
 * red->source), SGDSTAB_EINVAL otherwise. */
int sgdstab_config_check(const sgdstab_config *cfg, const sgdstab_reduced *red,
                         unsigned uses, sgdstab_error *err);

/* The loss scale c of a named convention for k outputs per sample:
 * "half-mean" (L = (1/2n) Σ‖r_i‖², c = 1), "mse" (PyTorch's MSELoss, the
 * mean over n·k entries without the ½: c = 2/k) or a number > 0 given as
 * text.  SGDSTAB_EINVAL naming the text otherwise. */
int sgdstab_loss_scale(const char *name, size_t k, double *scale,
                       sgdstab_error *err);

#ifdef __cplusplus
}
#endif

#endif
