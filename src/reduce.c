#include "sgdstab/reduce.h"

#include "parallel.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "hugealloc.h"
#include "symeig.h"

static const double SCALE_MIN = SGDSTAB_CURVATURE_MIN;
static const double SCALE_MAX = SGDSTAB_CURVATURE_MAX;

double sgdstab_default_rank_rtol(const sgdstab_problem *prob)
{
    size_t rows = prob->n * prob->k;
    if (prob->K)
        return sqrt((double)rows * sgdstab_npy_epsilon(prob->K_descr));
    double dim = (double)(rows > prob->p ? rows : prob->p);
    return dim * sgdstab_npy_epsilon(prob->J_descr);
}

double sgdstab_reduced_hessian_max(const sgdstab_reduced *red)
{
    double hmax = red->r < red->p ? 0.0 : -INFINITY;
    for (size_t j = 0; j < red->r; j++)
        hmax = fmax(hmax, red->lambda[j]);
    return hmax;
}

double sgdstab_reduced_hessian_trace(const sgdstab_reduced *red)
{
    double tr = 0;
    for (size_t j = 0; j < red->r; j++)
        tr += red->lambda[j];
    return tr;
}

void sgdstab_reduced_free(sgdstab_reduced *red)
{
    if (!red)
        return;
    free(red->source);
    free(red->sigma);
    free(red->phi);
    free(red->lambda);
    free(red->G);
    free(red->basis);
    free(red);
}

/* Thin SVD of J without a transposed copy: the row-major (n·k)×p buffer is
 * the column-major p×(n·k) matrix A = Jᵀ = U' diag(σ) V'ᵀ, so J's left
 * singular vectors are the rows of V'ᵀ.  With jobz = 'O', dgesdd returns V'ᵀ
 * in vt when p ≥ n·k, and overwrites A with it when p < n·k; in both cases
 * the buffer, read row-major with row length nsv, holds U_J(i, j).
 * On success *u_rows points into either *work or *vt (caller frees both). */
static int thin_svd(const sgdstab_problem *prob, double *sigma, double **work,
                    double **vt, const double **u_rows, sgdstab_error *err)
{
    size_t rows = prob->n * prob->k, p = prob->p;
    size_t nsv = rows < p ? rows : p;
    *work = sgdstab_huge_malloc(rows * p, sizeof **work);
    /* The factor dgesdd does not overwrite A with: V'ᵀ (rows×rows) when
     * p ≥ rows, U' (p×p) otherwise. */
    *vt = sgdstab_huge_malloc(nsv * nsv, sizeof **vt);
    if (!*work || !*vt)
        return sgdstab_fail(err, SGDSTAB_ENOMEM,
                            "%s: out of memory for the SVD of a %zu x %zu "
                            "Jacobian", prob->source, rows, p);
    memcpy(*work, prob->J, rows * p * sizeof **work);
    lapack_int M = (lapack_int)p, N = (lapack_int)rows;
    lapack_int info;
    if (p >= rows)
        info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'O', M, N, *work, M, sigma,
                              NULL, 1, *vt, N);
    else
        info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'O', M, N, *work, M, sigma,
                              *vt, M, NULL, 1);
    if (info == LAPACK_WORK_MEMORY_ERROR ||
        info == LAPACK_TRANSPOSE_MEMORY_ERROR)
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory for the "
                            "workspace of the SVD of a %zu x %zu Jacobian",
                            prob->source, rows, p);
    if (info != 0)
        return sgdstab_fail(err, SGDSTAB_ENUMERIC,
                            "%s: SVD of J failed (LAPACK dgesdd info = %d)",
                            prob->source, (int)info);
    *u_rows = p >= rows ? *vt : *work;
    return SGDSTAB_OK;
}

/* The Gram route (reduce.h): A = J Jᵀ, or JᵀJ when p < n·k, formed by
 * DSYRK (for K input, A is a copy of K), A = W diag(μ) Wᵀ by dsyevr, σ_j =
 * √μ_j descending (the negative μ rounding leaves give 0; for K they are
 * checked against the tolerance later).  The eigenvectors W come out as
 * the rows of *vecs, largest first: J's left singular vectors for J Jᵀ
 * and K, its right ones for JᵀJ.  *work is A, which dsyevr overwrites;
 * both m×m, m = min(n·k, p) (n·k for K); caller frees. */
