/* Pictures: a gnuplot script with the data inline (data blocks), piped to
 * gnuplot, which writes PNG (pngcairo) or SVG to the temporary file of an
 * outfile; the caller renames it into place only on success. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exit_status.h"
#include "plot.h"
#include "report.h"
#include "sgdstab/outfile.h"

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

/* With SGDSTAB_PLOT_SCRIPT=DIR in the environment, a copy of every script
 * goes to DIR/NAME.gp (NAME: the picture's file name): for tests and for
 * adjusting a figure by hand.  Failing to write it is not an error. */
static void keep_script(const char *path, const char *text, size_t len)
{
    const char *dir = getenv("SGDSTAB_PLOT_SCRIPT");
    if (!dir || !*dir)
        return;
    const char *base = strrchr(path, '/');
    char name[4400];
    snprintf(name, sizeof name, "%s/%s.gp", dir, base ? base + 1 : path);
    FILE *f = fopen(name, "w");
    if (f) {
        fwrite(text, 1, len, f);
        fclose(f);
    }
}

/* The whole script, terminal and output included, in memory. */
static char *make_script(const char *tmp, int svg, int width, int height,
                         void (*script)(FILE *f, void *ctx), void *ctx,
                         size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f)
        return NULL;
    fprintf(f, "set encoding utf8\n");
    if (svg)
        fprintf(f, "set terminal svg size %d,%d fixed enhanced "
                "font 'sans,12' background rgb 'white'\n", width, height);
    else
        fprintf(f, "set terminal pngcairo size %d,%d enhanced "
                "font 'sans,11' background rgb 'white'\n", width, height);
    fprintf(f, "set output '%s'\n", tmp);
    script(f, ctx);
    fprintf(f, "set output\n");
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* gnuplot's last non-blank line on stderr (log), "" when it said nothing:
 * gnuplot reports some errors without failing, so anything it says is an
 * error here, and its last line names the problem. */
static void last_line(FILE *log, char *line, size_t size)
{
    char buf[512];
    line[0] = '\0';
    rewind(log);
    while (fgets(buf, sizeof buf, log))
        if (strspn(buf, " \t\n") != strlen(buf))
            snprintf(line, size, "%s", buf);
    line[strcspn(line, "\n")] = '\0';
}

/* Is file a whole picture: PNG from its signature to its IEND chunk, SVG
 * from "<?xml" or "<svg" to "</svg>"?  gnuplot exits 0 with a truncated
 * file when the disk fills up.  Output written in place to something
 * other than a regular file cannot be read back, and is not checked. */
static int picture_whole(const char *file, int svg)
{
    static const char png_head[] = "\x89PNG\r\n\x1a\n";
    static const char png_tail[] = "IEND\xae\x42\x60\x82";
    char head[8] = {0}, tail[16] = {0};
    struct stat st;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int whole = fstat(fd, &st) == 0 && !S_ISREG(st.st_mode);
    if (!whole && st.st_size >= 16 && pread(fd, head, 8, 0) == 8 &&
        pread(fd, tail, 16, st.st_size - 16) == 16) {
        /* SVG may end in white space after </svg> */
        size_t end = 16;
        while (end > 0 && strchr(" \t\r\n", tail[end - 1]))
            end--;
        whole = svg ? (!memcmp(head, "<?xml", 5) || !memcmp(head, "<svg", 4))
                      && end >= 6 && !memcmp(tail + end - 6, "</svg>", 6)
                    : !memcmp(head, png_head, 8) &&
                      !memcmp(tail + 8, png_tail, 8);
    }
    close(fd);
    return whole;
}

/* The gnuplot process running, if any, for cli_plot_stop. */
static volatile sig_atomic_t plot_child;

