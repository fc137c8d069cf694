#include "sgdstab/problem.h"
#include "sgdstab/memplan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ validation */

static const char *nonfinite_word(double v)
{
    return isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
}

/* First non-finite entry of a, reported with its full index. */
static int check_finite(const char *label, const char *name,
                        const sgdstab_array *a, sgdstab_error *err)
{
    for (size_t f = 0; f < a->size; f++) {
        if (isfinite(a->data[f]))
            continue;
        size_t idx[SGDSTAB_NPY_MAX_DIMS], rest = f;
        for (int d = a->ndim - 1; d >= 0; d--) {
            idx[d] = rest % a->shape[d];
            rest /= a->shape[d];
        }
        char where[80];
        int len = 0;
        for (int d = 0; d < a->ndim; d++)
            len += snprintf(where + len, sizeof where - (size_t)len,
                            d ? ", %zu" : "%zu", idx[d]);
        return sgdstab_fail(err, SGDSTAB_EVALUE,
                            "%s: non-finite value (%s) at %s[%s]", label,
                            nonfinite_word(a->data[f]), name, where);
    }
    return SGDSTAB_OK;
}

static double symmetry_rtol(const sgdstab_load_options *opt, const char *descr)
{
    if (opt && opt->symmetry_rtol > 0)
        return opt->symmetry_rtol;
    double floor = 100 * sgdstab_npy_epsilon(descr);
    return floor > SGDSTAB_SYMMETRY_RTOL ? floor : SGDSTAB_SYMMETRY_RTOL;
}

/* Check max|H − Hᵀ| ≤ rtol · max|H| and replace H by (H + Hᵀ)/2. */
static int check_symmetric(const char *label, const char *name, double *H,
                           size_t p, double rtol, sgdstab_error *err)
{
    double hmax = 0, dmax = 0;
    size_t wi = 0, wj = 0;
    for (size_t i = 0; i < p; i++)
        for (size_t j = 0; j < p; j++) {
            double a = fabs(H[i * p + j]);
            if (a > hmax)
                hmax = a;
            double d = fabs(H[i * p + j] - H[j * p + i]);
            if (d > dmax) {
                dmax = d;
                wi = i;
                wj = j;
            }
        }
    if (dmax > rtol * hmax)
        return sgdstab_fail(err, SGDSTAB_EVALUE,
                            "%s: %s is not symmetric: |%s[%zu, %zu] - %s[%zu, "
                            "%zu]| = %.3g exceeds %.3g x max|%s| (= %.3g)",
                            label, name, name, wi, wj, name, wj, wi, dmax,
                            rtol, name, hmax);
    for (size_t i = 0; i < p; i++)
        for (size_t j = i + 1; j < p; j++) {
            double s = 0.5 * (H[i * p + j] + H[j * p + i]);
            H[i * p + j] = H[j * p + i] = s;
        }
    return SGDSTAB_OK;
}

/* a must be a finite, symmetric p×p matrix (named `name` in messages). */
static int check_square_symmetric(const char *label, const char *name,
                                  sgdstab_array *a, size_t p,
                                  const sgdstab_load_options *opt,
                                  sgdstab_error *err)
{
    if (a->ndim != 2 || a->shape[0] != p || a->shape[1] != p) {
        char shape[64];
        if (a->ndim == 2)
            snprintf(shape, sizeof shape, "(%zu, %zu)", a->shape[0],
                     a->shape[1]);
        else
            snprintf(shape, sizeof shape, "of %d dimensions", a->ndim);
        return sgdstab_fail(err, SGDSTAB_ESHAPE,
                            "%s: %s has shape %s but J has p = %zu columns "
                            "(need (%zu, %zu))", label, name, shape, p, p, p);
    }
    int st = check_finite(label, name, a, err);
    return st ? st : check_symmetric(label, name, a->data, p,
                                     symmetry_rtol(opt, a->descr), err);
}

