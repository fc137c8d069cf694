/* libFuzzer target for `run`'s spec validator (run_spec_check): any
 * text as an experiment spec.  Any crash, sanitizer report or leak aborts,
 * and so does a broken contract: a valid spec prints nothing, an invalid
 * one exactly one line free of control characters (keys and values are
 * escaped).  No work is done: validation only. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "exit_status.h"
#include "run/spec.h"
#include "capture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size);
    if (!text)
        return 0;
    char *msg;
    size_t len;
    FILE *saved, *mem = capture_stderr(&msg, &len, &saved);
    int status = run_spec_check("fuzz.json", text, size);
    restore_stderr(mem, saved);
    check_message(status, EXIT_DATA, msg, len);
    free(text);
    return 0;
}
