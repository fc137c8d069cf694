#include "sgdstab/plan.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sgdstab/memplan.h"

double sgdstab_curvature_shift(const sgdstab_config *cfg)
{
    const sgdstab_optimizer *o = &cfg->optimizer;
    return o->kind == SGDSTAB_OPTIMIZER_ADAMW ? 0
                                              : o->weight_decay /
                                                    cfg->loss_scale;
}

size_t sgdstab_undamped_directions(const sgdstab_reduced *red,
                                   const sgdstab_config *cfg)
{
    size_t count = 0;
    for (size_t j = 0; j < red->r &&
                       !sgdstab_optimizer_decoupled_decay(&cfg->optimizer);
         j++)
        count += red->lambda[j] == 0;
    return count;
}

static double log_sum(const sgdstab_optimizer *o)
{
    double s = 0;
    for (size_t j = 0; j < o->second_moment_len; j++)
        s += log(o->second_moment[j]);
    return s;
}

static int differ(double a, double b)
{
    return fabs(a - b) > 1e-12 * fmax(fabs(a), fabs(b));
}

int sgdstab_view_check(const sgdstab_reduced *red, const sgdstab_config *cfg,
                       sgdstab_error *err)
{
    const sgdstab_optimizer *o = &cfg->optimizer;
    int pre = sgdstab_optimizer_preconditioned(o);
    if (pre != red->preconditioned ||
        (pre && (differ(o->eps, red->precond_eps) ||
                 differ(log_sum(o), red->precond_logsum))) ||
        differ(sgdstab_curvature_shift(cfg), red->curvature_shift))
        return sgdstab_fail(err, SGDSTAB_EINVAL, "%s: the reduced problem was "
                            "made for another preconditioner or weight "
                            "decay than this optimizer's (make it with "
                            "sgdstab_reduce_for)", red->source);
    return SGDSTAB_OK;
}

/* J P^{-1/2} and P^{-1/2} H P^{-1/2} + shift·P⁻¹ (H = G = JᵀJ/n when the
 * problem has none and shift > 0), as a new problem. */
static int precondition(const sgdstab_problem *prob, const sgdstab_config *cfg,
                        sgdstab_problem **out, sgdstab_error *err)
{
    const sgdstab_optimizer *o = &cfg->optimizer;
    const size_t n = prob->n, k = prob->k, p = prob->p, rows = n * k;
    const double shift = sgdstab_curvature_shift(cfg);
    const int with_h = prob->H || shift > 0;
    /* The transformed copy and its factorization, beside the original. */
    int st = sgdstab_memory_check(prob->source, n, k, p, with_h, 0, err);
    if (st)
        return st;
    double *w = malloc(p * sizeof *w);  /* P^{-1/2} */
    sgdstab_array J = {3, {n, k, p}, rows * p, NULL, "<f8"};
    sgdstab_array H = {2, {p, p, 1}, p * p, NULL, "<f8"};
    J.data = malloc(rows * p * sizeof *J.data);
    H.data = with_h ? malloc(p * p * sizeof *H.data) : NULL;
    if (!w || !J.data || (with_h && !H.data)) {
        free(w);
        free(J.data);
        free(H.data);
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory for the "
                            "preconditioned problem", prob->source);
    }
    for (size_t j = 0; j < p; j++)
        w[j] = 1 / sqrt(sgdstab_optimizer_precond(o, j));
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < p; j++)
            J.data[i * p + j] = prob->J[i * p + j] * w[j];
    if (with_h) {
        if (prob->H)
            for (size_t a = 0; a < p; a++)
                for (size_t b = 0; b < p; b++)
                    H.data[a * p + b] = w[a] * prob->H[a * p + b] * w[b];
        else
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)p,
                        (int)p, (int)rows, 1.0 / (double)n, J.data, (int)p,
                        J.data, (int)p, 0.0, H.data, (int)p);
        for (size_t a = 0; a < p; a++)
            H.data[a * p + a] += shift * w[a] * w[a];
    }
    free(w);
    sgdstab_load_options lo = {0, -1, 0};  /* planned above */
    return sgdstab_problem_from_arrays(prob->source, &J, with_h ? &H : NULL,
                                       &lo, out, err);
}

static double *copy_of(const double *x, size_t len)
{
    double *y = malloc((len ? len : 1) * sizeof *y);
    if (y && len)
        memcpy(y, x, len * sizeof *y);
    return y;
}

/* red with the curvature shift added to H on the reduced space; G, which
 * the shift leaves alone, becomes an explicit matrix. */
static int shift_reduced(const sgdstab_reduced *red, double shift,
                         sgdstab_reduced **out, sgdstab_error *err)
{
    const size_t r = red->r;
    sgdstab_reduced *s = malloc(sizeof *s);
    if (!s)
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory");
    *s = *red;
    s->source = malloc(strlen(red->source) + 1);
    if (s->source)
        strcpy(s->source, red->source);
    s->sigma = copy_of(red->sigma, red->nsv);
    s->phi = copy_of(red->phi, red->n * red->k * r);
    s->lambda = copy_of(red->lambda, r);
    s->G = red->G ? copy_of(red->G, r * r) : calloc(r * r, sizeof *s->G);
    s->basis = red->basis ? copy_of(red->basis, red->p * r) : NULL;
    if (!s->source || !s->sigma || !s->phi || !s->lambda || !s->G ||
        (red->basis && !s->basis)) {
        sgdstab_reduced_free(s);
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory for the "
                            "weight-decayed problem", red->source);
    }
    if (!red->G)
        for (size_t j = 0; j < r; j++)
            s->G[j * r + j] = red->lambda[j];
    for (size_t j = 0; j < r; j++)
        s->lambda[j] += shift;
    s->hessian_min += shift;
    s->curvature_shift = shift;
    *out = s;
    return SGDSTAB_OK;
}

