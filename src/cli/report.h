/* The one printer of the command line's errors and notes: every line on
 * stderr but the progress bars is "sgdstab[ CMD]: [FILE: ]message", with
 * the file and the message escaped (cli_quote), since file names,
 * arguments and the keys and values of a spec are untrusted. */
#ifndef SGDSTAB_CLI_REPORT_H
#define SGDSTAB_CLI_REPORT_H

#include <stdarg.h>
#include <stddef.h>

#include "exit_status.h"
#include "sgdstab/status.h"

/* Untrusted text (an argument, a file name, a spec's string) made safe to
 * quote in a one-line message: control bytes become \n, \t, \r or \xHH,
 * and so do DEL, bytes of invalid UTF-8, C1 controls and the line
 * separators and bidi overrides; text that does not fit in size bytes ends
 * in "...".  Returns buf, e.g. for a "%s" (CLI_QUOTE_SIZE suits a message). */
#define CLI_QUOTE_SIZE 256
const char *cli_quote(const char *s, char *buf, size_t size);

/* The line, cmd and file left out when NULL. */
void cli_error_line(const char *cmd, const char *file, const char *fmt,
                    va_list ap);

/* The line, then status (exit_status.h).  A usage error (EXIT_USAGE) ends
 * in " (see 'sgdstab CMD --help')" and is silent when cmd is NULL (callers
 * that word the message themselves pass NULL down to the parsers). */
int cli_fail(int status, const char *cmd, const char *file, const char *fmt,
             ...) __attribute__((format(printf, 4, 5)));
#define cli_data_error(cmd, file, ...) \
    cli_fail(EXIT_DATA, cmd, file, __VA_ARGS__)
#define cli_usage_error(cmd, ...) cli_fail(EXIT_USAGE, cmd, NULL, __VA_ARGS__)

/* "sgdstab CMD: note: message": not an error, said once on stderr. */
void cli_note(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A library error as one line; EXIT_DATA. */
int cli_report(const sgdstab_error *err);

/* A library error while loading, factorizing or computing on file, as one
 * line that names the file (and says "out of memory" when that is the
 * cause); returns EXIT_DATA, or exits at once on SGDSTAB_ENOMEM. */
int cli_report_file(const char *file, const sgdstab_error *err);

/* The same as a line of cmd about the file spec that refers to file:
 * "sgdstab CMD: SPEC: CONTEXT" then the line about file as above. */
int cli_report_file_in(const char *cmd, const char *spec, const char *context,
                       const char *file, const sgdstab_error *err);

#endif