int sgdstab_problem_from_arrays(const char *label, sgdstab_array *J,
                                sgdstab_array *H,
                                const sgdstab_load_options *opt,
                                sgdstab_problem **out, sgdstab_error *err)
{
    *out = NULL;
    int st = SGDSTAB_OK;
    sgdstab_problem *prob = NULL;

    if (J->ndim != 2 && J->ndim != 3) {
        st = sgdstab_fail(err, SGDSTAB_ESHAPE,
                          "%s: J must have 2 dimensions (n, p) or 3 (n, k, p), "
                          "not %d", label, J->ndim);
        goto fail;
    }
    size_t n = J->shape[0], k = J->ndim == 3 ? J->shape[1] : 1,
           p = J->shape[J->ndim - 1];
    if (n == 0 || k == 0 || p == 0) {
        st = sgdstab_fail(err, SGDSTAB_ESHAPE,
                          "%s: J is empty (n = %zu, k = %zu, p = %zu)", label, n,
                          k, p);
        goto fail;
    }
    if (opt && opt->params && opt->params != p) {
        st = sgdstab_fail(err, SGDSTAB_EINVAL, "%s: J has p = %zu parameters, "
                          "not the %zu given", label, p, opt->params);
        goto fail;
    }
    if ((st = check_finite(label, "J", J, err)))
        goto fail;
    if (H && (st = check_square_symmetric(label, "H", H, p, opt, err)))
        goto fail;

    prob = calloc(1, sizeof *prob);
    if (!prob || !(prob->source = strdup(label))) {
        st = sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory", label);
        goto fail;
    }
    prob->n = n;
    prob->k = k;
    prob->p = p;
    sgdstab_provenance_init(&prob->provenance);
    /* C-order (n, k, p) and (n, p) are already the (n·k)×p row layout. */
    prob->J = J->data;
    snprintf(prob->J_descr, sizeof prob->J_descr, "%s", J->descr);
    J->data = NULL;
    if (H) {
        prob->H = H->data;
        snprintf(prob->H_descr, sizeof prob->H_descr, "%s", H->descr);
        H->data = NULL;
    }
    *out = prob;
fail:
    if (st)
        free(prob);
    sgdstab_array_free(J);
    sgdstab_array_free(H);
    return st;
}

/* n and k of a Gram matrix: from its shape (n, k, n, k), or for
 * (n·k, n·k) from the n and k given (0: not given; either fixes the
 * other), else k = 1. */
static int gram_shape(const char *label, const sgdstab_array *K,
                      size_t n_hint, size_t k_hint, size_t *n, size_t *k,
                      sgdstab_error *err)
{
    const size_t *d = K->shape;
    if (K->ndim == 4) {
        if (d[0] != d[2] || d[1] != d[3])
            return sgdstab_fail(err, SGDSTAB_ESHAPE, "%s: K of shape (%zu, "
                                "%zu, %zu, %zu) is not of the form (n, k, n, "
                                "k)", label, d[0], d[1], d[2], d[3]);
        *n = d[0];
        *k = d[1];
    } else if (K->ndim == 2) {
        if (d[0] != d[1])
            return sgdstab_fail(err, SGDSTAB_ESHAPE, "%s: K must be square, "
                                "not (%zu, %zu)", label, d[0], d[1]);
        *k = k_hint ? k_hint : n_hint && d[0] % n_hint == 0 ? d[0] / n_hint
                                                             : 1;
        *n = d[0] / *k;
        if (d[0] % *k || (n_hint && n_hint != *n))
            return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: K has %zu rows, "
                                "which is not n·k for the %s = %zu of "
                                "meta.json", label, d[0],
                                k_hint ? "k" : "n", k_hint ? k_hint : n_hint);
    } else {
        return sgdstab_fail(err, SGDSTAB_ESHAPE, "%s: K must have 2 "
                            "dimensions (n·k, n·k) or 4 (n, k, n, k), not %d",
                            label, K->ndim);
    }
    if (*n == 0 || *k == 0)
        return sgdstab_fail(err, SGDSTAB_ESHAPE, "%s: K is empty", label);
    if ((n_hint && n_hint != *n) || (k_hint && k_hint != *k))
        return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: meta.json says n = "
                            "%zu, k = %zu but K is for n = %zu, k = %zu",
                            label, n_hint, k_hint, *n, *k);
    return SGDSTAB_OK;
}

