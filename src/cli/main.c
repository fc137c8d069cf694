/* sgdstab — command-line entry point: dispatch to one file per subcommand. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "exit_status.h"
#include "output.h"
#include "plot.h"
#include "report.h"
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
    {"stationary", "the stationary state where the minimum does not "
     "interpolate or labels are noisy", cmd_stationary},
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

/* The signals that end the process by default and can be caught: each one
 * removes partial outputs first. */
static const int TERMINATING[] = {SIGHUP, SIGINT, SIGQUIT, SIGPIPE, SIGALRM,
                                  SIGTERM, SIGUSR1, SIGUSR2, SIGXCPU, SIGXFSZ,
                                  SIGVTALRM, SIGPROF, SIGPOLL};

/* Remove partial outputs, then die of the same signal (async-signal-safe;
 * while outputs are being installed, outfile.c raises it again after). */
static void on_signal(int sig)
{
    cli_plot_stop();
    if (!sgdstab_outfile_signal(sig))
        return;
    signal(sig, SIG_DFL);
    raise(sig);
}

static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof TERMINATING / sizeof TERMINATING[0]; i++)
        sigaddset(&sa.sa_mask, TERMINATING[i]);
    for (size_t i = 0; i < sizeof TERMINATING / sizeof TERMINATING[0]; i++) {
        struct sigaction old;
        /* A signal ignored by whoever started us stays ignored (nohup). */
        if (sigaction(TERMINATING[i], NULL, &old) == 0 &&
            old.sa_handler != SIG_IGN)
            sigaction(TERMINATING[i], &sa, NULL);
    }
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SGDSTAB_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SGDSTAB_SANITIZED 1
#endif

/* End the process with status, outputs flushed, without exit()'s shutdown
 * of OpenBLAS: a worker thread that could not get its buffer (under a tight
 * `ulimit -v`) retries forever, and exit() would wait for it.  Under
 * AddressSanitizer, return instead, so that LeakSanitizer runs at exit. */
static int leave(int status)
{
    status = cli_finish_stdout(status);
#ifndef SGDSTAB_SANITIZED
    fflush(stderr);
    _exit(status);
#endif
    return status;
}

int main(int argc, char **argv)
{
    catch_signals();
    if (argc < 2) {
        usage(stderr);
        return leave(EXIT_USAGE);
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return leave(EXIT_OK);
    }
    if (!strcmp(cmd, "--version")) {
        printf("sgdstab %s\n", SGDSTAB_VERSION);
        return leave(EXIT_OK);
    }
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(cmd, COMMANDS[i].name))
            return leave(COMMANDS[i].run(argc - 1, argv + 1));
    char q[CLI_QUOTE_SIZE];
    cli_data_error(NULL, NULL, "unknown command '%s' (see 'sgdstab --help')",
                   cli_quote(cmd, q, sizeof q));
    return leave(EXIT_USAGE);
}
