/* sgdstab — command-line entry point: dispatch to one file per subcommand. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "sgdstab/outfile.h"
#include "sgdstab_config.h"

static const cli_command COMMANDS[] = {
    {"info", "describe a problem file: shapes, rank of J, spectrum of G", cmd_info},
    {"analyze", "stable or not at (eta, B): spectral radius, escape rate, eta*",
     cmd_analyze},
    {"critical", "the critical learning rate eta*(B) for one or many B",
     cmd_critical},
    {"evolve", "E|delta_t|^2 and E L_t step by step, exactly", cmd_evolve},
    {"verify", "the theory's bounds and conditions beside the exact answer",
     cmd_verify},
    {"phase", "stability phase diagram over (B, eta), with a picture",
     cmd_phase},
    {"simulate", "Monte Carlo SGD trajectories: moments, growth rate, exit "
     "times", cmd_simulate},
    {"run", "an experiment spec: sweeps of synthetic minima, tables, report",
     cmd_run},
    {"synth", "write an exact minimum of a synthetic model family (.npz)",
     cmd_synth},
    {"bench", "speed on a random problem, against this machine's DGEMM",
     cmd_bench},
};
#define NCOMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: sgdstab COMMAND [OPTIONS] FILE\n"
            "       sgdstab --help | --version\n"
            "\n"
            "Exact linear stability of SGD at a minimum: does SGD with learning\n"
            "rate eta and batch size B stay, and how fast does it escape?\n"
            "\n"
            "Commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(out,
            "\n"
            "FILE is a .npy with the per-sample output Jacobian J, shape (n, p)\n"
            "or (n, k, p), or a .npz with arrays 'J' and optionally 'H' (p, p).\n"
            "'sgdstab COMMAND --help' describes each command.\n");
}

/* On SIGINT/SIGTERM remove partial outputs, then die of the same signal. */
static void on_signal(int sig)
{
    sgdstab_outfile_cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

int main(int argc, char **argv)
{
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return cli_finish_stdout(EXIT_OK);
    }
    if (!strcmp(cmd, "--version")) {
        printf("sgdstab %s\n", SGDSTAB_VERSION);
        return cli_finish_stdout(EXIT_OK);
    }
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(cmd, COMMANDS[i].name))
            return cli_finish_stdout(COMMANDS[i].run(argc - 1, argv + 1));
    fprintf(stderr, "sgdstab: unknown command '%s' (see 'sgdstab --help')\n", cmd);
    return EXIT_USAGE;
}
