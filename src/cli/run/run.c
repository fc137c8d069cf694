#include "../report.h"
#include "run.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "write.h"
#include "../exit_status.h"
#include "../output.h"

/* mkdir -p. */
static int make_dirs(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return -1;
    for (char *c = path + 1;; c++) {
        if (*c == '/' || *c == '\0') {
            char keep = *c;
            *c = '\0';
            if (mkdir(path, 0777) && errno != EEXIST)
                return -1;
            *c = keep;
            if (!keep)
                break;
        }
    }
    struct stat st;
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

/* dir/name, opened as a temporary file; path_out (if not NULL) receives
 * the path. */
static sgdstab_outfile *open_out(const char *dir, const char *name,
                                 char *path_out)
{
    char path[4200];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        cli_data_error("run", NULL, "output directory name too long");
        return NULL;
    }
    if (path_out)
        memcpy(path_out, path, sizeof path);
    return cli_csv_open(path);
}

/* Every file the spec asks for, opened before any work so that a bad
 * directory fails at once. */
static int open_files(const run_spec *sp, const char *dir, run_files *fs)
{
    int verify = sp->nlr + sp->nfactor > 0;
    if (!(fs->cases = open_out(dir, "cases.csv", NULL)) ||
        !(fs->critical = open_out(dir, "critical.csv", NULL)) ||
        !(fs->report = open_out(dir, "report.md", NULL)) ||
        (verify && !(fs->verify = open_out(dir, "verify.csv", NULL))) ||
        !(fs->summary = open_out(dir, "summary.json", NULL)))
        return EXIT_DATA;
    if (sp->epoch.on &&
        (!(fs->epoch_threshold = open_out(dir, "epoch-threshold.csv",
                                          NULL)) ||
         !(fs->epoch_png = open_out(dir, "epoch.png", fs->epoch_png_path)) ||
         (sp->epoch.nfactor &&
          !(fs->epoch_rate = open_out(dir, "epoch-rate.csv", NULL)))))
        return EXIT_DATA;
    if (sp->exit.on &&
        (!(fs->exit_points = open_out(dir, "exit.csv", NULL)) ||
         !(fs->exit_fit = open_out(dir, "exit-fit.csv", NULL)) ||
         !(fs->exit_png = open_out(dir, "exit.png", fs->exit_png_path))))
        return EXIT_DATA;
    return EXIT_OK;
}

/* Commit every open file (status 0) or remove them all; the resulting
 * status. */
static int close_files(run_files *fs, int status)
{
    sgdstab_outfile **files[] = {
        &fs->summary, &fs->cases, &fs->critical, &fs->report, &fs->verify,
        &fs->epoch_rate, &fs->epoch_threshold, &fs->epoch_png,
        &fs->exit_points, &fs->exit_fit, &fs->exit_png};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (!*files[i])
            continue;
        if (status)
            sgdstab_outfile_abort(*files[i]);
        else if (cli_csv_commit(*files[i]))
            status = EXIT_DATA;
        *files[i] = NULL;
    }
    return status;
}

/* Every case, in order, into res (res->cases: sp->ncases of them). */
static int compute_cases(const run_spec *sp, const run_context *ctx,
                         run_results *res, int progress)
{
    if (!(res->cases = calloc(sp->ncases, sizeof *res->cases)))
        return run_spec_error(sp, "out of memory");
    int st = EXIT_OK;
    for (size_t c = 0; c < sp->ncases && !st; c++) {
        if (progress)
            fprintf(stderr, "\rsgdstab run: case %zu of %zu", c + 1,
                    sp->ncases);
        run_case_result *r = &res->cases[c];
        if ((st = run_case_compute(sp, ctx, c, r)))
            break;
        res->ncases++;
        res->not_monotone += !r->nondecreasing;
        for (size_t k = 0; k < r->nverify; k++)
            res->theorems_failed += r->verify[k].v.theorems_failed;
    }
    if (progress)
        fputc('\n', stderr);
    return st;
}

/* The outputs of the computed results: tables, report, summary and
 * pictures. */
static int write_outputs(const run_spec *sp, const run_context *ctx,
                         const run_results *res, const char *command,
                         run_files *fs)
{
    run_write_tables(sp, res, fs);
    run_write_report(sp, ctx, res, command,
                     sgdstab_outfile_stream(fs->report));
    int st = run_write_summary(sp, ctx, res, command, fs);
    return st ? st : run_draw_pictures(sp, res, fs, ctx->width, ctx->height);
}

/* run_experiment once the cases' source is open. */
static int run_cases(const run_spec *sp, const run_context *ctx,
                     const char *command, int progress, size_t *bugs)
{
    if (make_dirs(ctx->dir)) {
        return cli_data_error("run", ctx->dir, "cannot create the directory: "
                              "%s", strerror(errno));
    }
    /* Every file of the run, the cases' phase diagrams and pictures
     * included, is installed together at the very end, or none is. */
    sgdstab_outfile_group_begin();
    run_files fs;
    run_results res;
    memset(&fs, 0, sizeof fs);
    memset(&res, 0, sizeof res);
    int st = open_files(sp, ctx->dir, &fs);
    if (!st)
        st = compute_cases(sp, ctx, &res, progress);
    if (!st)
        st = write_outputs(sp, ctx, &res, command, &fs);
    st = close_files(&fs, st);
    if (!st)
        st = cli_outputs_commit();
    else
        sgdstab_outfile_group_abort();
    *bugs = res.theorems_failed + res.not_monotone;
    for (size_t c = 0; res.cases && c < sp->ncases; c++)
        run_case_result_free(&res.cases[c]);
    free(res.cases);
    return st;
}

int run_experiment(const run_spec *sp, const run_context *ctx,
                   const char *command, int progress, size_t *bugs)
{
    run_source src;
    run_context with = *ctx;
    with.source = &src;
    *bugs = 0;
    /* A problem file is read before the output directory is made. */
    int st = run_source_open(sp, &src);
    if (!st)
        st = run_cases(sp, &with, command, progress, bugs);
    run_source_close(&src);
    return st;
}
