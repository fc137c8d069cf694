/* libFuzzer target for the command line's list parsers: arbitrary text (up
 * to its first NUL, as an argument would be) as a --batch list
 * (cli_parse_batches), as a --lr list (cli_parse_lrs) and through
 * cli_quote.  Any crash, sanitizer report, leak, or broken contract
 * aborts: a list must be sorted, without duplicates, and in range (batch
 * sizes >= 1, learning rates finite and positive); a failure must leave no
 * list behind and print exactly one line free of control characters; a
 * success prints nothing; a quote fits its buffer and holds no control
 * characters. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exit_status.h"
#include "options.h"
#include "report.h"
#include "capture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The samples a --batch list is read against ("n", "all"). */
enum { FUZZ_N = 64 };

static void fuzz_batches(const char *text)
{
    char *msg;
    size_t len, *list, count;
    FILE *saved, *mem = capture_stderr(&msg, &len, &saved);
    int status = cli_parse_batches("fuzz", text, FUZZ_N, &list, &count);
    restore_stderr(mem, saved);
    check_message(status, EXIT_USAGE, msg, len);
    if (status != EXIT_OK) {
        if (list || count)
            abort();
        return;
    }
    if (!list || count == 0 || list[0] < 1)
        abort();
    for (size_t i = 1; i < count; i++)
        if (list[i] <= list[i - 1])
            abort();
    free(list);
}

static void fuzz_lrs(const char *text)
{
    char *msg;
    size_t len, count;
    double *list;
    int log_spaced;
    FILE *saved, *mem = capture_stderr(&msg, &len, &saved);
    int status = cli_parse_lrs("fuzz", text, &list, &count, &log_spaced);
    restore_stderr(mem, saved);
    check_message(status, EXIT_USAGE, msg, len);
    if (status != EXIT_OK) {
        if (list || count || log_spaced)
            abort();
        return;
    }
    if (!list || count == 0 || !(list[0] > 0) || !isfinite(list[count - 1]))
        abort();
    for (size_t i = 1; i < count; i++)
        if (!(list[i] > list[i - 1]))
            abort();
    free(list);
}

/* cli_quote into a buffer as small as 4 bytes (the size from the text's
 * length) and into a roomy one. */
static void fuzz_quote(const char *text, size_t len)
{
    char buf[CLI_QUOTE_SIZE];
    size_t sizes[2] = {4 + len % (sizeof buf - 4), sizeof buf};
    for (int i = 0; i < 2; i++) {
        memset(buf, 'Z', sizeof buf);
        const char *q = cli_quote(text, buf, sizes[i]);
        size_t qlen = strnlen(q, sizes[i]);
        if (q != buf || qlen == sizes[i] || has_control(q, qlen))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size);
    if (!text)
        return 0;
    fuzz_batches(text);
    fuzz_lrs(text);
    fuzz_quote(text, strlen(text));
    free(text);
    return 0;
}
