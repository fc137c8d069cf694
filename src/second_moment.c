#include "sgdstab/second_moment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sgdstab/problem.h"
#include "symeig.h"

/* L = U·diag(√max(λ, 0)) from S, after the check of the header; messages
 * start with "LABEL: " (prefix, sep). */
static int factorize(sgdstab_second_moment *s, const char *prefix,
                     const char *sep, sgdstab_error *err)
{
    const size_t p = s->p;
    double *w = malloc(p * sizeof *w);
    if (!w)
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s%sout of memory for the "
                            "eigenvalues of S_0 (p = %zu)", prefix, sep, p);
    memcpy(s->L, s->S, p * p * sizeof *s->L);
    int st = symeig_all(SYMEIG_DSYEVD, p, s->L, p, w, 1, err, "%s%sS_0",
                        prefix, sep);
    double top = fmax(fabs(w[0]), fabs(w[p - 1]));
    if (!st && w[0] < -SGDSTAB_SECOND_MOMENT_RTOL * top)
        st = sgdstab_fail(err, SGDSTAB_EVALUE, "%s%sS_0 is not positive "
                          "semidefinite (smallest eigenvalue %.3g, below "
                          "-%g times max|eigenvalue| = %.3g), so it is no "
                          "second moment", prefix, sep, w[0],
                          SGDSTAB_SECOND_MOMENT_RTOL, top);
    for (size_t j = 0; !st && j < p; j++) {
        double root = sqrt(fmax(w[j], 0));
        for (size_t i = 0; i < p; i++)
            s->L[i * p + j] *= root;
    }
    free(w);
    return st;
}

void sgdstab_second_moment_free(sgdstab_second_moment *s)
{
    if (!s)
        return;
    free(s->S);
    free(s->L);
    free(s);
}

int sgdstab_second_moment_from_matrix(const double *S, size_t p,
                                      const char *label,
                                      sgdstab_second_moment **out,
                                      sgdstab_error *err)
{
    const char *prefix = label ? label : "", *sep = label ? ": " : "";
    *out = NULL;
    if (p == 0)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "%s%sS_0 is empty (p = 0)",
                            prefix, sep);
    sgdstab_second_moment *s = calloc(1, sizeof *s);
    if (s) {
        s->p = p;
        s->S = malloc(p * p * sizeof *s->S);
        s->L = malloc(p * p * sizeof *s->L);
    }
    if (!s || !s->S || !s->L) {
        sgdstab_second_moment_free(s);
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s%sout of memory for S_0 "
                            "(p = %zu)", prefix, sep, p);
    }
    int st = SGDSTAB_OK;
    for (size_t i = 0; i < p && !st; i++)
        for (size_t j = i; j < p && !st; j++) {
            double v = S[i * p + j];
            if (!isfinite(v))
                st = sgdstab_fail(err, SGDSTAB_EVALUE, "%s%sS_0 has a "
                                  "non-finite entry at (%zu, %zu)", prefix,
                                  sep, i, j);
            s->S[i * p + j] = s->S[j * p + i] = v;
        }
    if (!st)
        st = factorize(s, prefix, sep, err);
    if (st) {
        sgdstab_second_moment_free(s);
        return st;
    }
    *out = s;
    return SGDSTAB_OK;
}

int sgdstab_second_moment_load(const char *path, size_t p,
                               sgdstab_second_moment **out,
                               sgdstab_error *err)
{
    double *S;
    *out = NULL;
    int st = sgdstab_load_symmetric(path, "S_0", p, NULL, &S, err);
    if (st)
        return st;
    st = sgdstab_second_moment_from_matrix(S, p, path, out, err);
    free(S);
    return st;
}
