/* The output files of `sgdstab run`, written from run_results: the CSV
 * tables (tables.c), summary.json (summary.c), report.md (report.c) and
 * the Monte Carlo pictures (pictures.c). */
#ifndef SGDSTAB_CLI_RUN_WRITE_H
#define SGDSTAB_CLI_RUN_WRITE_H

#include "results.h"

/* Every file of a run but the phase diagrams' (case.c writes those); NULL
 * where the spec asks for no such output. */
typedef struct {
    sgdstab_outfile *cases, *critical, *verify, *summary, *report;
    sgdstab_outfile *epoch_threshold, *epoch_rate, *epoch_png;
    sgdstab_outfile *exit_points, *exit_fit, *exit_png;
    char epoch_png_path[4200], exit_png_path[4200];
} run_files;

/* The values of critical.csv's columns after batch, named as
 * summary.json's keys. */
#define RUN_CRITICAL_COLUMNS 8
extern const char *const RUN_CRITICAL_NAMES[RUN_CRITICAL_COLUMNS];
void run_critical_values(const run_critical_row *row,
                         double vals[RUN_CRITICAL_COLUMNS]);

/* cases.csv, critical.csv, verify.csv and the Monte Carlo tables. */
void run_write_tables(const run_spec *sp, const run_results *res,
                      run_files *files);

/* summary.json: what was run (path, command, the spec itself) and every
 * result.  EXIT_OK, or EXIT_DATA after a message. */
int run_write_summary(const run_spec *sp, const run_context *ctx,
                      const run_results *res, const char *command,
                      run_files *files);

/* report.md: what was run, how to run it again, and tables. */
void run_write_report(const run_spec *sp, const run_context *ctx,
                      const run_results *res, const char *command, FILE *f);

/* epoch.png and exit.png (width × height pixels; 0: their defaults). */
int run_draw_pictures(const run_spec *sp, const run_results *res,
                      run_files *files, int width, int height);

#endif