void cli_plot_stop(void)
{
    pid_t pid = (pid_t)plot_child;
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

/* Run gnuplot on the script text, its stderr into log; its wait status,
 * or −1 when it could not be started. */
static int run_gnuplot(const char *text, size_t len, FILE *log)
{
    int pipefd[2];
    if (pipe(pipefd) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    pid_t pid = -1;
    if (posix_spawn_file_actions_init(&fa) == 0) {
        posix_spawn_file_actions_adddup2(&fa, pipefd[0], STDIN_FILENO);
        posix_spawn_file_actions_addclose(&fa, pipefd[1]);
        posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null",
                                         O_WRONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, fileno(log), STDERR_FILENO);
        char *argv[] = {"gnuplot", NULL};
        if (posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ) != 0)
            pid = -1;
        posix_spawn_file_actions_destroy(&fa);
    }
    plot_child = pid > 0 ? pid : 0;
    close(pipefd[0]);
    FILE *in = pid > 0 ? fdopen(pipefd[1], "w") : NULL;
    if (!in) {
        close(pipefd[1]);
        if (pid > 0)
            waitpid(pid, NULL, 0);
        plot_child = 0;
        return -1;
    }
    /* gnuplot stopping early must not kill us with SIGPIPE. */
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    fwrite(text, 1, len, in);
    fclose(in);
    signal(SIGPIPE, old);
    int ws;
    int st = 0;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR) {
            st = -1;
            break;
        }
    plot_child = 0;
    return st ? st : ws;
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
    size_t len = 0;
    char *text = make_script(tmp, svg, width, height, script, ctx, &len);
    FILE *log = tmpfile();
    int ws = -1;
    if (text && log) {
        keep_script(path, text, len);
        ws = run_gnuplot(text, len, log);
    }
    char said[512] = "";
    if (log)
        last_line(log, said, sizeof said);
    int status = EXIT_DATA;
    if (ws == -1 || !WIFEXITED(ws))
        cli_data_error(cmd, path, "gnuplot failed to draw the picture%s%s",
                       said[0] ? ": " : "", said);
    else if (said[0])
        cli_data_error(cmd, path, "gnuplot: %s", said);
    else if (WEXITSTATUS(ws) != 0)
        cli_data_error(cmd, path, "gnuplot failed (exit status %d)",
                       WEXITSTATUS(ws));
    else if (!picture_whole(tmp, svg))
        cli_data_error(cmd, path,
                       "gnuplot wrote an incomplete picture (disk "
                       "full?)");
    else
        status = EXIT_OK;
    if (log)
        fclose(log);
    free(text);
    return status;
}

/* ------------------------------------------------ options and layout */

int cli_parse_plot_size(const char *cmd, const char *text, int *w, int *h)
{
    char *end;
    long a = strtol(text, &end, 10), b = 0;
    if (end != text && *end == ',') {
        char *e2;
        b = strtol(end + 1, &e2, 10);
        if (e2 != end + 1 && *e2 == '\0' && a >= 640 && a <= 4000 &&
            b >= 480 && b <= 4000) {
            *w = (int)a;
            *h = (int)b;
            return EXIT_OK;
        }
    }
    return cli_usage_error(cmd, "--plot-size: '%s' is not W,H with 640 <= W "
                           "<= 4000 and 480 <= H <= 4000 pixels (smaller "
                           "pictures have no room for the legend)", text);
}

static const char *const LEGEND_NAMES[] = {
    "below", "top-left", "top-right", "bottom-left", "bottom-right", "none"};

int cli_parse_legend(const char *cmd, const char *text, cli_legend *out)
{
    for (int i = 0; i <= CLI_LEGEND_NONE; i++)
        if (!strcmp(text, LEGEND_NAMES[i])) {
            *out = (cli_legend)i;
            return EXIT_OK;
        }
    return cli_usage_error(cmd, "--legend: '%s' is not one of below, "
                           "top-left, top-right, bottom-left, bottom-right, "
                           "none", text);
}

int cli_check_title(const char *cmd, const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return cli_usage_error(cmd, "--title: control characters "
                                   "(newlines, tabs) are not allowed");
    if (strlen(text) > 400)
        return cli_usage_error(cmd, "--title: longer than 400 bytes");
    return EXIT_OK;
}

/* Pixels per character of the terminals' fonts (sans 11 pt in PNG, 12 in
 * SVG), measured: about 6.5 wide in legends, 7.5 in titles, 17 high. */
#define TITLE_CHAR_W 7.5
#define CHAR_H 17.0

/* The title, quotes and backslashes escaped, broken at a space where a
 * line would be wider than `width` pixels; returns its lines. */
static size_t write_title(FILE *f, const char *title, double width)
{
    size_t max = (size_t)fmax(20, width / TITLE_CHAR_W), col = 0, lines = 1;
    fputs("set label 1 \"", f);
    for (const char *p = title; *p; p++) {
        size_t word = strcspn(p + 1, " ");
        if (*p == ' ' && col > 0 && col + word + 1 > max) {
            fputs("\\n", f);
            col = 0;
            lines++;
            continue;
        }
        if (*p == '"' || *p == '\\')
            fputc('\\', f);
        fputc(*p, f);
        /* count characters, not the bytes of UTF-8 sequences */
        col += ((unsigned char)*p & 0xc0) != 0x80;
    }
    /* a label centred on the picture (gnuplot's title is centred on the
     * plot area, which the colour bar moves left), in a top margin */
    fputs("\" noenhanced at screen 0.5, screen 1 center offset 0,-1.2\n", f);
    fprintf(f, "set tmargin %.1f\n", 1.2 * (double)lines + 1.0);
    return lines;
}

