/* Where the cases of a run spec come from: each synthesized from "family"
 * and "params", or every one the spec's problem file, loaded and
 * factorized once before anything is written (a bad file leaves no output
 * behind), with the loss convention and optimizer the per-command tools
 * take from the file. */
#include <stdlib.h>
#include <string.h>

#include "../exit_status.h"
#include "../output.h"
#include "../report.h"
#include "results.h"
#include "sgdstab/plan.h"

/* An error of loading or factorizing the file, under the key 'problem'. */
static int file_error(const run_spec *sp, const sgdstab_error *err)
{
    return cli_report_file_in("run", sp->path, "key 'problem': ",
                              sp->problem_path, err);
}

/* Without "optimizer" or a momentum sweep, the optimizer of the file's
 * meta.json, as the commands take it: SGD's settings only, since a run
 * takes no second moment. */
static int file_optimizer(const run_spec *sp, run_source *src)
{
    const sgdstab_provenance *pv = &src->prob->provenance;
    const sgdstab_optimizer *o = &pv->optimizer;
    if (sp->optimizer_given || !pv->has_optimizer)
        return EXIT_OK;
    /* pv's SGD with a second moment (the member V) is RMSprop */
    if (o->kind != SGDSTAB_OPTIMIZER_SGD || pv->preconditioned)
        return run_spec_error(sp, "key 'problem': %s: its meta.json's "
                              "optimizer is %s, whose second moment a run "
                              "does not take: give the spec an 'optimizer' "
                              "(SGD's settings), or use the commands",
                              sp->problem_path,
                              o->kind == SGDSTAB_OPTIMIZER_SGD
                                  ? "RMSprop" : sgdstab_optimizer_title(o));
    src->file_optimizer = 1;
    src->optimizer = *o;
    if (o->momentum == 0 && o->weight_decay == 0)
        return EXIT_OK;
    return run_spec_plain_only(sp, "the momentum or weight decay of the "
                               "optimizer in the file's meta.json");
}

/* What the spec asks of the loaded file: its optimizer, batch sizes it
 * has samples for, and p for the noise of "exit". */
static int check_file(const run_spec *sp, run_source *src)
{
    size_t *batches, nb;
    int st = file_optimizer(sp, src);
    if (st || (st = run_spec_batches(sp, src->prob->n, &batches, &nb)))
        return st;
    free(batches);
    if (sp->exit.on && !src->prob->p)
        return run_spec_error(sp, "key 'exit': %s: noise injected in every "
                              "direction needs the parameter count p, which "
                              "this Gram matrix's meta.json does not give "
                              "(set 'problem_params')", sp->problem_path);
    return EXIT_OK;
}

int run_source_open(const run_spec *sp, run_source *src)
{
    memset(src, 0, sizeof *src);
    src->loss = sp->loss;
    src->loss_name = sp->loss_name;
    if (!sp->problem)
        return EXIT_OK;
    sgdstab_error err;
    sgdstab_load_options lo = {0, 0, sp->problem_params};
    sgdstab_config plain;
    sgdstab_config_init(&plain);
    if (sgdstab_problem_load(sp->problem_path, &lo, &src->prob, &err))
        return file_error(sp, &err);
    int st = check_file(sp, src);
    if (st)
        return st;
    if (sgdstab_reduce_for(src->prob, NULL, &plain, &src->red, &err))
        return file_error(sp, &err);
    cli_note_interpolation("run", sp->problem_path, 0, src->prob);
    if (!cJSON_GetObjectItemCaseSensitive(sp->root, "loss"))
        src->loss_name = cli_file_loss(src->prob, src->loss_text,
                                       sizeof src->loss_text, &src->loss);
    return EXIT_OK;
}

void run_source_close(run_source *src)
{
    sgdstab_reduced_free(src->red);
    sgdstab_problem_free(src->prob);
    src->red = NULL;
    src->prob = NULL;
}