static int gram_eig(const sgdstab_problem *prob, double *sigma, double **work,
                    double **vecs, double *mu_min, sgdstab_error *err)
{
    const size_t rows = prob->n * prob->k;
    const size_t m = prob->K || rows <= prob->p ? rows : prob->p;
    *work = sgdstab_huge_malloc(m * m, sizeof **work);
    *vecs = sgdstab_huge_malloc(m * m, sizeof **vecs);
    double *mu = malloc(m * sizeof *mu);
    int st = SGDSTAB_OK;
    if (!*work || !*vecs || !mu)
        st = sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory for the "
                          "eigendecomposition of a %zu x %zu Gram matrix",
                          prob->source, m, m);
    if (!st) {
        if (prob->K)
            memcpy(*work, prob->K, m * m * sizeof **work);
        else  /* the upper triangle, which is what symeig_rows reads */
            cblas_dsyrk(CblasRowMajor, CblasUpper,
                        m == rows ? CblasNoTrans : CblasTrans, (int)m,
                        (int)(m == rows ? prob->p : rows), 1.0, prob->J,
                        (int)prob->p, 0.0, *work, (int)m);
        st = symeig_rows(m, *work, mu, *vecs, err, "%s: %s", prob->source,
                         prob->K ? "K" : "the Gram matrix of J");
    }
    if (!st) {
        for (size_t j = 0; j < m; j++)
            sigma[j] = sqrt(fmax(mu[m - 1 - j], 0.0));
        for (size_t j = 0; j < m / 2; j++)  /* rows largest first */
            for (size_t i = 0; i < m; i++) {
                double t = (*vecs)[j * m + i];
                (*vecs)[j * m + i] = (*vecs)[(m - 1 - j) * m + i];
                (*vecs)[(m - 1 - j) * m + i] = t;
            }
        *mu_min = mu[0];
    }
    free(mu);
    return st;
}

/* The Gram route is used for J (without H) when the Gram matrix's
 * condition number is at most this: every μ_j then carries a relative
 * error of about ε·μmax/μ_j ≤ 1e4·ε, σ_j half of it, and the rank is
 * full, as the SVD's would be.  Beyond, small singular values sink into
 * the rounding of A (at about √ε·σmax) and dgesdd decides instead. */
#define GRAM_ROUTE_MAX_CONDITION 1e4

/* A Gram matrix must be positive semidefinite: a negative eigenvalue is
 * rounding when it is within the rank threshold (squared: K holds σ²). */
static int check_gram_psd(const sgdstab_problem *prob,
                          const sgdstab_reduced *red, double mu_min,
                          sgdstab_error *err)
{
    double tol = red->rank_tol * red->rank_tol;
    if (!(mu_min < -tol))
        return SGDSTAB_OK;
    return sgdstab_fail(err, SGDSTAB_EVALUE, "%s: K is not positive "
                        "semidefinite: its smallest eigenvalue %.3g is below "
                        "-%.3g, the tolerance (rank-tol^2 x lambda_max(K) = "
                        "%.3g^2 x %.3g)", prob->source, mu_min, tol,
                        red->rank_rtol, red->sigma[0] * red->sigma[0]);
}

/* red->r = r, with Φ ((n·k)×r) and λ (r) allocated. */
static int alloc_reduced(sgdstab_reduced *red, size_t r, sgdstab_error *err,
                         const char *label)
{
    red->r = r;
    red->phi = sgdstab_huge_malloc(red->n * red->k * r, sizeof *red->phi);
    red->lambda = malloc((r ? r : 1) * sizeof *red->lambda);
    if (!red->phi || !red->lambda)
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory", label);
    return SGDSTAB_OK;
}

/* As alloc_reduced for H = G: r = rank J, λ_j = σ_j²/n. */
static int alloc_gauss_newton(sgdstab_reduced *red, sgdstab_error *err,
                              const char *label)
{
    const size_t r = red->rank_J;
    if (alloc_reduced(red, r, err, label))
        return SGDSTAB_ENOMEM;
    for (size_t j = 0; j < r; j++)
        red->lambda[j] = red->sigma[j] * red->sigma[j] / (double)red->n;
    red->hessian_min = r ? red->lambda[r - 1] : 0.0;
    return SGDSTAB_OK;
}

/* Rank of J and the reduced basis V_r (H = G case): Φ = U_r diag(σ_r),
 * with U(i, j) = u[i·di + j·dj]. */
