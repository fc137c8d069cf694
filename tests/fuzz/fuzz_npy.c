/* libFuzzer target for the file-format layer: arbitrary bytes as a .npy, as
 * meta.json text, and as a .npz whose arrays J and H are read and, when they
 * load, validated into a problem (and, for small ones, reduced), and whose
 * meta.json member, if any, is read and parsed.  Any crash, sanitizer
 * report, leak, or broken error contract (non-OK status with a multi-line or
 * empty message, or a failed read that leaves data behind) aborts. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sgdstab/npy.h"
#include "sgdstab/problem.h"
#include "sgdstab/provenance.h"
#include "sgdstab/reduce.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(int rc, const sgdstab_error *err)
{
    if (rc == SGDSTAB_OK)
        return;
    size_t len = strnlen(err->msg, sizeof err->msg);
    if (err->status != rc || len == 0 || len == sizeof err->msg ||
        memchr(err->msg, '\n', len))
        abort();
}

static void check_array(int rc, const sgdstab_array *a)
{
    if (rc != SGDSTAB_OK) {
        if (a->data)
            abort();
        return;
    }
    if (a->ndim < 1 || a->ndim > SGDSTAB_NPY_MAX_DIMS)
        abort();
    size_t size = 1;
    for (int i = 0; i < SGDSTAB_NPY_MAX_DIMS; i++)
        size *= a->shape[i];
    if (size != a->size || (size && !a->data))
        abort();
    /* touch every element: ASan catches a short allocation */
    volatile double sink = 0;
    for (size_t i = 0; i < a->size; i++)
        sink += a->data[i];
    (void)sink;
}

/* Parse meta.json text: a failure leaves "nothing known", a success a
 * present provenance with terminated strings. */
static void try_provenance(const char *text, size_t len)
{
    sgdstab_provenance pv;
    sgdstab_error err;
    int rc = sgdstab_provenance_parse(text, len, "fuzz.npz", &pv, &err);
    check_error(rc, &err);
    if (pv.present != (rc == SGDSTAB_OK) ||
        !memchr(pv.loss, '\0', sizeof pv.loss) ||
        !memchr(pv.train_sampling, '\0', sizeof pv.train_sampling) ||
        (rc != SGDSTAB_OK && (pv.loss[0] || pv.n || !isnan(pv.target_rms))))
        abort();
    int interpolating = sgdstab_provenance_interpolating(&pv);
    if (interpolating < -1 || interpolating > 1)
        abort();
}

/* A problem made (status rc) from arrays: checked, factorized when small,
 * freed. */
static void try_reduce(int rc, sgdstab_problem *prob, const sgdstab_error *err)
{
    check_error(rc, err);
    if (rc != SGDSTAB_OK)
        return;
    size_t rows = prob ? prob->n * prob->k : 0;
    size_t size = prob && prob->K ? rows * rows : rows * (prob ? prob->p : 0);
    if (!prob || size == 0 || (!prob->K && !prob->J))
        abort();
    sgdstab_error e;
    if (size <= 4096) {
        sgdstab_reduced *red = NULL;
        rc = sgdstab_reduce(prob, NULL, &red, &e);
        check_error(rc, &e);
        if (rc == SGDSTAB_OK) {
            if (red->r > red->nsv)
                abort();
            sgdstab_reduced_free(red);
        }
    }
    sgdstab_problem_free(prob);
}

static void try_problem(sgdstab_array *J, sgdstab_array *H)
{
    sgdstab_problem *prob = NULL;
    sgdstab_error err;
    /* takes ownership of J's and H's data, success or not */
    int rc = sgdstab_problem_from_arrays("fuzz", J, H, NULL, &prob, &err);
    try_reduce(rc, prob, &err);
}

/* K (and KP) as a Gram-matrix problem. */
static void try_gram(sgdstab_array *K, sgdstab_array *KP)
{
    sgdstab_problem *prob = NULL;
    sgdstab_error err;
    int rc = sgdstab_problem_from_gram("fuzz", K, KP, 0, 0, 0, NULL, &prob,
                                       &err);
    try_reduce(rc, prob, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sgdstab_error err;
    sgdstab_array a;
    memset(&a, 0, sizeof a);

    /* As meta.json text. */
    try_provenance((const char *)data, size);

    /* As a .npy. */
    int rc = sgdstab_npy_read_buffer(data, size, "fuzz.npy", &a, &err);
    check_error(rc, &err);
    check_array(rc, &a);
    if (rc == SGDSTAB_OK)
        try_problem(&a, NULL);  /* owns a's data from here on */

    /* As a .npz. */
    sgdstab_npz *z = sgdstab_npz_open_buffer(data, size, "fuzz.npz", &err);
    if (!z) {
        check_error(err.status, &err);
        return 0;
    }
    sgdstab_array J, H;
    memset(&J, 0, sizeof J);
    memset(&H, 0, sizeof H);
    int has_J = sgdstab_npz_has(z, "J"), has_H = sgdstab_npz_has(z, "H");
    int rj = sgdstab_npz_read(z, "J", &J, &err);
    check_error(rj, &err);
    check_array(rj, &J);
    if (!has_J && rj == SGDSTAB_OK)
        abort();
    int rh = SGDSTAB_EFORMAT;
    if (has_H) {
        rh = sgdstab_npz_read(z, "H", &H, &err);
        check_error(rh, &err);
        check_array(rh, &H);
    }
    if (sgdstab_npz_has_member(z, "meta.json")) {
        char *text = NULL;
        size_t len = 0;
        int rm = sgdstab_npz_read_bytes(z, "meta.json", 4096, &text, &len,
                                        &err);
        check_error(rm, &err);
        if ((rm == SGDSTAB_OK) != (text != NULL) || len > 4096 ||
            (text && text[len] != '\0'))
            abort();
        if (text)
            try_provenance(text, len);
        free(text);
    }
    sgdstab_array K, KP;
    memset(&K, 0, sizeof K);
    memset(&KP, 0, sizeof KP);
    int rk = sgdstab_npz_has(z, "K") ? sgdstab_npz_read(z, "K", &K, &err)
                                     : SGDSTAB_EFORMAT;
    int rkp = rk == SGDSTAB_OK && sgdstab_npz_has(z, "KP")
                  ? sgdstab_npz_read(z, "KP", &KP, &err)
                  : SGDSTAB_EFORMAT;
    sgdstab_npz_close(z);
    if (rk == SGDSTAB_OK)
        try_gram(&K, rkp == SGDSTAB_OK ? &KP : NULL);
    if (rj == SGDSTAB_OK)
        try_problem(&J, rh == SGDSTAB_OK ? &H : NULL);
    else if (rh == SGDSTAB_OK)
        sgdstab_array_free(&H);
    return 0;
}