int sgdstab_reduce_for(const sgdstab_problem *prob,
                       const sgdstab_reduce_options *ropt,
                       const sgdstab_config *cfg, sgdstab_reduced **out,
                       sgdstab_error *err)
{
    *out = NULL;
    const sgdstab_optimizer *o = &cfg->optimizer;
    int st = sgdstab_optimizer_check(o, prob->p, err);
    if (st)
        return st;
    const double shift = sgdstab_curvature_shift(cfg);
    if (o->precond_in_gram) {
        /* The exporter's J P⁻¹ Jᵀ is the Gram matrix of J P^{-1/2}. */
        if (!prob->K || !prob->KP)
            return sgdstab_fail(err, SGDSTAB_EINVAL, "%s: has no "
                                "preconditioned Gram matrix KP",
                                prob->source);
        if (shift > 0)
            return sgdstab_fail(err, SGDSTAB_EINVAL, "%s: coupled weight "
                                "decay with a preconditioner adds lambda/c "
                                "P^-1 on every parameter, which needs J, not "
                                "its Gram matrix", prob->source);
        sgdstab_problem view = *prob;
        view.K = prob->KP;
        view.KP = NULL;
        if ((st = sgdstab_reduce(&view, ropt, out, err)))
            return st;
        (*out)->preconditioned = 1;
        (*out)->precond_eps = o->eps;
        return SGDSTAB_OK;
    }
    if (o->second_moment && !prob->J)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "%s: a second moment v acts "
                            "on each parameter, which needs J; beside a Gram "
                            "matrix the preconditioner comes as KP",
                            prob->source);
    if (o->second_moment) {
        sgdstab_problem *pre = NULL;
        if ((st = precondition(prob, cfg, &pre, err)))
            return st;
        st = sgdstab_reduce(pre, ropt, out, err);
        sgdstab_problem_free(pre);
        if (st)
            return st;
        (*out)->preconditioned = 1;
        (*out)->precond_eps = o->eps;
        (*out)->precond_logsum = log_sum(o);
        (*out)->curvature_shift = shift;
        return SGDSTAB_OK;
    }
    sgdstab_reduced *red = NULL;
    if ((st = sgdstab_reduce(prob, ropt, &red, err)) || shift == 0) {
        *out = red;
        return st;
    }
    st = shift_reduced(red, shift, out, err);
    sgdstab_reduced_free(red);
    return st;
}

void sgdstab_mean_path(const sgdstab_config *cfg, const double *h,
                       const double *w, size_t m, size_t steps, double *out)
{
    sgdstab_optimizer first = cfg->optimizer;
    if (first.kind == SGDSTAB_OPTIMIZER_SGD)
        first.dampening = 0;  /* PyTorch's first buffer is the gradient */
    sgdstab_step_map map0, map;
    sgdstab_step_map_init(&first, cfg->lr, cfg->loss_scale, &map0);
    sgdstab_step_map_init(&cfg->optimizer, cfg->lr, cfg->loss_scale, &map);
    memset(out, 0, (steps + 1) * sizeof *out);
    for (size_t i = 0; i < m; i++) {
        double z[2] = {1, 0};
        for (size_t t = 0;; t++) {
            out[t] += w[i] * z[0];
            if (t == steps)
                break;
            double M[4];
            sgdstab_step_map_matrix(t ? &map : &map0, h[i], M);
            double x = M[0] * z[0] + M[1] * z[1];
            z[1] = M[2] * z[0] + M[3] * z[1];
            z[0] = x;
        }
    }
}

double sgdstab_null_decay_rate(const sgdstab_reduced *red,
                               const sgdstab_config *cfg)
{
    if (red->p && red->r >= red->p)
        return NAN;
    sgdstab_step_map map;
    sgdstab_step_map_init(&cfg->optimizer, cfg->lr, cfg->loss_scale, &map);
    return 2 * log(sgdstab_step_map_radius(&map, red->curvature_shift));
}

int sgdstab_plan_theory(const sgdstab_problem *prob,
                        const sgdstab_reduced *red, const sgdstab_config *cfg,
                        sgdstab_theory *th, sgdstab_error *err)
{
    sgdstab_config plain = *cfg;  /* the same preconditioner, no decay */
    plain.optimizer.momentum = plain.optimizer.dampening = 0;
    plain.optimizer.nesterov = 0;
    plain.optimizer.weight_decay = 0;
    if (red->curvature_shift == 0)
        return sgdstab_theory_compute(red, &plain, th, err);
    sgdstab_reduced *unshifted = NULL;
    int st = sgdstab_reduce_for(prob, NULL, &plain, &unshifted, err);
    if (!st)
        st = sgdstab_theory_compute(unshifted, &plain, th, err);
    sgdstab_reduced_free(unshifted);
    return st;
}