static int reduce_gauss_newton(sgdstab_reduced *red, const double *u,
                               ptrdiff_t di, ptrdiff_t dj,
                               sgdstab_error *err, const char *label)
{
    size_t rows = red->n * red->k, r = red->rank_J;
    if (alloc_gauss_newton(red, err, label))
        return SGDSTAB_ENOMEM;
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < r; j++)
            red->phi[i * r + j] =
                u[(ptrdiff_t)i * di + (ptrdiff_t)j * dj] * red->sigma[j];
    return SGDSTAB_OK;
}

/* Φ = J V_rᵀ by rows of J in a fixed number of parts (parallel.h: the
 * same numbers whatever the number of threads). */
enum { PRODUCT_PARTS = 8 };

typedef struct {
    sgdstab_reduced *red;
    const sgdstab_problem *prob;
    const double *vr;
} right_product;

static void right_product_part(void *ctx, size_t part)
{
    const right_product *c = ctx;
    const size_t rows = c->red->n * c->red->k, r = c->red->r, p = c->prob->p;
    const size_t i0 = par_first(rows, PRODUCT_PARTS, part);
    const size_t i1 = par_first(rows, PRODUCT_PARTS, part + 1);
    if (r && i1 > i0)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(i1 - i0),
                    (int)r, (int)p, 1.0, c->prob->J + i0 * p, (int)p, c->vr,
                    (int)p, 0.0, c->red->phi + i0 * r, (int)r);
}

/* Φ = J V_r (H = G), V's columns the rows of vr: the Gram route by JᵀJ. */
static int reduce_right(sgdstab_reduced *red, const sgdstab_problem *prob,
                        const double *vr, sgdstab_error *err)
{
    if (alloc_gauss_newton(red, err, prob->source))
        return SGDSTAB_ENOMEM;
    right_product c = {red, prob, vr};
    par_run(PRODUCT_PARTS, right_product_part, &c);
    return SGDSTAB_OK;
}

/* Negative eigenvalues of H within the flat tolerance (reduce.h). */
static int is_flat_negative(double mu, double tol_H, double flat_tol)
{
    return mu < -tol_H && -mu <= flat_tol;
}

/* The flat negative eigenvectors (columns c of evec with mu[c] flat) that
 * J moves, ‖J u‖ > move_tol, join the basis with the curvature |μ| (the
 * sign is below what H resolves; 0 would leave their batch noise
 * undamped); the others never move and are left out.  Counts them in red. */
static int add_flat(sgdstab_reduced *red, const sgdstab_problem *prob,
                    const double *evec, const double *mu, double tol_H,
                    double move_tol, double *basis, double *h, size_t *r,
                    sgdstab_error *err)
{
    size_t p = prob->p, rows = prob->n * prob->k;
    double *Ju = malloc(rows * sizeof *Ju);
    if (!Ju)
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory",
                            prob->source);
    for (size_t c = p; c-- > 0;) {
        if (!is_flat_negative(mu[c], tol_H, red->flat_tol))
            continue;
        red->flat_negative++;
        red->flat_min = fmin(red->flat_min, mu[c]);
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)rows, (int)p, 1.0,
                    prob->J, (int)p, evec + c, (int)p, 0.0, Ju, 1);
        if (!(cblas_dnrm2((int)rows, Ju, 1) > move_tol))
            continue;
        red->flat_moved++;
        for (size_t i = 0; i < p; i++)
            basis[i * p + *r] = evec[i * p + c];
        h[(*r)++] = -mu[c];
    }
    free(Ju);
    return SGDSTAB_OK;
}

/* The null eigenvectors of H (|μ| ≤ tol_H) that J moves, gathered in
 * evec's first columns (overwritten; the flat ones have been read): the
 * right singular vectors of J U0 with σ above move_tol join the basis with
 * curvature 0. */
