#include "sgdstab/config.h"

#include "sgdstab/plan.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const SAMPLING_NAMES[] = {"without", "with", "bernoulli",
                                             "reshuffle"};
enum { NSAMPLINGS = sizeof SAMPLING_NAMES / sizeof SAMPLING_NAMES[0] };

const char *sgdstab_sampling_name(sgdstab_sampling s)
{
    return (unsigned)s < NSAMPLINGS ? SAMPLING_NAMES[s] : "?";
}

int sgdstab_sampling_parse(const char *text, sgdstab_sampling *s)
{
    for (int i = 0; i < NSAMPLINGS; i++)
        if (!strcmp(text, SAMPLING_NAMES[i])) {
            *s = (sgdstab_sampling)i;
            return SGDSTAB_OK;
        }
    return SGDSTAB_EINVAL;
}

void sgdstab_config_init(sgdstab_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->sampling = SGDSTAB_SAMPLING_WITHOUT;
    cfg->loss_scale = 1;
    sgdstab_optimizer_init(&cfg->optimizer);
}

static int check_loss_scale(const sgdstab_config *cfg,
                            const sgdstab_reduced *red, sgdstab_error *err)
{
    double c = cfg->loss_scale;
    if (!(c > 0) || !isfinite(c))
        return sgdstab_fail(err, SGDSTAB_EINVAL, "loss scale must be a "
                            "positive number, not %g", c);
    /* The scaled curvature within the range reduce.c admits for H itself. */
    double hmax = c * sgdstab_reduced_hessian_max(red);
    if (hmax > 0 && !(hmax >= SGDSTAB_CURVATURE_MIN &&
                      hmax <= SGDSTAB_CURVATURE_MAX))
        return sgdstab_fail(err, SGDSTAB_EVALUE, "%s: loss scale %g puts the "
                            "curvature at %g, outside [%g, %g]", red->source,
                            c, hmax, SGDSTAB_CURVATURE_MIN,
                            SGDSTAB_CURVATURE_MAX);
    return SGDSTAB_OK;
}

static int check_lr(const sgdstab_config *cfg, const sgdstab_reduced *red,
                    sgdstab_error *err)
{
    if (!(cfg->lr > 0) || !isfinite(cfg->lr))
        return sgdstab_fail(err, SGDSTAB_EINVAL, "learning rate must be a "
                            "positive number, not %g", cfg->lr);
    /* ρ⊥ ≈ (η·λmax)², and the eigensolver squares it again: η·λmax at most
     * 1e50 keeps (η·λmax)⁴ a double with room to spare. */
    double reach = cfg->loss_scale * cfg->lr *
                   sgdstab_reduced_hessian_max(red);
    if (!(reach <= 1e50))
        return sgdstab_fail(err, SGDSTAB_EVALUE, "%s: learning rate %g (loss "
                            "scale %g) is out of range: eta * lambda_max(H) "
                            "= %g, at most 1e50", red->source, cfg->lr,
                            cfg->loss_scale, reach);
    return SGDSTAB_OK;
}

static int check_batch(const sgdstab_config *cfg, const sgdstab_reduced *red,
                       unsigned uses, sgdstab_error *err)
{
    size_t B = cfg->batch, n = red->n;
    const char *name = sgdstab_sampling_name(cfg->sampling);
    if (B < 1 || (cfg->sampling != SGDSTAB_SAMPLING_WITH && B > n))
        return sgdstab_fail(err, SGDSTAB_EINVAL, "batch size %zu exceeds the "
                            "n = %zu samples of %s (sampling '%s' needs "
                            "1 <= B <= n)", B, n, red->source, name);
    if ((uses & SGDSTAB_USES_EPOCH_MAP) &&
        cfg->sampling == SGDSTAB_SAMPLING_RESHUFFLE && n % B)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "reshuffled epochs need the "
                            "batch size to divide n = %zu (the last batch "
                            "of %zu would break the reversal symmetry the "
                            "epoch map relies on), not %zu", n, n % B, B);
    return SGDSTAB_OK;
}

int sgdstab_config_check(const sgdstab_config *cfg, const sgdstab_reduced *red,
                         unsigned uses, sgdstab_error *err)
{
    if ((unsigned)cfg->sampling >= NSAMPLINGS)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "unknown sampling rule %d",
                            (int)cfg->sampling);
    if ((uses & SGDSTAB_USES_STEP_MAP) &&
        cfg->sampling == SGDSTAB_SAMPLING_RESHUFFLE)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "sampling 'reshuffle' has no "
                            "per-step second-moment map: only the Monte "
                            "Carlo analyses (simulate, its epoch map) take "
                            "it");
    int st = check_loss_scale(cfg, red, err);
    if (!st)
        st = sgdstab_optimizer_check(&cfg->optimizer, red->p, err);
    if (!st)
        st = sgdstab_view_check(red, cfg, err);
    if (!st && (uses & SGDSTAB_USES_LR))
        st = check_lr(cfg, red, err);
    if (!st && (uses & SGDSTAB_USES_BATCH))
        st = check_batch(cfg, red, uses, err);
    return st;
}

int sgdstab_loss_scale(const char *name, size_t k, double *scale,
                       sgdstab_error *err)
{
    if (!strcmp(name, "half-mean")) {
        *scale = 1;
        return SGDSTAB_OK;
    }
    if (!strcmp(name, "mse")) {
        if (k == 0)
            return sgdstab_fail(err, SGDSTAB_EINVAL, "loss 'mse' needs at "
                                "least one output");
        *scale = 2.0 / (double)k;
        return SGDSTAB_OK;
    }
    char *end;
    double c = strtod(name, &end);
    if (end == name || *end || isspace((unsigned char)*name) || !(c > 0) ||
        !isfinite(c))
        return sgdstab_fail(err, SGDSTAB_EINVAL, "loss '%s' is not half-mean, "
                            "mse or a positive number", name);
    *scale = c;
    return SGDSTAB_OK;
}
