/* Shared by the fuzz targets of the command line: what a function prints
 * on stderr, captured, and the one-line contract of its errors. */
#ifndef SGDSTAB_FUZZ_CAPTURE_H
#define SGDSTAB_FUZZ_CAPTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int has_control(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 1;
    return 0;
}

/* A success prints nothing; a failure (status fail) exactly one line free
 * of control characters.  Frees msg. */
static void check_message(int status, int fail, char *msg, size_t len)
{
    if (status == 0 ? len != 0
        : status != fail || len < 2 || msg[len - 1] != '\n' ||
              has_control(msg, len - 1))
        abort();
    free(msg);
}

/* The fuzzer's bytes as a NUL-terminated string (malloc'd; NULL when out
 * of memory). */
static char *fuzz_text(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text) {
        memcpy(text, data, size);
        text[size] = '\0';
    }
    return text;
}

static FILE *capture_stderr(char **msg, size_t *len, FILE **saved)
{
    FILE *mem = open_memstream(msg, len);
    if (!mem)
        abort();
    *saved = stderr;
    stderr = mem;
    return mem;
}

static void restore_stderr(FILE *mem, FILE *saved)
{
    stderr = saved;
    if (fclose(mem))
        abort();
}

#endif