/* a, named name, must be a finite symmetric matrix of K's shape. */
static int check_gram(const char *label, const char *name, sgdstab_array *a,
                      size_t rows, const sgdstab_array *K,
                      const sgdstab_load_options *opt, sgdstab_error *err)
{
    int same = a->ndim == K->ndim;
    for (int d = 0; same && d < a->ndim; d++)
        same = a->shape[d] == K->shape[d];
    if (!same)
        return sgdstab_fail(err, SGDSTAB_ESHAPE, "%s: %s must have K's shape "
                            "(%zu rows)", label, name, rows);
    int st = check_finite(label, name, a, err);
    return st ? st : check_symmetric(label, name, a->data, rows,
                                     symmetry_rtol(opt, a->descr), err);
}

int sgdstab_problem_from_gram(const char *label, sgdstab_array *K,
                              sgdstab_array *KP, size_t n_hint,
                              size_t k_hint, size_t p,
                              const sgdstab_load_options *opt,
                              sgdstab_problem **out, sgdstab_error *err)
{
    *out = NULL;
    size_t n = 0, k = 0;
    sgdstab_problem *prob = NULL;
    int st = gram_shape(label, K, n_hint, k_hint, &n, &k, err);
    if (!st)
        st = check_gram(label, "K", K, n * k, K, opt, err);
    if (!st && KP)
        st = check_gram(label, "KP", KP, n * k, K, opt, err);
    if (!st && opt && opt->params && p && opt->params != p)
        st = sgdstab_fail(err, SGDSTAB_EINVAL, "%s: has p = %zu parameters, "
                          "not the %zu given", label, p, opt->params);
    if (!st && (!(prob = calloc(1, sizeof *prob)) ||
                !(prob->source = strdup(label))))
        st = sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory", label);
    if (!st) {
        prob->n = n;
        prob->k = k;
        prob->p = p ? p : opt ? opt->params : 0;
        sgdstab_provenance_init(&prob->provenance);
        prob->K = K->data;
        K->data = NULL;
        snprintf(prob->K_descr, sizeof prob->K_descr, "%s", K->descr);
        if (KP) {
            prob->KP = KP->data;
            KP->data = NULL;
        }
        *out = prob;
    } else {
        free(prob);
    }
    sgdstab_array_free(K);
    sgdstab_array_free(KP);
    return st;
}

/* ---------------------------------------------------------------- loading */

enum file_kind { KIND_NPY, KIND_NPZ };

static int sniff(const char *path, enum file_kind *kind, sgdstab_error *err)
{
    FILE *f;
    int st = sgdstab_open_input(path, &f, NULL, err);
    if (st)
        return st;
    unsigned char magic[6];
    size_t got = fread(magic, 1, sizeof magic, f);
    int read_failed = ferror(f);
    fclose(f);
    if (read_failed)
        return sgdstab_fail(err, SGDSTAB_EIO, "%s: read error", path);
    if (got == 0)
        return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: empty file", path);
    if (got == 6 && !memcmp(magic, "\x93NUMPY", 6))
        *kind = KIND_NPY;
    else if (got >= 4 && !memcmp(magic, "PK", 2) &&
             ((magic[2] == 3 && magic[3] == 4) || (magic[2] == 5 && magic[3] == 6)))
        *kind = KIND_NPZ;
    else
        return sgdstab_fail(err, SGDSTAB_EFORMAT,
                            "%s: not a .npy or .npz file (unrecognized magic "
                            "bytes)", path);
    return SGDSTAB_OK;
}

