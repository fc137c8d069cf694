/* Provenance of a minimum: the keys of meta.json (provenance.h). */
#include "sgdstab/provenance.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sgdstab/config.h"

void sgdstab_provenance_init(sgdstab_provenance *pv)
{
    memset(pv, 0, sizeof *pv);
    pv->residual_rms = pv->max_residual = pv->target_rms = NAN;
    pv->train_lr = NAN;
    sgdstab_optimizer_init(&pv->optimizer);
}

/* "optimizer": its kind and settings, each in its range (the second
 * moment, the member V, is checked where it is used). */
static int take_optimizer(const cJSON *o, const char *label,
                          sgdstab_provenance *pv, sgdstab_error *err)
{
    sgdstab_optimizer *opt = &pv->optimizer;
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    if (!cJSON_IsObject(o) || !cJSON_IsString(kind))
        return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: meta.json: "
                            "\"optimizer\" must be an object with a \"kind\"",
                            label);
    const int rmsprop = !strcmp(kind->valuestring, "rmsprop");
    if (rmsprop)
        opt->kind = SGDSTAB_OPTIMIZER_SGD;
    else if (sgdstab_optimizer_parse(kind->valuestring, &opt->kind))
        return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: meta.json: optimizer "
                            "kind must be sgd, rmsprop, adam or adamw",
                            label);
    pv->preconditioned = rmsprop || opt->kind != SGDSTAB_OPTIMIZER_SGD;
    static const char *const keys[] = {"momentum", "dampening",
                                       "weight_decay", "beta2", "eps"};
    double *fields[] = {&opt->momentum, &opt->dampening, &opt->weight_decay,
                        &opt->beta2, &opt->eps};
    for (int i = 0; i < 5; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
        if (!v || cJSON_IsNull(v))
            continue;
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
            return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: meta.json: "
                                "optimizer %s must be a number", label,
                                keys[i]);
        *fields[i] = v->valuedouble;
    }
    const cJSON *nesterov = cJSON_GetObjectItemCaseSensitive(o, "nesterov");
    if (nesterov && !cJSON_IsNull(nesterov) && !cJSON_IsBool(nesterov))
        return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: meta.json: optimizer "
                            "nesterov must be true or false", label);
    opt->nesterov = cJSON_IsTrue(nesterov);
    /* Every rule but the second moment's, which V brings. */
    sgdstab_optimizer check = *opt;
    static const double one = 1;
    check.second_moment = pv->preconditioned ? &one : NULL;
    check.second_moment_len = 1;
    sgdstab_error why;
    if (sgdstab_optimizer_check(&check, 1, &why))
        return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: meta.json: optimizer: "
                            "%s", label, why.msg);
    pv->has_optimizer = 1;
    return SGDSTAB_OK;
}

/* What a known key holds, and where it goes in sgdstab_provenance. */
enum kind { NONNEG, POSITIVE, COUNT, TEXT, LOSS };

#define FIELD(f) offsetof(sgdstab_provenance, f), \
                 sizeof ((sgdstab_provenance *)0)->f

static const struct {
    const char *key;
    enum kind kind;
    size_t offset, size;
} KEYS[] = {
    {"loss", LOSS, FIELD(loss)},
    {"residual_rms", NONNEG, FIELD(residual_rms)},
    {"max_residual", NONNEG, FIELD(max_residual)},
    {"target_rms", POSITIVE, FIELD(target_rms)},
    {"n", COUNT, FIELD(n)},
    {"k", COUNT, FIELD(k)},
    {"p", COUNT, FIELD(p)},
    {"train_lr", POSITIVE, FIELD(train_lr)},
    {"train_batch", COUNT, FIELD(train_batch)},
    {"train_sampling", TEXT, FIELD(train_sampling)},
};

/* A finite number, ≥ 0, or > 0, or whole and ≥ 1 (at most 2^53, where
 * doubles still hold every integer). */
static int number_ok(const cJSON *v, enum kind kind)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return 0;
    double d = v->valuedouble;
    return kind == NONNEG ? d >= 0
         : kind == POSITIVE ? d > 0
         : d >= 1 && d <= 9007199254740992.0 && d == floor(d);
}

/* A string that fits in size bytes, without control characters (it may be
 * printed in a one-line message). */
