#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "exit_status.h"
#include "options.h"
#include "output.h"
#include "report.h"
#include "sgdstab/outfile.h"
#include "sgdstab/problem.h"
#include "sgdstab/provenance.h"
#include "sgdstab/status.h"
#include "sgdstab/theory.h"

cJSON *cli_json_value(double value)
{
    if (!isfinite(value))
        return cJSON_CreateNull();
    char buf[32];
    snprintf(buf, sizeof buf, "%.17g", value);
    return cJSON_CreateRaw(buf);
}

void cli_json_number(cJSON *obj, const char *key, double value)
{
    cJSON_AddItemToObject(obj, key, cli_json_value(value));
}

void cli_json_numbers(cJSON *obj, size_t n, const char *const keys[],
                      const double values[])
{
    for (size_t i = 0; i < n; i++)
        cli_json_number(obj, keys[i], values[i]);
}

void cli_json_size(cJSON *obj, const char *key, size_t value)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%zu", value);
    cJSON_AddRawToObject(obj, key, buf);
}

cJSON *cli_json_problem(const sgdstab_problem *prob)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", prob->source);
    cli_json_size(o, "n", prob->n);
    cli_json_size(o, "k", prob->k);
    cli_json_params(o, prob->p);
    cli_json_input(o, prob);
    return o;
}

void cli_json_params(cJSON *o, size_t p)
{
    if (p)
        cli_json_size(o, "p", p);
    else
        cJSON_AddNullToObject(o, "p");
}

const char *cli_input_name(const sgdstab_problem *prob)
{
    return prob->K ? "gram" : "jacobian";
}

void cli_json_input(cJSON *o, const sgdstab_problem *prob)
{
    cJSON_AddStringToObject(o, "input", cli_input_name(prob));
}

void cli_json_null_dim(cJSON *o, const sgdstab_problem *prob,
                       const sgdstab_reduced *red)
{
    if (prob->p)
        cli_json_size(o, "null_dim", prob->p - red->r);
    else
        cJSON_AddNullToObject(o, "null_dim");
}

cli_count_text cli_params(size_t p)
{
    cli_count_text t = {"unknown"};
    if (p)
        snprintf(t.s, sizeof t.s, "%zu", p);
    return t;
}

cJSON *cli_json_append_object(cJSON *array)
{
    cJSON *obj = cJSON_CreateObject();
    if (obj && !cJSON_AddItemToArray(array, obj)) {
        cJSON_Delete(obj);
        return NULL;
    }
    return obj;
}

void cli_json_point(cJSON *obj, const sgdstab_config *cfg)
{
    cli_json_number(obj, "lr", cfg->lr);
    cli_json_size(obj, "batch", cfg->batch);
    cJSON_AddStringToObject(obj, "sampling",
                            sgdstab_sampling_name(cfg->sampling));
}

void cli_json_optimizer(cJSON *obj, const sgdstab_config *cfg)
{
    const sgdstab_optimizer *op = &cfg->optimizer;
    cJSON *o = cJSON_AddObjectToObject(obj, "optimizer");
    char words[160];
    sgdstab_optimizer_describe(op, words, sizeof words);
    cJSON_AddStringToObject(o, "kind", sgdstab_optimizer_name(op->kind));
    cJSON_AddStringToObject(o, "description", words);
    static const char *const keys[] = {"momentum", "dampening",
                                       "weight_decay", "beta2", "eps"};
    const double values[] = {op->momentum, op->dampening, op->weight_decay,
                             op->beta2, op->eps};
    cli_json_numbers(o, 5, keys, values);
    cJSON_AddBoolToObject(o, "nesterov", op->nesterov);
    cJSON_AddBoolToObject(o, "preconditioned",
                          sgdstab_optimizer_preconditioned(op));
}

