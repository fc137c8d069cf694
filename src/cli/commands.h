/* The subcommands of the sgdstab command line, one file each; main.c
 * dispatches to them. */
#ifndef SGDSTAB_CLI_COMMANDS_H
#define SGDSTAB_CLI_COMMANDS_H

typedef struct {
    const char *name;
    const char *summary;  /* one line for `sgdstab --help` */
    int (*run)(int argc, char **argv);
} cli_command;

int cmd_info(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
int cmd_critical(int argc, char **argv);
int cmd_evolve(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_phase(int argc, char **argv);
int cmd_simulate(int argc, char **argv);
int cmd_stationary(int argc, char **argv);

#endif
