/* The one printer of error lines and notes (report.h). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "exit_status.h"
#include "report.h"
#include "sgdstab/outfile.h"
#include "sgdstab/status.h"

/* Bytes of the UTF-8 sequence at s if it is valid and encodes a character
 * a terminal prints as itself, 0 otherwise: overlong forms, surrogates, C1
 * controls (U+0080..U+009F, e.g. CSI) and the line separators and bidi
 * overrides that reorder the rest of a line are escaped instead. */
static size_t utf8_printable(const unsigned char *s)
{
    size_t len;
    unsigned long cp, min;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2, cp = s[0] & 0x1fu, min = 0xa0;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3, cp = s[0] & 0x0fu, min = 0x800;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4, cp = s[0] & 0x07u, min = 0x10000;
    else
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)  /* also stops at the terminating NUL */
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
        (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
        return 0;
    return len;
}

const char *cli_quote(const char *s, char *buf, size_t size)
{
    static const char ellipsis[] = "...";
    if (size < sizeof ellipsis) {
        if (size)
            buf[0] = '\0';
        return buf;
    }
    const unsigned char *p = (const unsigned char *)s;
    size_t k = 0;
    while (*p) {
        char piece[8];
        size_t in = *p >= 0x80 ? utf8_printable(p) : *p >= 0x20 && *p != 0x7f;
        size_t out = in;
        if (in)
            memcpy(piece, p, in);
        else if (*p == '\n' || *p == '\t' || *p == '\r')
            out = (size_t)snprintf(piece, sizeof piece, "\\%c",
                                   *p == '\n' ? 'n' : *p == '\t' ? 't' : 'r');
        else
            out = (size_t)snprintf(piece, sizeof piece, "\\x%02X", *p);
        /* Keep room for the ellipsis a longer text ends with. */
        if (k + out + sizeof ellipsis > size) {
            memcpy(buf + k, ellipsis, sizeof ellipsis);
            return buf;
        }
        memcpy(buf + k, piece, out);
        k += out;
        p += in ? in : 1;
    }
    buf[k] = '\0';
    return buf;
}

/* A formatted message: a library message (SGDSTAB_ERROR_MSG_MAX) and two
 * quoted names fit. */
enum { MESSAGE_MAX = 2048 };

/* The one place a line is put together: prefix, escaped file and message,
 * and for a usage error the pointer to --help; one write. */
static void print_line(const char *cmd, const char *file, const char *kind,
                       const char *help_cmd, const char *fmt, va_list ap)
{
    char msg[MESSAGE_MAX], qm[4 * MESSAGE_MAX], qf[CLI_QUOTE_SIZE];
    char line[sizeof qm + sizeof qf + 128];
    vsnprintf(msg, sizeof msg, fmt, ap);
    int k = snprintf(line, sizeof line, "sgdstab%s%s: %s%s%s%s",
                     cmd ? " " : "", cmd ? cmd : "",
                     file ? cli_quote(file, qf, sizeof qf) : "",
                     file ? ": " : "", kind, cli_quote(msg, qm, sizeof qm));
    if (help_cmd && k >= 0 && (size_t)k < sizeof line)
        snprintf(line + k, sizeof line - (size_t)k,
                 " (see 'sgdstab %s --help')", help_cmd);
    fprintf(stderr, "%s\n", line);
}

void cli_error_line(const char *cmd, const char *file, const char *fmt,
                    va_list ap)
{
    print_line(cmd, file, "", NULL, fmt, ap);
}

int cli_fail(int status, const char *cmd, const char *file, const char *fmt,
             ...)
{
    const int usage = status == EXIT_USAGE;
    if (usage && !cmd)
        return status;
    va_list ap;
    va_start(ap, fmt);
    print_line(cmd, file, "", usage ? cmd : NULL, fmt, ap);
    va_end(ap);
    return status;
}

void cli_note(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_line(cmd, NULL, "note: ", NULL, fmt, ap);
    va_end(ap);
}

int cli_report(const sgdstab_error *err)
{
    return cli_data_error(NULL, NULL, "%s", err->msg);
}

/* Library messages such as "J is zero" do not name the file, and LAPACKE's
 * "info = -1010" does not say "out of memory".  After an allocation
 * failed, exit at once: OpenBLAS threads that could not get their buffers
 * retry forever, and exit() would wait for them in OpenBLAS's destructor
 * (main.c); outputs are removed first, as on a signal. */
int cli_report_file_in(const char *cmd, const char *spec, const char *context,
                       const char *file, const sgdstab_error *err)
{
    int named = !strncmp(err->msg, file, strlen(file));
    const char *nomem = err->status == SGDSTAB_ENOMEM &&
                        !strstr(err->msg, "memory") ? ": out of memory" : "";
    if (spec)
        cli_data_error(cmd, spec, "%s%s%s%s%s", context, named ? "" : file,
                       named ? "" : ": ", err->msg, nomem);
    else
        cli_data_error(cmd, named ? NULL : file, "%s%s", err->msg, nomem);
    if (err->status == SGDSTAB_ENOMEM) {
        sgdstab_outfile_cleanup();
        fflush(stdout);
        fflush(stderr);
        _exit(EXIT_DATA);
    }
    return EXIT_DATA;
}

int cli_report_file(const char *file, const sgdstab_error *err)
{
    return cli_report_file_in(NULL, NULL, NULL, file, err);
}