void cli_print_optimizer(const cli_args *a, const sgdstab_config *cfg)
{
    const sgdstab_optimizer *op = &cfg->optimizer;
    if (op->kind == SGDSTAB_OPTIMIZER_SGD && op->momentum == 0 &&
        op->weight_decay == 0 && !sgdstab_optimizer_preconditioned(op))
        return;
    char words[160];
    sgdstab_optimizer_describe(op, words, sizeof words);
    printf("optimizer: %s%s\n", words,
           a->optimizer_from_file ? " (from the file's metadata)" : "");
}

void cli_json_hessian(cJSON *obj, double sharpness, double frobenius,
                      double trace)
{
    cli_json_number(obj, "sharpness", sharpness);
    cli_json_number(obj, "hessian_frobenius", frobenius);
    cli_json_number(obj, "hessian_trace", trace);
}

void cli_json_theory(cJSON *obj, const sgdstab_theory *th)
{
    cli_json_hessian(obj, th->sharpness, th->hessian_frobenius,
                     th->hessian_trace);
    cli_json_number(obj, "nonuniformity", th->nonuniformity);
    cli_json_number(obj, "alignment_min", th->alignment_min);
}

int cli_json_print(cJSON *obj)
{
    char *text = cJSON_Print(obj);
    cJSON_Delete(obj);
    return cli_json_print_text(text);
}

int cli_json_print_text(char *text)
{
    if (!text)
        return cli_data_error(NULL, NULL, "out of memory printing JSON");
    puts(text);
    free(text);
    return EXIT_OK;
}

cJSON *cli_json_verbatim(const char *text, unsigned depth)
{
    size_t lines = 0, len = 0;
    for (; text[len]; len++)
        lines += text[len] == '\n';
    char *nested = malloc(len + lines * depth + 1), *out = nested;
    if (!nested)
        return NULL;
    for (const char *c = text; *c; c++) {
        *out++ = *c;
        if (*c == '\n')
            for (unsigned i = 0; i < depth; i++)
                *out++ = '\t';
    }
    *out = '\0';
    cJSON *item = cJSON_CreateRaw(nested);
    free(nested);
    return item;
}

int cli_finish_stdout(int status)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_data_error(NULL, NULL, "error writing to standard output");
        return status ? status : EXIT_DATA;
    }
    return status;
}

void cli_csv_number(FILE *f, double value, const char *sep)
{
    if (isnan(value))
        fprintf(f, "nan%s", sep);
    else if (isinf(value))
        fprintf(f, "%sinf%s", value < 0 ? "-" : "", sep);
    else
        fprintf(f, "%.17g%s", value, sep);
}

sgdstab_outfile *cli_csv_open(const char *path)
{
    sgdstab_error err;
    sgdstab_outfile *of = sgdstab_outfile_open(path, &err);
    if (!of)
        cli_report(&err);
    return of;
}

int cli_csv_commit(sgdstab_outfile *of)
{
    sgdstab_error err;
    return sgdstab_outfile_commit(of, &err) ? cli_report(&err) : EXIT_OK;
}

/* Would writing path replace a file (a regular one, or a new name)?
 * Devices, FIFOs and aliases of descriptors are written in place and may
 * well be shared (--csv /dev/null --boundary-csv /dev/null). */
static int replaces(const char *path)
{
    struct stat st;
    return stat(path, &st) != 0 || S_ISREG(st.st_mode);
}

int cli_check_outputs(const cli_args *a, const char *input,
                      const char *const *outputs, size_t no)
{
    const char *cmd = a->cmd, *inputs[] = {a->file, a->hessian, input};
    size_t ni = sizeof inputs / sizeof inputs[0];
    for (size_t i = 0; i < no; i++) {
        const char *out = outputs[i];
        if (!out || !replaces(out))
            continue;
        for (size_t j = 0; j < ni; j++)
            if (inputs[j] && sgdstab_same_file(out, inputs[j]))
                return cli_usage_error(cmd, "output %s is the input file %s",
                                       out, inputs[j]);
        for (size_t j = 0; j < i; j++)
            if (outputs[j] && sgdstab_same_file(out, outputs[j]))
                return cli_usage_error(cmd, "outputs %s and %s are the same "
                                       "file", outputs[j], out);
    }
    return EXIT_OK;
}

