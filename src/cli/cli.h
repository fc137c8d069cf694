/* Transitional: every header of the command line at once, for the files
 * not yet including the headers they use (cmd_run.c, run_mc.c and the fuzz
 * targets).  To be removed once they do. */
#ifndef SGDSTAB_CLI_H
#define SGDSTAB_CLI_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "commands.h"
#include "exit_status.h"
#include "options.h"
#include "output.h"
#include "phase_output.h"
#include "plot.h"
#include "progress.h"
#include "report.h"
#include "session.h"
#include "sgdstab/moments.h"

/* `run`'s spec validator (cmd_run.c), for the fuzz target: EXIT_OK, or
 * EXIT_DATA after one error line. */
int cli_run_spec_check(const char *file, const char *text, size_t size);

#endif
