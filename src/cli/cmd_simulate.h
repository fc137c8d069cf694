/* `sgdstab simulate` in three files: cmd_simulate.c parses and checks the
 * options, shares what both modes print, and dispatches to the
 * trajectories (simulate_runs.c) or to the one-epoch map of --epoch and
 * --threshold (simulate_epoch.c). */
#ifndef SGDSTAB_CLI_CMD_SIMULATE_H
#define SGDSTAB_CLI_CMD_SIMULATE_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "options.h"
#include "session.h"
#include "sgdstab/config.h"
#include "sgdstab/simulate.h"

/* What the options ask for, in either mode. */
typedef struct {
    sgdstab_sim_options o;      /* o.config set once the session is open */
    const char *sampling_name;
    int compare, quiet, epoch, threshold;
} sim_request;

/* The trajectories: the checks of their options (after the common ones),
 * then R runs of --steps from --init (NULL: the default), printed. */
int simulate_runs(cli_args *a, sim_request *rq, size_t batch,
                  const char *init, const char *fit_text);

/* --epoch and --threshold: the estimated one-epoch map (epoch.h) beside
 * the exact engine's fresh-batch values, printed. */
int simulate_epoch(cli_args *a, sim_request *rq, size_t batch);

/* The JSON keys both modes start with: the problem and the run. */
cJSON *simulate_json_head(const cli_args *a, const cli_session *ses,
                          const sim_request *rq);

/* A work that takes minutes is announced, with a rough time, unless
 * --quiet. */
void simulate_note_work(const sim_request *rq, double flops);

/* The configuration of the exact engine beside a simulation: reshuffled
 * epochs have no per-step map, fresh batches without replacement stand in
 * for them. */
sgdstab_config simulate_fresh_batches(const sgdstab_config *cfg);

#endif
