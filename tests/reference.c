#include "reference.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct sgdstab_reference {
    size_t n, r, N;     /* samples, range dimension, r(r+1)/2 */
    double c;           /* loss scale */
    double *A;          /* n × r × r: A_i in the range basis */
    double *H, *G;      /* r × r */
    double *eye;        /* r × r identity */
    double *S1, *S2;    /* N × N work matrices */
    double *w;          /* N eigenvalues */
};

void sgdstab_reference_free(sgdstab_reference *ref)
{
    if (!ref)
        return;
    free(ref->A);
    free(ref->H);
    free(ref->G);
    free(ref->eye);
    free(ref->S1);
    free(ref->S2);
    free(ref->w);
    free(ref);
}

size_t sgdstab_reference_dim(const sgdstab_reference *ref)
{
    return ref->r;
}

/* Q^T X Q for p×p X and p×r Q (row-major), into r×r out. */
static void congruence(size_t p, size_t r, const double *X, const double *Q,
                       double *tmp, double *out)
{
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)p, (int)r,
                (int)p, 1.0, X, (int)p, Q, (int)r, 0.0, tmp, (int)r);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)r, (int)r,
                (int)p, 1.0, Q, (int)r, tmp, (int)r, 0.0, out, (int)r);
}

static void out_of_memory(const sgdstab_problem *prob, sgdstab_error *err)
{
    sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory for the dense "
                 "reference", prob->source);
}

sgdstab_reference *sgdstab_reference_alloc(const sgdstab_problem *prob,
                                           double loss_scale,
                                           sgdstab_error *err)
{
    size_t n = prob->n, k = prob->k, p = prob->p;
    sgdstab_reference *ref = calloc(1, sizeof *ref);
    double *Gp = calloc(p * p, sizeof *Gp);   /* G in parameter space */
    double *M = malloc(p * p * sizeof *M);
    double *w = malloc(p * sizeof *w);
    double *Q = malloc(p * p * sizeof *Q);
    double *tmp = malloc(p * p * sizeof *tmp);
    double *Ai = malloc(p * p * sizeof *Ai);
    if (!ref || !Gp || !M || !w || !Q || !tmp || !Ai) {
        out_of_memory(prob, err);
        goto fail;
    }
    ref->n = n;
    ref->c = loss_scale;
    /* G = (1/n) Σ_i J_iᵀ J_i = (1/n) JᵀJ; range of G + H² = range(G) + range(H). */
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)p, (int)(n * k),
                1.0 / (double)n, prob->J, (int)p, 0.0, Gp, (int)p);
    for (size_t i = 0; i < p; i++)
        for (size_t j = 0; j < i; j++)
            Gp[i * p + j] = Gp[j * p + i];
    memcpy(M, Gp, p * p * sizeof *M);
    if (prob->H)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)p, (int)p,
                    (int)p, 1.0, prob->H, (int)p, prob->H, (int)p, 1.0, M,
                    (int)p);
    if (LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)p, M,
                       (lapack_int)p, w) != 0) {
        sgdstab_fail(err, SGDSTAB_ENUMERIC, "%s: reference "
                     "eigendecomposition failed", prob->source);
        goto fail;
    }
    double wmax = fmax(w[p - 1], 0.0);
    size_t r = 0;
    for (size_t c = 0; c < p; c++)
        if (w[c] > 1e-10 * wmax) {
            for (size_t i = 0; i < p; i++)
                Q[i * p + r] = M[i * p + c];
            r++;
        }
    /* Compact Q to p×r. */
    for (size_t i = 0; i < p; i++)
        memmove(Q + i * r, Q + i * p, r * sizeof *Q);
    ref->r = r;
    ref->N = r * (r + 1) / 2;
    if (r == 0) {
        sgdstab_fail(err, SGDSTAB_EVALUE, "%s: nothing moves (empty range)",
                     prob->source);
        goto fail;
    }
    ref->A = malloc(n * r * r * sizeof *ref->A);
    ref->H = malloc(r * r * sizeof *ref->H);
    ref->G = malloc(r * r * sizeof *ref->G);
    ref->eye = calloc(r * r, sizeof *ref->eye);
    ref->S1 = malloc(ref->N * ref->N * sizeof *ref->S1);
    ref->S2 = malloc(ref->N * ref->N * sizeof *ref->S2);
    ref->w = malloc(ref->N * sizeof *ref->w);
    if (!ref->A || !ref->H || !ref->G || !ref->eye || !ref->S1 || !ref->S2 ||
        !ref->w) {
        out_of_memory(prob, err);
        goto fail;
    }
    for (size_t i = 0; i < r; i++)
        ref->eye[i * r + i] = 1;
    for (size_t i = 0; i < n; i++) {
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)p, (int)k, 1.0,
                    prob->J + i * k * p, (int)p, 0.0, Ai, (int)p);
        for (size_t a = 0; a < p; a++)
            for (size_t b = 0; b < a; b++)
                Ai[a * p + b] = Ai[b * p + a];
        congruence(p, r, Ai, Q, tmp, ref->A + i * r * r);
    }
    congruence(p, r, Gp, Q, tmp, ref->G);
    congruence(p, r, prob->H ? prob->H : Gp, Q, tmp, ref->H);
    for (size_t i = 0; i < r * r; i++) {
        ref->G[i] *= loss_scale;
        ref->H[i] *= loss_scale;
    }
    for (size_t i = 0; i < n * r * r; i++)
        ref->A[i] *= loss_scale;
    goto done;
