/* `sgdstab run`'s experiment, as the command calls it: the spec's cases
 * computed, then every output written from their results and installed
 * together (or none of them). */
#ifndef SGDSTAB_CLI_RUN_RUN_H
#define SGDSTAB_CLI_RUN_RUN_H

#include "results.h"

/* Run the validated spec sp into ctx->dir (created if missing); command is
 * the one the report and summary.json give to regenerate it, progress asks
 * for a progress line on stderr.  *bugs counts failed theorem checks and
 * cases whose η*(B) is not non-decreasing (a bug in sgdstab; the outputs
 * are written).  EXIT_OK, or EXIT_DATA after a message. */
int run_experiment(const run_spec *sp, const run_context *ctx,
                   const char *command, int progress, size_t *bugs);

#endif
