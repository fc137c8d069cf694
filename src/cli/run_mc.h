/* The Monte Carlo experiments of `sgdstab run` specs (cmd_run.c):
 *
 *   "epoch": thresholds and escape rates of the one-epoch map (epoch.h) for
 *            several samplings — random reshuffling beside fresh batches —
 *            against the exact η*(B) and ln ρ of the spec's sampling;
 *   "exit":  first-exit times of clipped SGD with heavy-tailed injected
 *            noise (simulate.h) over learning rates, and the log-log slope
 *            of the exit time in 1/η against Wang–Oh–Rhee's prediction
 *            1 + (α − 1)·⌈R/b⌉.
 *
 * Tables, pictures and summary entries are written beside the spec's other
 * outputs, and committed with them. */
#ifndef SGDSTAB_CLI_RUN_MC_H
#define SGDSTAB_CLI_RUN_MC_H

#include "cli.h"

typedef struct run_mc run_mc;

/* A JSON learning-rate list: "A:B:N[:log]", "a,b,c" or an array of
 * numbers, as for 'sgdstab phase --lr'.  0 or −1 (bad value). */
int run_parse_lrs(const cJSON *v, double **list, size_t *count,
                  int *log_spaced);

/* Parse the "epoch" and "exit" objects of the spec at path (either may be
 * NULL); *out is NULL when both are.  sampling is the spec's.  Errors are
 * printed naming the spec and the key; EXIT_DATA. */
int run_mc_parse(const char *path, const cJSON *epoch, const cJSON *exit,
                 sgdstab_sampling sampling, run_mc **out);

/* The output files in dir; axes_header is the CSV prefix of a case row
 * ("case,KEY,...,"). */
int run_mc_open(run_mc *mc, const char *dir, const char *axes_header);

/* The experiments on case c (axes: its CSV prefix, label: its name in
 * pictures), at the spec's batch sizes with their exact η*(B); entries
 * "epoch" and "exit" are added to the case's summary object jc. */
int run_mc_case(run_mc *mc, size_t c, const char *axes, const char *label,
                const cli_session *ses, const size_t *batches,
                const sgdstab_critical *cr, size_t nb, cJSON *jc);

/* Draw the pictures (width × height pixels; 0: their defaults), then
 * commit every file (status 0) or remove them all (status ≠ 0); returns
 * the resulting status. */
int run_mc_finish(run_mc *mc, int status, int width, int height);

/* The report's sections on the experiments. */
void run_mc_report(const run_mc *mc, FILE *f);

void run_mc_free(run_mc *mc);

#endif
