/* Pictures: a gnuplot script with the data inline (data blocks), piped to
 * gnuplot, which writes PNG (pngcairo) or SVG to the temporary file of an
 * outfile; the caller renames it into place only on success. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

extern char **environ;

int cli_plot_format(const char *path)
{
    size_t len = strlen(path);
    if (len > 4 && !strcmp(path + len - 4, ".png"))
        return 0;
    if (len > 4 && !strcmp(path + len - 4, ".svg"))
        return 1;
    return -1;
}

int cli_plot_check(const char *cmd)
{
    const char *path = getenv("PATH");
    char buf[4096];
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t len = strcspn(p, ":");
        if (len > 0 && len + sizeof "/gnuplot" < sizeof buf) {
            memcpy(buf, p, len);
            memcpy(buf + len, "/gnuplot", sizeof "/gnuplot");
            if (access(buf, X_OK) == 0)
                return EXIT_OK;
        }
        p += len + (p[len] == ':');
    }
    return cli_usage_error(cmd, "--plot needs gnuplot, which is not on PATH "
                           "(Debian: apt-get install gnuplot-nox)");
}

int cli_gnuplot(const char *cmd, const char *path, sgdstab_outfile *of,
                int width, int height, void (*script)(FILE *f, void *ctx),
                void *ctx)
{
    int svg = cli_plot_format(path);
    const char *tmp = sgdstab_outfile_temp_path(of);
    /* Quotes in the temporary name would end gnuplot's string early. */
    if (strchr(tmp, '\'') || strchr(tmp, '\n'))
        return cli_usage_error(cmd, "--plot: %s: quotes or newlines in the "
                               "file name are not supported", path);
    FILE *log = tmpfile();
    int pipefd[2] = {-1, -1};
    pid_t pid = -1;
    int status = EXIT_DATA;
    posix_spawn_file_actions_t fa;
    int have_fa = 0;
    if (!log || pipe(pipefd) != 0)
        goto fail;
    if (posix_spawn_file_actions_init(&fa) != 0)
        goto fail;
    have_fa = 1;
    posix_spawn_file_actions_adddup2(&fa, pipefd[0], STDIN_FILENO);
    posix_spawn_file_actions_addclose(&fa, pipefd[1]);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY,
                                     0);
    posix_spawn_file_actions_adddup2(&fa, fileno(log), STDERR_FILENO);
    char *argv[] = {"gnuplot", NULL};
    if (posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ) != 0) {
        pid = -1;
        goto fail;
    }
    close(pipefd[0]);
    pipefd[0] = -1;
    FILE *in = fdopen(pipefd[1], "w");
    if (!in)
        goto fail;
    pipefd[1] = -1;
    /* gnuplot stopping early must not kill us with SIGPIPE. */
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    fprintf(in, "set encoding utf8\n");
    if (svg)
        fprintf(in, "set terminal svg size %d,%d fixed enhanced "
                "font 'sans,12' background rgb 'white'\n", width, height);
    else
        fprintf(in, "set terminal pngcairo size %d,%d enhanced "
                "font 'sans,11' background rgb 'white'\n", width, height);
    fprintf(in, "set output '%s'\n", tmp);
    script(in, ctx);
    fprintf(in, "set output\n");
    fclose(in);
    signal(SIGPIPE, old);
    int ws;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
        ;
    pid = -1;
    if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0) {
        /* gnuplot reports some errors without failing: anything it said
         * is an error here; its last line names the problem. */
        char line[512] = "", last[512] = "";
        rewind(log);
        while (fgets(line, sizeof line, log))
            if (strspn(line, " \t\n") != strlen(line))
                memcpy(last, line, sizeof last);
        memcpy(line, last, sizeof line);
        if (line[0] == '\0') {
            status = EXIT_OK;
            goto done;
        }
        line[strcspn(line, "\n")] = '\0';
        fprintf(stderr, "sgdstab %s: %s: gnuplot: %s\n", cmd, path, line);
        goto done;
    }
fail:
    fprintf(stderr, "sgdstab %s: %s: gnuplot failed to draw the picture\n",
            cmd, path);
done:
    if (have_fa)
        posix_spawn_file_actions_destroy(&fa);
    if (pipefd[0] >= 0)
        close(pipefd[0]);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    if (log)
        fclose(log);
    return status;
}