/* The provenance in the archive's meta.json, if it has one. */
static int read_meta(sgdstab_npz *z, const char *path, sgdstab_provenance *pv,
                     sgdstab_error *err)
{
    if (!sgdstab_npz_has_member(z, "meta.json"))
        return SGDSTAB_OK;
    char *text;
    size_t len;
    int st = sgdstab_npz_read_bytes(z, "meta.json", SGDSTAB_META_MAX, &text,
                                    &len, err);
    if (!st)
        st = sgdstab_provenance_parse(text, len, path, pv, err);
    free(text);
    return st;
}

/* The shape meta.json gives, if any, must be J's. */
static int check_meta_shape(const char *path, const sgdstab_provenance *pv,
                            const sgdstab_problem *prob, sgdstab_error *err)
{
    const struct {
        const char *key;
        size_t meta, J;
        const char *one, *many;
    } dim[] = {{"n", pv->n, prob->n, "sample", "samples"},
               {"k", pv->k, prob->k, "output per sample",
                "outputs per sample"},
               {"p", pv->p, prob->p, "parameter", "parameters"}};
    for (size_t i = 0; i < sizeof dim / sizeof dim[0]; i++)
        if (dim[i].meta && dim[i].meta != dim[i].J)
            return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: meta.json says %s "
                                "= %zu but J has %zu %s", path, dim[i].key,
                                dim[i].meta, dim[i].J,
                                dim[i].J == 1 ? dim[i].one : dim[i].many);
    return SGDSTAB_OK;
}

/* What the memory check on J's header needs to know. */
typedef struct {
    const char *label;
    int have_H;
    int have_KP;
    double max_memory;
} memory_plan;

static int check_memory(void *ctx, const sgdstab_array *J, sgdstab_error *err)
{
    const memory_plan *plan = ctx;
    if (plan->max_memory < 0 || (J->ndim != 2 && J->ndim != 3))
        return SGDSTAB_OK;  /* no check asked for; or a shape refused later */
    size_t k = J->ndim == 3 ? J->shape[1] : 1;
    return sgdstab_memory_check(plan->label, J->shape[0], k,
                                J->shape[J->ndim - 1], plan->have_H,
                                plan->max_memory, err);
}

static int check_gram_memory(void *ctx, const sgdstab_array *K,
                             sgdstab_error *err)
{
    const memory_plan *plan = ctx;
    if (plan->max_memory < 0 || (K->ndim != 2 && K->ndim != 4))
        return SGDSTAB_OK;
    size_t rows = K->ndim == 4 ? K->shape[0] * K->shape[1] : K->shape[0];
    return sgdstab_memory_check_gram(plan->label, rows, plan->have_KP,
                                     plan->max_memory, err);
}

/* The optional members of an archive beside J (or K) and H: the
 * optimizer's second moment V, the residuals R and the preconditioned Gram
 * KP. */
enum { MEMBER_V, MEMBER_R, MEMBER_KP, MEMBERS };
static const char *const MEMBER_NAME[MEMBERS] = {"V", "R", "KP"};

static void free_members(sgdstab_array *extra)
{
    for (int i = 0; i < MEMBERS; i++)
        sgdstab_array_free(&extra[i]);
}

/* J (with its memory check) or in its place K (*gram set), H and the
 * optional members if the archive holds them, and meta.json. */
