#include "sgdstab/outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
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

/* Six random name characters in place of the XXXXXX at the end of tmp. */
static void random_suffix(char *tmp)
{
    static const char chars[] = "abcdefghijklmnopqrstuvwxyz"
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static unsigned counter;
    uint64_t x;
    if (getrandom(&x, sizeof x, GRND_NONBLOCK) != (ssize_t)sizeof x) {
        /* No entropy yet: O_EXCL still makes the name ours, or we retry. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        x = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
            ((uint64_t)getpid() << 40) ^
            (uint64_t)++counter * 0x9E3779B97F4A7C15u;
    }
    char *s = tmp + strlen(tmp) - 6;
    for (int i = 0; i < 6; i++, x /= sizeof chars - 1)
        s[i] = chars[x % (sizeof chars - 1)];
}

/* mkstemp(), but with the mode a plain open() gives: mkstemp's 0600 would
 * survive the rename and hide the result from other users.  A new file:
 * 0666, and the kernel applies the umask (or the directory's default ACL)
 * itself, with no need to read the umask; replacing an existing regular
 * file: that file's permission bits, as opening it with O_TRUNC keeps
 * them. */
static int create_temp(char *tmp, const char *path)
{
    struct stat st;
    int keep = stat(path, &st) == 0 && S_ISREG(st.st_mode);
    for (int attempt = 0; attempt < 100; attempt++) {
        random_suffix(tmp);
        int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 && keep && fchmod(fd, st.st_mode & 07777) != 0) {
            int saved = errno;
            close(fd);
            unlink(tmp);
            errno = saved;
            return -1;
        }
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
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

    int fd = create_temp(f->tmp, path);
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
