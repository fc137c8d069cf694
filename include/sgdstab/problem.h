/* sgdstab — the validated problem: per-sample output Jacobians J and an
 * optional Hessian H at a minimum (README, The mathematics), or instead of
 * J its Gram matrix K = J Jᵀ (the empirical NTK).
 *
 * J is held as an (n·k)×p row-major matrix whose rows are grouped per sample:
 * rows i·k .. i·k+k−1 form J_i ∈ R^{k×p}.  A problem object is only ever
 * created by validation, so every later module may assume: n, k, p ≥ 1; all
 * values finite; H, when present, is p×p and exactly symmetric (it is
 * symmetrized after passing the tolerance check).
 *
 * A .npz may also hold "meta.json", the provenance of the minimum
 * (provenance.h): it is read and checked on loading. */
#ifndef SGDSTAB_PROBLEM_H
#define SGDSTAB_PROBLEM_H

#include <stddef.h>
#include "sgdstab/npy.h"
#include "sgdstab/provenance.h"
#include "sgdstab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default relative tolerance of the symmetry check on H:
 * max|H − Hᵀ| ≤ tol · max|H|.  For H stored in float32 or float16 the
 * tolerance is raised to 100 times that format's epsilon if larger. */
#define SGDSTAB_SYMMETRY_RTOL 1e-10

/* The largest meta.json read (1 MiB); a larger one is an error. */
#define SGDSTAB_META_MAX ((size_t)1 << 20)

typedef struct {
    size_t n, k, p;     /* p is 0 for a Gram matrix whose parameter count
                           neither meta.json nor the caller gave */
    double *J;          /* (n·k)×p, row-major, rows grouped per sample, or
                           NULL when the problem came as K */
    double *K;          /* (n·k)×(n·k) Gram matrix J Jᵀ, exactly symmetric,
                           rows and columns ordered as J's rows, or NULL
                           when the problem came as J */
    double *KP;         /* the preconditioned Gram J P⁻¹ Jᵀ of an exporter
                           (P = diag(√v̂ + ε), ε meta.json's "optimizer"
                           "eps"), beside K, or NULL */
    char K_descr[8];    /* dtype K was stored with, "" when absent */
    double *H;          /* p×p symmetric, or NULL: H = G */
    char J_descr[8];    /* dtype J was stored with, e.g. "<f8" */
    char H_descr[8];    /* dtype of H, "" when absent */
    char *source;       /* file the problem came from (for messages) */
    sgdstab_provenance provenance;  /* the file's meta.json; "nothing known"
                                       (present 0) for a .npy, an .npz
                                       without one, or arrays */
    double *V;          /* the .npz member V: an optimizer's second moment
                           v̂, p finite values in J's column order, or NULL
                           (its positivity is checked where it is used,
                           sgdstab_optimizer_check) */
    double *R;          /* the .npz member R: the residuals r_i = f(x_i) − y_i
                           at the minimum, n×k row-major, finite, or NULL
                           (an interpolating minimum: r_i = 0) */
} sgdstab_problem;

/* The loss convention of training (the names of sgdstab_loss_scale,
 * config.h): the "loss" of the problem's meta.json, checked when it was
 * read, or "half-mean" when the file does not say. */
const char *sgdstab_problem_loss(const sgdstab_problem *prob);

typedef struct {
    double symmetry_rtol;  /* ≤ 0: the default described above */
    double max_memory;     /* bytes loading and factorizing may take (> 0),
                              or 0: SGDSTAB_MAX_MEMORY or what is available
                              (memplan.h); < 0: no check */
    size_t params;         /* the parameter count p of a Gram-matrix file
                              whose meta.json does not give it; with J, or
                              with a meta.json "p", it must be that p; 0:
                              not given */
} sgdstab_load_options;

/* Load a problem from a .npy (J only) or .npz (J, optional H and
 * meta.json) file; the kind is recognized from the file's contents, not its
 * name.
 *
 * An .npz may hold K in place of J: shape (n·k, n·k) or (n, k, n, k).  A
 * two-dimensional K takes n and k from meta.json (either one fixes the
 * other), else k = 1.  K must be finite and symmetric within the tolerance
 * of H (then symmetrized); that it is positive semidefinite is checked
 * when it is factorized (reduce.h).  Such a file may hold R and KP, not H
 * or V (they live in parameter space, which K does not see).  opt may be NULL.  meta.json must parse (sgdstab_provenance_parse,
 * at most SGDSTAB_META_MAX bytes), and the "n", "k", "p" it gives must be
 * J's: else SGDSTAB_EFORMAT, e.g. "FILE: meta.json says n = 500 but J has
 * 400 samples". */
int sgdstab_problem_load(const char *path, const sgdstab_load_options *opt,
                         sgdstab_problem **out, sgdstab_error *err);

/* Before J's data are read, its declared shape is checked against the
 * memory available (memplan.h): a J that loading and factorizing could not
 * hold is SGDSTAB_ENOMEM, "FILE: needs about … GB (…), more than the … GB
 * available (…)", before any large allocation. */

/* The same, with H read from a separate .npy file hessian_path (NULL: none).
 * A .npz that holds an H already and a separate H together are an error. */
int sgdstab_problem_load_with_hessian(const char *path,
                                      const char *hessian_path,
                                      const sgdstab_load_options *opt,
                                      sgdstab_problem **out,
                                      sgdstab_error *err);

/* Build a problem from arrays already in memory, with the same validation.
 * Takes ownership of the data of J and H (H may be NULL) whether or not it
 * succeeds; label names the source in messages. */
int sgdstab_problem_from_arrays(const char *label, sgdstab_array *J,
                                sgdstab_array *H,
                                const sgdstab_load_options *opt,
                                sgdstab_problem **out, sgdstab_error *err);

/* Build a problem from a Gram matrix K ((n·k, n·k) or (n, k, n, k)) and
 * optionally the preconditioned KP, with the checks of loading: n_hint,
 * k_hint and p are what is known besides (0: not known; p may also come
 * from opt->params).  Takes ownership of the data of K and KP (KP may be
 * NULL) whether or not it succeeds. */
int sgdstab_problem_from_gram(const char *label, sgdstab_array *K,
                              sgdstab_array *KP, size_t n_hint,
                              size_t k_hint, size_t p,
                              const sgdstab_load_options *opt,
                              sgdstab_problem **out, sgdstab_error *err);

/* Read a p×p matrix from a .npy file with the checks H gets (finite,
 * symmetric within the tolerance, then symmetrized), calling it `name` in
 * messages; *out is malloc'd. */
int sgdstab_load_symmetric(const char *path, const char *name, size_t p,
                           const sgdstab_load_options *opt, double **out,
                           sgdstab_error *err);

void sgdstab_problem_free(sgdstab_problem *prob);

#ifdef __cplusplus
}
#endif

#endif
