/* sgdstab — output files that appear whole or not at all.
 *
 * Output is written to a temporary file beside the destination and renamed
 * over it only by sgdstab_outfile_commit, so an error, a crash or Ctrl-C never
 * leaves a half-written result under the requested name.  Temporary files of
 * outfiles still open when the process receives SIGINT/SIGTERM are removed
 * by sgdstab_outfile_cleanup, which is async-signal-safe. */
#ifndef SGDSTAB_OUTFILE_H
#define SGDSTAB_OUTFILE_H

#include <stdio.h>
#include "sgdstab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sgdstab_outfile sgdstab_outfile;

/* Create the temporary file for path; returns NULL and fills err on error.
 * It gets the mode a plain open() would give the file itself (0666 less the
 * umask, or the directory's default ACL), which the rename keeps. */
sgdstab_outfile *sgdstab_outfile_open(const char *path, sgdstab_error *err);

/* The stream to write to. */
FILE *sgdstab_outfile_stream(sgdstab_outfile *f);

/* The temporary file's name, for output written by another program. */
const char *sgdstab_outfile_temp_path(const sgdstab_outfile *f);

/* Flush, close and rename into place; frees f in every case.  A write error
 * seen at any point is reported here and the temporary file removed. */
int sgdstab_outfile_commit(sgdstab_outfile *f, sgdstab_error *err);

/* Close and remove the temporary file; frees f.  NULL-safe. */
void sgdstab_outfile_abort(sgdstab_outfile *f);

/* Remove the temporary files of all outfiles still open (for signal
 * handlers; async-signal-safe). */
void sgdstab_outfile_cleanup(void);

#ifdef __cplusplus
}
#endif

#endif
