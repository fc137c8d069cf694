/* The exit statuses of every sgdstab subcommand, with what each means; the
 * --help texts that list them quote these meanings. */
#ifndef SGDSTAB_CLI_EXIT_STATUS_H
#define SGDSTAB_CLI_EXIT_STATUS_H

enum {
    EXIT_OK = 0,
    EXIT_DATA = 1,
    EXIT_USAGE = 2,
    EXIT_THEOREM_FAILS = 3
};

#define CLI_HELP_EXIT_HEAD "Exit status:\n"
#define CLI_HELP_EXIT_OK "  0  success (whatever the verdict)\n"
#define CLI_HELP_EXIT_DATA \
    "  1  bad input, or a computation or an output that failed (one line\n" \
    "     on stderr)\n"
#define CLI_HELP_EXIT_USAGE "  2  a usage error (one line on stderr)\n"
#define CLI_HELP_EXIT_THEOREM_FAILS \
    "  3  a theorem check failed on the input: a bug in sgdstab, reported\n" \
    "     on stderr\n"

/* The statuses of a subcommand that never checks a theorem. */
#define CLI_HELP_EXIT_STATUSES \
    CLI_HELP_EXIT_HEAD CLI_HELP_EXIT_OK CLI_HELP_EXIT_DATA CLI_HELP_EXIT_USAGE

#endif