int cli_outputs_commit(void)
{
    sgdstab_error err;
    return sgdstab_outfile_group_commit(&err) ? cli_report(&err) : EXIT_OK;
}

void cli_json_loss(cJSON *obj, const cli_args *a, const sgdstab_problem *prob,
                   double scale)
{
    /* a->loss also says where the convention came from; JSON names it. */
    const char *name = a->loss == a->loss_text ? prob->provenance.loss
                                               : a->loss;
    cJSON_AddStringToObject(obj, "loss", name);
    cli_json_number(obj, "loss_scale", scale);
}

/* ------------------------------------------------------------ provenance */

/* What is analyzed at a minimum that does not interpolate. */
static const char *surrogate(const sgdstab_problem *prob)
{
    return prob->H ? "H is used, without the additive noise of the nonzero "
                     "per-sample gradients"
                   : "the analysis is of the Gauss-Newton surrogate G = "
                     "(1/n) sum J_i'J_i";
}

void cli_note_interpolation(const char *cmd, const char *file,
                            int residual_noise, const sgdstab_problem *prob)
{
    const sgdstab_provenance *pv = &prob->provenance;
    if (sgdstab_provenance_interpolating(pv) != 0)
        return;
    char what[256];
    if (prob->R && residual_noise)
        snprintf(what, sizeof what, "the gradient noise of its residuals R "
                 "is included");
    else
        snprintf(what, sizeof what, "the noise model assumes interpolation, "
                 "so %s%s", surrogate(prob),
                 prob->R ? "; 'sgdstab stationary' adds the gradient noise "
                           "of its residuals R" : "");
    cli_note(cmd, "%s is not an interpolating minimum: its RMS training "
             "residual %.3g is %.3g%% of the RMS target %.3g (interpolation "
             "means at most %g%%); %s", file, pv->residual_rms,
            100 * sgdstab_provenance_relative_residual(pv), pv->target_rms,
            100 * SGDSTAB_INTERPOLATION_RTOL, what);
}

void cli_json_provenance(cJSON *obj, const sgdstab_problem *prob)
{
    const sgdstab_provenance *pv = &prob->provenance;
    cli_json_number(obj, "residual_rms", pv->residual_rms);
    cli_json_number(obj, "max_residual", pv->max_residual);
    cli_json_number(obj, "target_rms", pv->target_rms);
    int interpolating = sgdstab_provenance_interpolating(pv);
    if (interpolating < 0)
        cJSON_AddNullToObject(obj, "interpolating");
    else
        cJSON_AddBoolToObject(obj, "interpolating", interpolating);
}

void cli_print_residual(const char *label, const sgdstab_problem *prob)
{
    const sgdstab_provenance *pv = &prob->provenance;
    int rms = !isnan(pv->residual_rms), max = !isnan(pv->max_residual);
    if (!rms && !max)
        return;
    printf("%straining residual", label);
    if (rms)
        printf(" RMS %.3g", pv->residual_rms);
    if (rms && !isnan(pv->target_rms))
        printf(" (%.2g%% of the RMS target %.3g)",
               100 * sgdstab_provenance_relative_residual(pv),
               pv->target_rms);
    if (max)
        printf("%s largest %.3g", rms ? "," : "", pv->max_residual);
    switch (sgdstab_provenance_interpolating(pv)) {
    case 1:
        printf(": an interpolating minimum\n");
        break;
    case 0:
        printf(": not an interpolating minimum, so %s\n", surrogate(prob));
        break;
    default:
        printf(": interpolation unknown (the metadata lacks residual_rms or "
               "target_rms)\n");
    }
}