static int add_moved_null(const sgdstab_problem *prob, double *evec,
                          const double *mu, double tol_H, double move_tol,
                          double *basis, double *h, size_t *r,
                          sgdstab_error *err)
{
    size_t p = prob->p, rows = prob->n * prob->k, m0 = 0;
    double *jn = NULL, *sv = NULL, *vt = NULL;
    int st = SGDSTAB_OK;
    for (size_t c = 0; c < p; c++)
        if (fabs(mu[c]) <= tol_H) {
            for (size_t i = 0; i < p; i++)
                evec[i * p + m0] = evec[i * p + c];
            m0++;
        }
    if (m0 > 0) {
        /* jn = J U0 ((n·k)×m0); its right singular vectors with σ above
         * move_tol span the null(H) directions that J moves. */
        jn = sgdstab_huge_malloc(rows * m0, sizeof *jn);
        size_t ns = rows < m0 ? rows : m0;
        sv = malloc((ns + 1) * sizeof *sv);
        double *superb = malloc((ns + 1) * sizeof *superb);
        vt = sgdstab_huge_malloc(m0 * m0, sizeof *vt);
        if (!jn || !sv || !vt || !superb) {
            free(superb);
            st = sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory",
                              prob->source);
            goto done;
        }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows,
                    (int)m0, (int)p, 1.0, prob->J, (int)p, evec, (int)p, 0.0,
                    jn, (int)m0);
        lapack_int info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'N', 'A',
                                         (lapack_int)rows, (lapack_int)m0, jn,
                                         (lapack_int)m0, sv, NULL, 1, vt,
                                         (lapack_int)m0, superb);
        free(superb);
        if (info != 0) {
            st = sgdstab_fail(err, SGDSTAB_ENUMERIC,
                              "%s: SVD failed (LAPACK dgesvd info = %d)",
                              prob->source, (int)info);
            goto done;
        }
        for (size_t c = 0; c < ns && sv[c] > move_tol; c++) {
            /* basis column r = U0 · (row c of Vᵀ) */
            for (size_t i = 0; i < p; i++) {
                double s = 0;
                for (size_t j = 0; j < m0; j++)
                    s += evec[i * p + j] * vt[c * m0 + j];
                basis[i * p + *r] = s;
            }
            h[(*r)++] = 0.0;
        }
    }
done:
    free(jn);
    free(sv);
    free(vt);
    return st;
}

/* Supplied H: basis = eigenvectors of H with non-zero eigenvalue (flat
 * negative ones as add_flat says), plus the part of null(H) that J moves;
 * Φ = J·basis, G = ΦᵀΦ/n. */
static int reduce_with_hessian(sgdstab_reduced *red, const sgdstab_problem *prob,
                               sgdstab_error *err)
{
    size_t p = prob->p, rows = prob->n * prob->k;
    double *evec = sgdstab_huge_malloc(p * p, sizeof *evec);
    double *mu = malloc(p * sizeof *mu);
    double *basis = sgdstab_huge_malloc(p * p, sizeof *basis);
    double *h = malloc(p * sizeof *h);
    int st = SGDSTAB_OK;
    if (!evec || !mu || !basis || !h) {
        st = sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory",
                          prob->source);
        goto done;
    }
    memcpy(evec, prob->H, p * p * sizeof *evec);
    /* Eigenvalues in ascending order, eigenvectors in the columns. */
    if ((st = symeig_all(SYMEIG_DSYEVD, p, evec, p, mu, 1, err, "%s: H",
                         prob->source)))
        goto done;
    double mumax = fmax(fabs(mu[0]), fabs(mu[p - 1]));
    if (mumax > 0 && !(mumax >= SCALE_MIN && mumax <= SCALE_MAX)) {
        st = sgdstab_fail(err, SGDSTAB_EVALUE, "%s: the curvature of H is out "
                          "of range: max|eigenvalue| = %g, sgdstab needs it "
                          "within [%g, %g]", prob->source, mumax, SCALE_MIN,
                          SCALE_MAX);
        goto done;
    }
    double tol_H = (double)p * sgdstab_npy_epsilon(prob->H_descr) * mumax;
    red->flat_tol = red->flat_rtol * fmax(mu[p - 1], 0.0);
    /* Non-null, non-flat eigenvectors, descending eigenvalue; then the flat
     * negative ones J moves. */
    size_t r = 0;
    for (size_t c = p; c-- > 0;)
        if (fabs(mu[c]) > tol_H &&
            !is_flat_negative(mu[c], tol_H, red->flat_tol)) {
            for (size_t i = 0; i < p; i++)
                basis[i * p + r] = evec[i * p + c];
            h[r++] = mu[c];
        }
    /* J moves a null or flat eigenvector u of H when ‖J u‖ exceeds the rank
     * threshold of J and what rounding can put there: u is computed to an
     * angle of about tol_H/gap (Davis–Kahan), gap the distance to the other
     * eigenvalues, so J u may carry σmax·tol_H/gap of J's range. */
    double gap = mumax;
    for (size_t c = 0; c < p; c++)
        if (fabs(mu[c]) > tol_H &&
            !is_flat_negative(mu[c], tol_H, red->flat_tol))
            gap = fmin(gap, fabs(mu[c]));
    double move_tol = fmax(red->rank_tol, red->sigma[0] * tol_H / gap);
    if ((st = add_flat(red, prob, evec, mu, tol_H, move_tol, basis, h, &r,
                       err)))
        goto done;
    if ((st = add_moved_null(prob, evec, mu, tol_H, move_tol, basis, h, &r,
                             err)))
        goto done;
    if ((st = alloc_reduced(red, r, err, prob->source)))
        goto done;
    if (!(red->G = sgdstab_huge_malloc(r * r, sizeof *red->G))) {
        st = sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory",
                          prob->source);
        goto done;
    }
    memcpy(red->lambda, h, (r ? r : 1) * sizeof *h);
    if (r) {
        /* Φ = J · basis[:, :r] */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows,
                    (int)r, (int)p, 1.0, prob->J, (int)p, basis, (int)p, 0.0,
                    red->phi, (int)r);
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)r, (int)rows,
                    1.0 / (double)prob->n, red->phi, (int)r, 0.0, red->G,
                    (int)r);
        for (size_t i = 0; i < r; i++)
            for (size_t j = 0; j < i; j++)
                red->G[i * r + j] = red->G[j * r + i];
        /* Keep the basis (compacted to p×r) for projections. */
        for (size_t i = 0; i < p; i++)
            memmove(basis + i * r, basis + i * p, r * sizeof *basis);
        red->basis = basis;
        basis = NULL;
    }
    red->hessian_min = r ? h[0] : 0.0;
    for (size_t j = 0; j < r; j++)
        if (h[j] < red->hessian_min)
            red->hessian_min = h[j];