fail:
    sgdstab_reference_free(ref);
    ref = NULL;
done:
    free(Gp);
    free(M);
    free(w);
    free(Q);
    free(tmp);
    free(Ai);
    return ref;
}

/* S += coef · [⟨E_α, X E_β Y⟩]_{αβ} over the orthonormal basis E of
 * symmetric r×r matrices, where ⟨E_α, X E_β Y⟩ = Σ c_α c_β X_ik Y_lj over
 * the entries (i, j) of E_α and (k, l) of E_β (c = 1 on the diagonal, 1/√2
 * off it). */
static void add_kron(size_t r, double coef, const double *X, const double *Y,
                     double *S)
{
    const double h = sqrt(0.5);
    size_t N = r * (r + 1) / 2, alpha = 0;
    for (size_t i0 = 0; i0 < r; i0++)
        for (size_t j0 = i0; j0 < r; j0++, alpha++) {
            size_t na = i0 == j0 ? 1 : 2;
            size_t ai[2] = {i0, j0}, aj[2] = {j0, i0};
            double ca = na == 1 ? 1.0 : h;
            size_t beta = 0;
            for (size_t k0 = 0; k0 < r; k0++)
                for (size_t l0 = k0; l0 < r; l0++, beta++) {
                    size_t nb = k0 == l0 ? 1 : 2;
                    size_t bk[2] = {k0, l0}, bl[2] = {l0, k0};
                    double cb = nb == 1 ? 1.0 : h, sum = 0;
                    for (size_t u = 0; u < na; u++)
                        for (size_t v = 0; v < nb; v++)
                            sum += X[ai[u] * r + bk[v]] * Y[bl[v] * r + aj[u]];
                    S[alpha * N + beta] += coef * ca * cb * sum;
                }
        }
}

/* S2 = Pᵀ[H⊗H − (1 − a)G⊗G + (b/n) Σ A_i⊗A_i]P (𝒜₂) and
 * S1 = Pᵀ[H⊗I + I⊗H]P (𝒜₁) for the batch rule. */
static int assemble(sgdstab_reference *ref, sgdstab_sampling sampling,
                    size_t batch, sgdstab_error *err)
{
    double a, b;
    int st = sgdstab_batch_coefficients(sampling, ref->n, batch, &a, &b, err);
    if (st)
        return st;
    size_t r = ref->r, NN = ref->N * ref->N;
    memset(ref->S2, 0, NN * sizeof *ref->S2);
    add_kron(r, 1.0, ref->H, ref->H, ref->S2);
    add_kron(r, -(1 - a), ref->G, ref->G, ref->S2);
    if (b != 0)
        for (size_t i = 0; i < ref->n; i++)
            add_kron(r, b / (double)ref->n, ref->A + i * r * r,
                     ref->A + i * r * r, ref->S2);
    memset(ref->S1, 0, NN * sizeof *ref->S1);
    add_kron(r, 1.0, ref->H, ref->eye, ref->S1);
    add_kron(r, 1.0, ref->eye, ref->H, ref->S1);
    return SGDSTAB_OK;
}

int sgdstab_reference_spectrum(sgdstab_reference *ref, double lr,
                               sgdstab_sampling sampling, size_t batch,
                               double *rho, double *eig, sgdstab_error *err)
{
    int st = assemble(ref, sampling, batch, err);
    if (st)
        return st;
    size_t N = ref->N, NN = N * N;
    /* T = I − η𝒜₁ + η²𝒜₂ */
    for (size_t i = 0; i < NN; i++)
        ref->S1[i] = lr * lr * ref->S2[i] - lr * ref->S1[i];
    for (size_t i = 0; i < N; i++)
        ref->S1[i * N + i] += 1;
    /* Eigenvalues only (jobz 'N', all of them): z and isuppz are not
     * referenced. */
    lapack_int found, unused_isuppz[2];
    double unused_z;
    if (LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'N', 'A', 'U', (lapack_int)N,
                       ref->S1, (lapack_int)N, 0, 0, 0, 0, 0, &found, ref->w,
                       &unused_z, 1, unused_isuppz) != 0 ||
        found != (lapack_int)N)
        return sgdstab_fail(err, SGDSTAB_ENUMERIC, "reference dsyevr failed");
    *rho = ref->w[N - 1];
    if (eig)
        memcpy(eig, ref->w, N * sizeof *ref->w);
    return SGDSTAB_OK;
}

int sgdstab_reference_critical(sgdstab_reference *ref,
                               sgdstab_sampling sampling, size_t batch,
                               double *lr_critical, sgdstab_error *err)
{
    int st = assemble(ref, sampling, batch, err);
    if (st)
        return st;
    size_t N = ref->N;
    lapack_int info = LAPACKE_dsygvd(LAPACK_ROW_MAJOR, 1, 'N', 'U',
                                     (lapack_int)N, ref->S2, (lapack_int)N,
                                     ref->S1, (lapack_int)N, ref->w);
    if (info > (lapack_int)N)
        return sgdstab_fail(err, SGDSTAB_EVALUE, "reference: H is not positive "
                            "definite on the range");
    if (info != 0)
        return sgdstab_fail(err, SGDSTAB_ENUMERIC, "reference dsygvd failed "
                            "(info = %d)", (int)info);
    *lr_critical = 1 / ref->w[N - 1];
    return SGDSTAB_OK;
}