double cli_plot_frame(FILE *f, const cli_frame *fr)
{
    /* the plot area's height, less the title, the x axis and the legend */
    double height = fr->height - CHAR_H * (3.6 + 1.2 * (double)write_title(
                                               f, fr->title, fr->width - 40));
    fprintf(f, "set rmargin %.1f\n", fr->right_chars);
    if (fr->legend == CLI_LEGEND_NONE || fr->entries == 0) {
        fputs("unset key\n", f);
        return height;
    }
    fputs("set key box opaque samplen 2.5 spacing 1.1\n", f);
    if (fr->legend != CLI_LEGEND_BELOW) {
        static const char *const where[] = {"", "top left", "top right",
                                            "bottom left", "bottom right"};
        fprintf(f, "set key inside %s vertical\n", where[fr->legend]);
        return height;
    }
    /* Below the plot, under the x axis's label, in as many columns as fit
     * the width: the bottom margin is reserved for it explicitly, since
     * gnuplot's own estimate lets the key cover the axis label. */
    double col_px = (double)fr->label_chars * CLI_PLOT_CHAR_W + 80;
    size_t cols = (size_t)((fr->width - 40) / col_px);
    cols = cols < 1 ? 1 : cols > fr->entries ? fr->entries : cols;
    size_t rows = (fr->entries + cols - 1) / cols;
    double key_h = 1.1 * (double)rows + 0.8;
    fprintf(f, "set bmargin %.1f\n", 3.6 + key_h + 0.4);
    fprintf(f, "set key at screen 0.5, character %.2f center top vertical "
            "maxrows %zu width 1\n", key_h + 0.4, rows);
    return height - CHAR_H * (key_h + 0.4);
}

/* A tic label: plain %g between 1e-4 and 1e5, else m·10^{e}. */
static void tic_label(char *buf, size_t size, double v)
{
    int e = (int)floor(log10(v) + 1e-9);
    double m = v / pow(10, e);
    if (e >= -4 && e <= 5)
        snprintf(buf, size, "%.6g", v);
    else if (fabs(m - 1) < 1e-9)
        snprintf(buf, size, "10^{%d}", e);
    else
        snprintf(buf, size, "%.3g·10^{%d}", m, e);
}

/* Log-axis tics: candidate mantissas per decade, sparsest first. */
static const double MANTISSAS[][10] = {
    {1}, {1, 2, 5}, {1, 2, 3, 5, 7}, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
static const size_t NMANTISSAS[] = {1, 3, 5, 9};

static size_t count_tics(double lo, double hi, int set, int step)
{
    size_t count = 0;
    for (int e = (int)floor(log10(lo)) - 1; e <= (int)ceil(log10(hi)); e++)
        for (size_t k = 0; k < NMANTISSAS[set]; k++) {
            double v = MANTISSAS[set][k] * pow(10, e);
            count += v >= lo * (1 - 1e-12) && v <= hi * (1 + 1e-12) &&
                     (set > 0 || e % step == 0);
        }
    return count;
}

/* Evenly spaced tics for an axis too short for a decade's mantissas. */
static void linear_tics(FILE *f, const char *axis, double lo, double hi)
{
    double raw = (hi - lo) / 5, unit = pow(10, floor(log10(raw)));
    double step = raw >= 5 * unit ? 5 * unit : raw >= 2 * unit ? 2 * unit
                                                                : unit;
    char label[64];
    fprintf(f, "set %stics (", axis);
    const char *sep = "";
    for (double k = ceil(lo / step); k * step <= hi * (1 + 1e-12); k++) {
        tic_label(label, sizeof label, k * step);
        fprintf(f, "%s\"%s\" %.17g", sep, label, k * step);
        sep = ", ";
    }
    fputs(")\n", f);
}

void cli_plot_log_tics(FILE *f, const char *axis, double lo, double hi)
{
    /* The sparsest mantissa set giving at least four labelled tics; with
     * powers of ten only, every step-th decade when there are many. */
    int set = 0, step = 1;
    while (set < 4 && count_tics(lo, hi, set, 1) < 4)
        set++;
    if (set == 4) {
        linear_tics(f, axis, lo, hi);
        return;
    }
    while (set == 0 && count_tics(lo, hi, 0, step) > 10)
        step++;
    char label[64];
    fprintf(f, "set %stics (", axis);
    const char *sep = "";
    for (int e = (int)floor(log10(lo)) - 1; e <= (int)ceil(log10(hi)); e++)
        for (int m = 1; m <= 9; m++) {
            double v = m * pow(10, e);
            if (v < lo * (1 - 1e-12) || v > hi * (1 + 1e-12))
                continue;
            int labelled = 0;
            for (size_t k = 0; k < NMANTISSAS[set]; k++)
                labelled |= MANTISSAS[set][k] == m;
            labelled &= set > 0 || e % step == 0;
            tic_label(label, sizeof label, v);
            fprintf(f, "%s\"%s\" %.17g %d", sep, labelled ? label : "", v,
                    !labelled);
            sep = ", ";
        }
    fputs(")\n", f);
}