done:
    free(evec);
    free(mu);
    free(basis);
    free(h);
    return st;
}

void sgdstab_reduce_options_init(sgdstab_reduce_options *opt)
{
    opt->svd_only = 0;
    opt->rank_rtol = 0;
    opt->flat_rtol = SGDSTAB_FLAT_RTOL_DEFAULT;
}

/* A clear refusal of a J whose curvature lies outside the range reduce.h
 * (J·1e-300 would otherwise look degenerate, J·1e160 overflow): σmax²/n
 * in logarithms, since it may not be representable. */
static int check_scale(const sgdstab_problem *prob, const sgdstab_reduced *red,
                       sgdstab_error *err)
{
    double lg = 2 * log10(red->sigma[0]) - log10((double)prob->n);
    if (red->sigma[0] == 0 || (lg >= log10(SCALE_MIN) &&
                               lg <= log10(SCALE_MAX)))
        return SGDSTAB_OK;
    char size[48];
    if (isfinite(lg))
        snprintf(size, sizeof size, "about 1e%+.0f", lg);
    else
        snprintf(size, sizeof size, "beyond a double (its SVD overflows)");
    return sgdstab_fail(err, SGDSTAB_EVALUE, "%s: the curvature of J is out of "
                        "range: lambda_max(G) is %s, sgdstab needs it within "
                        "[%g, %g]; scale J by a power of ten (and learning "
                        "rates by its inverse square)", prob->source, size,
                        SCALE_MIN, SCALE_MAX);
}

static int reduce_serial(const sgdstab_problem *prob,
                         const sgdstab_reduce_options *opt,
                         sgdstab_reduced **out, sgdstab_error *err);

/* The factorization holds BLAS at one thread: LAPACK's results then do not
 * depend on OPENBLAS_NUM_THREADS (the engine's own parallel parts are fixed,
 * parallel.h), which is worth a slower SVD. */
int sgdstab_reduce(const sgdstab_problem *prob,
                   const sgdstab_reduce_options *opt, sgdstab_reduced **out,
                   sgdstab_error *err)
{
    int saved = par_blas_serial();
    int st = reduce_serial(prob, opt, out, err);
    par_blas_restore(saved);
    return st;
}

