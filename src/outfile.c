#include "sgdstab/outfile.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Open outfiles form a small table, so that a signal handler can unlink their
 * temporary files without walking heap structures that may be mid-update. */
#define OUTFILE_SLOTS 64

struct sgdstab_outfile {
    FILE *stream;
    char *path;
    char *tmp;
    int slot;
};

static char *volatile open_tmp_names[OUTFILE_SLOTS];

static int claim_slot(char *tmp)
{
    for (int i = 0; i < OUTFILE_SLOTS; i++)
        if (open_tmp_names[i] == NULL) {
            open_tmp_names[i] = tmp;
            return i;
        }
    return -1;
}

static void release(sgdstab_outfile *f)
{
    if (f->slot >= 0)
        open_tmp_names[f->slot] = NULL;
    free(f->path);
    free(f->tmp);
    free(f);
}

sgdstab_outfile *sgdstab_outfile_open(const char *path, sgdstab_error *err)
{
    sgdstab_outfile *f = calloc(1, sizeof *f);
    size_t len = strlen(path);
    if (f) {
        f->path = strdup(path);
        f->tmp = malloc(len + sizeof ".tmp.XXXXXX");
    }
    if (!f || !f->path || !f->tmp) {
        if (f) {
            free(f->path);
            free(f->tmp);
            free(f);
        }
        sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    memcpy(f->tmp, path, len);
    memcpy(f->tmp + len, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    f->slot = -1;

    int fd = mkstemp(f->tmp);
    if (fd < 0) {
        sgdstab_fail(err, SGDSTAB_EIO, "%s: cannot create file: %s", path,
                     strerror(errno));
        release(f);
        return NULL;
    }
    f->slot = claim_slot(f->tmp);
    f->stream = fdopen(fd, "wb");
    if (!f->stream) {
        sgdstab_fail(err, SGDSTAB_EIO, "%s: %s", path, strerror(errno));
        close(fd);
        unlink(f->tmp);
        release(f);
        return NULL;
    }
    return f;
}

const char *sgdstab_outfile_temp_path(const sgdstab_outfile *f)
{
    return f->tmp;
}

FILE *sgdstab_outfile_stream(sgdstab_outfile *f)
{
    return f->stream;
}

int sgdstab_outfile_commit(sgdstab_outfile *f, sgdstab_error *err)
{
    int failed = ferror(f->stream);
    int saved = errno;
    if (fclose(f->stream) != 0 && !failed) {
        failed = 1;
        saved = errno;
    }
    if (!failed && rename(f->tmp, f->path) != 0) {
        failed = 1;
        saved = errno;
    }
    int status = SGDSTAB_OK;
    if (failed) {
        unlink(f->tmp);
        status = sgdstab_fail(err, SGDSTAB_EIO, "%s: write failed: %s",
                              f->path, strerror(saved ? saved : EIO));
    }
    release(f);
    return status;
}

void sgdstab_outfile_abort(sgdstab_outfile *f)
{
    if (!f)
        return;
    fclose(f->stream);
    unlink(f->tmp);
    release(f);
}

void sgdstab_outfile_cleanup(void)
{
    for (int i = 0; i < OUTFILE_SLOTS; i++) {
        char *name = open_tmp_names[i];
        if (name)
            unlink(name);
    }
}
