/* sgdstab — output files that appear whole or not at all.
 *
 * Output is written to a temporary file beside the destination and renamed
 * over it only by sgdstab_outfile_commit, so an error, a crash or Ctrl-C never
 * leaves a half-written result under the requested name.  Temporary files of
 * outfiles still open when the process receives a terminating signal are
 * removed by sgdstab_outfile_cleanup, which is async-signal-safe.
 *
 * A path naming something other than a regular file or a directory (a
 * device, a FIFO, /dev/stdout, /proc/self/fd/N) is written directly: it is
 * a stream, not a file to replace.  A directory is refused.
 *
 * Several outputs of one command form a group (sgdstab_outfile_group_*):
 * inside a group, committing an outfile only finishes writing it, and the
 * group's commit installs every one of them, or none. */
#ifndef SGDSTAB_OUTFILE_H
#define SGDSTAB_OUTFILE_H

#include <stdio.h>
#include "sgdstab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sgdstab_outfile sgdstab_outfile;

/* Create the temporary file for path (or open a non-regular path); returns NULL and fills err on error.
 * It gets the mode a plain open() would give the file itself (0666 less the
 * umask, or the directory's default ACL), which the rename keeps. */
sgdstab_outfile *sgdstab_outfile_open(const char *path, sgdstab_error *err);

/* The stream to write to. */
FILE *sgdstab_outfile_stream(sgdstab_outfile *f);

/* The temporary file's name, for output written by another program. */
const char *sgdstab_outfile_temp_path(const sgdstab_outfile *f);

/* Flush, close and rename into place; frees f in every case.  A write error
 * seen at any point is reported here and the temporary file removed.  Inside
 * a group the rename waits for sgdstab_outfile_group_commit. */
int sgdstab_outfile_commit(sgdstab_outfile *f, sgdstab_error *err);

/* Close and remove the temporary file; frees f.  NULL-safe. */
void sgdstab_outfile_abort(sgdstab_outfile *f);

/* Remove the temporary files of all outfiles still open or waiting in a
 * group (for signal handlers; async-signal-safe). */
void sgdstab_outfile_cleanup(void);

/* For a handler of the terminating signal sig (async-signal-safe): 1 after
 * removing the temporary files (the handler then dies of sig); 0 while a
 * group is being installed, which must not be cut short: sig is raised
 * again once the installation is over. */
int sgdstab_outfile_signal(int sig);

/* Start a group: outfiles committed from now on wait for the group's
 * commit.  Groups nest; only the outermost commit installs. */
void sgdstab_outfile_group_begin(void);

/* Install every waiting outfile: first check every destination (not a
 * directory, its directory still there), then rename each temporary file
 * over it, keeping a hard link to each old file until all renames are done,
 * so that a failed rename puts back the files already replaced.  On error
 * nothing is installed, the temporary files are removed and err names the
 * file. */
int sgdstab_outfile_group_commit(sgdstab_error *err);

/* Remove the temporary files of every waiting outfile and end the group
 * (an inner abort ends the outer groups too: one failure fails them all). */
void sgdstab_outfile_group_abort(void);

/* Do paths a and b name the same file: the same device and inode when both
 * exist, else the same normalized path (directory resolved by realpath)? */
int sgdstab_same_file(const char *a, const char *b);

#ifdef __cplusplus
}
#endif

#endif