static int read_npz(const char *path, const char *hessian_path,
                    memory_plan *plan, sgdstab_array *J, sgdstab_array *H,
                    int *have_H, int *gram, sgdstab_array *extra,
                    sgdstab_provenance *pv, sgdstab_error *err)
{
    sgdstab_npz *z = sgdstab_npz_open(path, err);
    if (!z)
        return err ? err->status : SGDSTAB_EFORMAT;
    int st = read_meta(z, path, pv, err);
    *have_H = sgdstab_npz_has(z, "H");
    *gram = sgdstab_npz_has(z, "K");
    plan->have_H = *have_H || hessian_path;
    plan->have_KP = sgdstab_npz_has(z, "KP");
    if (!st && *have_H && hessian_path)
        st = sgdstab_fail(err, SGDSTAB_EINVAL, "%s: holds an H already; a "
                          "separate Hessian file %s is ambiguous", path,
                          hessian_path);
    if (!st && *gram && sgdstab_npz_has(z, "J"))
        st = sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: holds both J and its "
                          "Gram matrix K; keep one of them", path);
    if (!st && !*gram && !sgdstab_npz_has(z, "J"))
        st = sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: no array 'J' (nor its "
                          "Gram matrix 'K') in archive", path);
    if (!st)
        st = *gram ? sgdstab_npz_read_checked(z, "K", check_gram_memory, plan,
                                              J, err)
                   : sgdstab_npz_read_checked(z, "J", check_memory, plan, J,
                                              err);
    if (!st && *have_H && (st = sgdstab_npz_read(z, "H", H, err)))
        sgdstab_array_free(J);
    for (int i = 0; i < MEMBERS && !st; i++)
        if (sgdstab_npz_has(z, MEMBER_NAME[i]))
            st = sgdstab_npz_read(z, MEMBER_NAME[i], &extra[i], err);
    if (st) {
        sgdstab_array_free(J);
        sgdstab_array_free(H);
        free_members(extra);
    }
    sgdstab_npz_close(z);
    return st;
}

/* An optional member into its place in prob: V, one finite value per
 * column of J; R, the residual r_i of each sample, shape (n, k) ((n,) when
 * k = 1), finite. */
static int take_member(const char *path, int which, sgdstab_array *a,
                       sgdstab_problem *prob, sgdstab_error *err)
{
    if (!a->data)
        return SGDSTAB_OK;
    int st = SGDSTAB_OK;
    if (which == MEMBER_V && a->size != prob->p)
        st = sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: the second moment V has "
                          "%zu values, J has p = %zu columns", path, a->size,
                          prob->p);
    if (which == MEMBER_R &&
        !(a->ndim == 2 && a->shape[0] == prob->n && a->shape[1] == prob->k) &&
        !(a->ndim == 1 && prob->k == 1 && a->size == prob->n))
        st = sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: the residuals R must "
                          "have shape (%zu, %zu) (n, k), not %zu values in %d "
                          "dimension%s", path, prob->n, prob->k, a->size,
                          a->ndim, a->ndim == 1 ? "" : "s");
    for (size_t j = 0; j < a->size && !st; j++)
        if (!isfinite(a->data[j]))
            st = sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: %s has a non-finite "
                              "value at %zu", path,
                              which == MEMBER_V ? "the second moment V"
                                                : "the residuals R", j);
    if (st)
        return st;
    double **dest = which == MEMBER_V ? &prob->V : &prob->R;
    *dest = a->data;
    a->data = NULL;
    return SGDSTAB_OK;
}

/* The optional members into prob (st: the status so far; on an error
 * *out is freed), meta.json's provenance into it on success. */
static int take_members(const char *path, sgdstab_array *extra,
                        const sgdstab_provenance *pv, int st,
                        sgdstab_problem **out, sgdstab_error *err)
{
    for (int i = 0; i < MEMBERS && !st; i++)
        if (i != MEMBER_KP)
            st = take_member(path, i, &extra[i], *out, err);
    if (st) {
        sgdstab_problem_free(*out);
        *out = NULL;
    }
    free_members(extra);
    if (!st)
        (*out)->provenance = *pv;
    return st;
}

/* A problem from an archive's K (the array J holds it), with KP and the
 * other members; n, k and p from meta.json or the options. */
static int load_gram(const char *path, const char *hessian_path,
                     sgdstab_array *K, sgdstab_array *H, sgdstab_array *extra,
                     const sgdstab_provenance *pv,
                     const sgdstab_load_options *opt, sgdstab_problem **out,
                     sgdstab_error *err)
{
    int st = SGDSTAB_OK;
    if (H || hessian_path)
        st = sgdstab_fail(err, SGDSTAB_EINVAL, "%s: a Hessian needs J: H acts "
                          "on the p parameters, which the Gram matrix K does "
                          "not resolve", path);
    else if (extra[MEMBER_V].data)
        st = sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: the second moment V "
                          "needs J; beside K the preconditioner comes as the "
                          "preconditioned Gram KP", path);
    sgdstab_array_free(H);
    if (st) {
        sgdstab_array_free(K);
        free_members(extra);
        return st;
    }
    st = sgdstab_problem_from_gram(path, K,
                                   extra[MEMBER_KP].data ? &extra[MEMBER_KP]
                                                         : NULL,
                                   pv->n, pv->k, pv->p, opt, out, err);
    return take_members(path, extra, pv, st, out, err);
}