static int text_ok(const cJSON *v, size_t size)
{
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= size)
        return 0;
    for (const unsigned char *c = (const unsigned char *)v->valuestring; *c;
         c++)
        if (*c < 0x20 || *c == 0x7f)
            return 0;
    return 1;
}

static int wrong(const char *label, size_t i, sgdstab_error *err)
{
    const char *key = KEYS[i].key;
    switch (KEYS[i].kind) {
    case NONNEG:
    case POSITIVE:
        return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: meta.json: \"%s\" must "
                            "be a number %s 0", label, key,
                            KEYS[i].kind == NONNEG ? ">=" : ">");
    case COUNT:
        return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: meta.json: \"%s\" must "
                            "be a whole number >= 1", label, key);
    default:
        return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: meta.json: \"%s\" must "
                            "be %sa string of at most %zu printable "
                            "characters", label, key,
                            KEYS[i].kind == LOSS ? "a number > 0 or " : "",
                            KEYS[i].size - 1);
    }
}

/* Store the value v of KEYS[i] in pv. */
static int take(const cJSON *v, size_t i, const char *label,
                sgdstab_provenance *pv, sgdstab_error *err)
{
    char *field = (char *)pv + KEYS[i].offset;
    enum kind kind = KEYS[i].kind;
    if (kind == LOSS && cJSON_IsNumber(v)) {
        /* kept as text, to be read like --loss; %.17g gives the same
         * double back */
        if (!number_ok(v, POSITIVE))
            return wrong(label, i, err);
        snprintf(field, KEYS[i].size, "%.17g", v->valuedouble);
    } else if (kind == LOSS || kind == TEXT) {
        double c;
        if (!text_ok(v, KEYS[i].size))
            return wrong(label, i, err);
        if (kind == LOSS && sgdstab_loss_scale(v->valuestring, 1, &c, NULL))
            return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: meta.json: \"loss\" "
                                "must be half-mean, mse or a number > 0, not "
                                "'%s'", label, v->valuestring);
        snprintf(field, KEYS[i].size, "%s", v->valuestring);
    } else if (!number_ok(v, kind)) {
        return wrong(label, i, err);
    } else if (kind == COUNT) {
        *(size_t *)(void *)field = (size_t)v->valuedouble;
    } else {
        *(double *)(void *)field = v->valuedouble;
    }
    return SGDSTAB_OK;
}

int sgdstab_provenance_parse(const char *text, size_t len, const char *label,
                             sgdstab_provenance *out, sgdstab_error *err)
{
    sgdstab_provenance_init(out);
    /* cJSON wants a NUL-terminated text; it then also checks that nothing
     * but blanks follows the value. */
    const char *nul = memchr(text, '\0', len);
    char *copy = malloc(len + 1);
    if (!copy)
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: meta.json: out of memory",
                            label);
    memcpy(copy, text, len);
    copy[len] = '\0';
    const char *end = copy;
    cJSON *o = nul ? NULL : cJSON_ParseWithOpts(copy, &end, 1);
    if (!o) {
        size_t at = nul ? (size_t)(nul - text) : (size_t)(end - copy);
        free(copy);
        return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: meta.json: not valid "
                            "JSON (at byte %zu)", label, at);
    }
    free(copy);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: meta.json: not a JSON "
                            "object", label);
    }
    sgdstab_provenance pv;
    sgdstab_provenance_init(&pv);
    pv.present = 1;
    int st = SGDSTAB_OK;
    for (size_t i = 0; i < sizeof KEYS / sizeof KEYS[0] && !st; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, KEYS[i].key);
        if (v && !cJSON_IsNull(v))
            st = take(v, i, label, &pv, err);
    }
    const cJSON *opt = cJSON_GetObjectItemCaseSensitive(o, "optimizer");
    if (!st && opt && !cJSON_IsNull(opt))
        st = take_optimizer(opt, label, &pv, err);
    cJSON_Delete(o);
    if (!st)
        *out = pv;
    return st;
}

double sgdstab_provenance_relative_residual(const sgdstab_provenance *pv)
{
    return pv->residual_rms / pv->target_rms;  /* NAN when either is */
}

int sgdstab_provenance_interpolating(const sgdstab_provenance *pv)
{
    if (isnan(pv->residual_rms) || isnan(pv->target_rms))
        return -1;
    return pv->residual_rms <= SGDSTAB_INTERPOLATION_RTOL * pv->target_rms;
}