static int reduce_serial(const sgdstab_problem *prob,
                         const sgdstab_reduce_options *opt,
                         sgdstab_reduced **out, sgdstab_error *err)
{
    sgdstab_reduce_options defaults;
    sgdstab_reduce_options_init(&defaults);
    if (!opt)
        opt = &defaults;
    double rank_rtol = opt->rank_rtol;
    double flat_rtol = opt->flat_rtol < 0 ? SGDSTAB_FLAT_RTOL_DEFAULT
                                          : opt->flat_rtol;
    *out = NULL;
    size_t rows = prob->n * prob->k;
    size_t nsv = prob->K || rows < prob->p ? rows : prob->p;
    sgdstab_reduced *red = calloc(1, sizeof *red);
    double *work = NULL, *vt = NULL;
    const double *u = NULL;
    int st = SGDSTAB_OK;
    if (!red || !(red->sigma = malloc(nsv * sizeof *red->sigma))) {
        st = sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory",
                          prob->source);
        goto done;
    }
    red->n = prob->n;
    red->k = prob->k;
    red->p = prob->p;
    red->from_gram = prob->K != NULL;
    red->nsv = nsv;
    if (!(red->source = strdup(prob->source))) {
        st = sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory",
                          prob->source);
        goto done;
    }
    double mu_min = 0;
    /* K is factorized so; J without H tries the route and keeps it when
     * its Gram matrix's condition number allows (reduce.h). */
    int gram_route = prob->K || (!prob->H && !opt->svd_only);
    if (gram_route &&
        (st = gram_eig(prob, red->sigma, &work, &vt, &mu_min, err)))
        goto done;
    if (gram_route && !prob->K &&
        !(red->sigma[nsv - 1] * red->sigma[nsv - 1] *
              GRAM_ROUTE_MAX_CONDITION >= red->sigma[0] * red->sigma[0] &&
          red->sigma[0] > 0)) {
        free(work);
        free(vt);
        work = vt = NULL;
        gram_route = 0;
    }
    if ((!gram_route &&
         (st = thin_svd(prob, red->sigma, &work, &vt, &u, err))) ||
        (st = check_scale(prob, red, err)))
        goto done;
    red->gram_route = gram_route;

    red->rank_rtol = rank_rtol > 0 ? rank_rtol : sgdstab_default_rank_rtol(prob);
    red->rank_tol = red->rank_rtol * red->sigma[0];
    size_t rank = 0;
    while (rank < nsv && red->sigma[rank] > red->rank_tol)
        rank++;
    red->rank_J = rank;
    for (size_t j = 0; j < nsv; j++)
        red->trace_G += prob->K ? prob->K[j * rows + j]
                                : red->sigma[j] * red->sigma[j];
    red->trace_G /= (double)prob->n;

    red->flat_rtol = flat_rtol;
    if (prob->K && (st = check_gram_psd(prob, red, mu_min, err)))
        goto done;
    if (gram_route && nsv < rows) {  /* rows of vt: J's right vectors */
        st = reduce_right(red, prob, vt, err);
    } else if (gram_route) {  /* rows of vt: J's left vectors */
        st = reduce_gauss_newton(red, vt, 1, (ptrdiff_t)rows, err,
                                 prob->source);
    } else
        st = prob->H ? reduce_with_hessian(red, prob, err)
                     : reduce_gauss_newton(red, u, (ptrdiff_t)nsv, 1, err,
                                           prob->source);
done:
    free(work);
    free(vt);
    if (st) {
        sgdstab_reduced_free(red);
        return st;
    }
    *out = red;
    return SGDSTAB_OK;
}

void sgdstab_reduce_basis_rows(const sgdstab_reduced *red,
                               const sgdstab_problem *prob, double *rows)
{
    const size_t p = red->p, r = red->r, nk = red->n * red->k;
    if (r == 0)
        return;
    if (red->basis) {
        for (size_t j = 0; j < r; j++)
            for (size_t i = 0; i < p; i++)
                rows[j * p + i] = red->basis[i * r + j];
        return;
    }
    /* Q = V_r = Jᵀ Φ Σ_r^{-2}:  Qᵀ = Σ_r^{-2} Φᵀ J. */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)r, (int)p,
                (int)nk, 1.0, red->phi, (int)r, prob->J, (int)p, 0.0, rows,
                (int)p);
    for (size_t j = 0; j < r; j++)
        cblas_dscal((int)p, 1 / (red->sigma[j] * red->sigma[j]),
                    rows + j * p, 1);
}