int sgdstab_problem_load_with_hessian(const char *path,
                                      const char *hessian_path,
                                      const sgdstab_load_options *opt,
                                      sgdstab_problem **out,
                                      sgdstab_error *err)
{
    *out = NULL;
    enum file_kind kind;
    int st = sniff(path, &kind, err);
    if (st)
        return st;
    sgdstab_array J, H, extra[MEMBERS];
    memset(&H, 0, sizeof H);
    memset(extra, 0, sizeof extra);
    int have_H = 0, gram = 0;
    sgdstab_provenance pv;
    sgdstab_provenance_init(&pv);
    memory_plan plan = {path, hessian_path != NULL, 0,
                        opt ? opt->max_memory : 0};
    memset(&J, 0, sizeof J);
    st = kind == KIND_NPY
             ? sgdstab_npy_read_checked(path, check_memory, &plan, &J, err)
             : read_npz(path, hessian_path, &plan, &J, &H, &have_H, &gram,
                        extra, &pv, err);
    if (st)
        return st;
    if (gram)
        return load_gram(path, hessian_path, &J, have_H ? &H : NULL, extra,
                         &pv, opt, out, err);
    if (hessian_path) {
        if ((st = sniff(hessian_path, &kind, err)) ||
            (kind != KIND_NPY &&
             (st = sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: the Hessian must be "
                                "a .npy file", hessian_path))) ||
            (st = sgdstab_npy_read(hessian_path, &H, err))) {
            sgdstab_array_free(&J);
            free_members(extra);
            return st;
        }
        have_H = 1;
    }
    char *label = NULL;
    if (hessian_path) {
        /* Messages about H then name both files. */
        size_t len = strlen(path) + strlen(hessian_path) + sizeof " (H from )";
        if (!(label = malloc(len))) {
            sgdstab_array_free(&J);
            sgdstab_array_free(&H);
            free_members(extra);
            return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory", path);
        }
        snprintf(label, len, "%s (H from %s)", path, hessian_path);
    }
    st = sgdstab_problem_from_arrays(label ? label : path, &J,
                                     have_H ? &H : NULL, opt, out, err);
    free(label);
    if (!st)
        st = check_meta_shape(path, &pv, *out, err);
    if (!st && extra[MEMBER_KP].data)
        st = sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: the preconditioned Gram "
                          "KP belongs beside a Gram matrix K, not J", path);
    return take_members(path, extra, &pv, st, out, err);
}

int sgdstab_problem_load(const char *path, const sgdstab_load_options *opt,
                         sgdstab_problem **out, sgdstab_error *err)
{
    return sgdstab_problem_load_with_hessian(path, NULL, opt, out, err);
}

int sgdstab_load_symmetric(const char *path, const char *name, size_t p,
                           const sgdstab_load_options *opt, double **out,
                           sgdstab_error *err)
{
    *out = NULL;
    sgdstab_array a;
    int st = sgdstab_npy_read(path, &a, err);
    if (st)
        return st;
    if ((st = check_square_symmetric(path, name, &a, p, opt, err))) {
        sgdstab_array_free(&a);
        return st;
    }
    *out = a.data;
    return SGDSTAB_OK;
}

void sgdstab_problem_free(sgdstab_problem *prob)
{
    if (!prob)
        return;
    free(prob->J);
    free(prob->K);
    free(prob->KP);
    free(prob->H);
    free(prob->V);
    free(prob->R);
    free(prob->source);
    free(prob);
}

const char *sgdstab_problem_loss(const sgdstab_problem *prob)
{
    return prob->provenance.loss[0] ? prob->provenance.loss : "half-mean";
}
