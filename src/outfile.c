/* realpath() */
#define _XOPEN_SOURCE 700

#include "sgdstab/outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <libgen.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Temporary names of open and waiting outfiles form a table that a signal
 * handler can read while the main code changes it: a slot is filled or
 * cleared with one store, and a full table is replaced by a larger copy
 * published with one atomic store.  Retired tables are never freed (a
 * handler on another thread may still be reading one); they total less
 * than the final one. */
typedef struct {
    size_t size;
    char *volatile names[];
} name_table;

static _Atomic(name_table *) names;

struct sgdstab_outfile {
    FILE *stream;
    char *path;
    char *tmp;       /* NULL: written in place (not a regular file) */
    char *backup;    /* during a group's install: a link to the old file */
    int slot;
};

static int claim_slot(char *tmp)
{
    name_table *t = atomic_load(&names);
    size_t size = t ? t->size : 0;
    for (size_t i = 0; i < size; i++)
        if (t->names[i] == NULL) {
            t->names[i] = tmp;
            return (int)i;
        }
    size_t grown = size ? 2 * size : 64;
    name_table *g = calloc(1, sizeof *g + grown * sizeof g->names[0]);
    if (!g || grown > INT_MAX) {
        free(g);
        return -1;
    }
    g->size = grown;
    for (size_t i = 0; i < size; i++)
        g->names[i] = t->names[i];
    g->names[size] = tmp;
    atomic_store(&names, g);
    return (int)size;
}

static void set_slot(int slot, char *name)
{
    if (slot >= 0)
        atomic_load(&names)->names[slot] = name;
}

static void release(sgdstab_outfile *f)
{
    set_slot(f->slot, NULL);
    free(f->path);
    free(f->tmp);
    free(f->backup);
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

/* path with suffix appended (its XXXXXX to be randomized); NULL: ENOMEM. */
static char *with_suffix(const char *path, const char *suffix)
{
    size_t len = strlen(path), slen = strlen(suffix);
    char *s = malloc(len + slen + 1);
    if (s) {
        memcpy(s, path, len);
        memcpy(s + len, suffix, slen + 1);
    }
    return s;
}

/* The descriptor N that /dev/stdout, /dev/stderr, /dev/fd/N or
 * /proc/self/fd/N name, or −1.  Duplicating it (as a shell does) shares
 * the offset, so output to a redirected stdout lands after what is there. */
static int fd_alias(const char *path)
{
    if (!strcmp(path, "/dev/stdout"))
        return STDOUT_FILENO;
    if (!strcmp(path, "/dev/stderr"))
        return STDERR_FILENO;
    const char *digits = !strncmp(path, "/dev/fd/", 8) ? path + 8
                       : !strncmp(path, "/proc/self/fd/", 14) ? path + 14
                                                              : NULL;
    if (!digits || *digits < '0' || *digits > '9')
        return -1;
    char *end;
    long fd = strtol(digits, &end, 10);
    return *end == '\0' && fd <= INT_MAX ? (int)fd : -1;
}

/* A descriptor for writing path in place when it is a stream (device,
 * FIFO, socket, an alias of an open descriptor) rather than a file to
 * replace; −1 with errno 0 when it is a regular file or does not exist
 * (write a temporary file), −1 with errno set on error.  Replacing a
 * device node by a regular file would destroy it. */
static int open_in_place(const char *path)
{
    int alias = fd_alias(path);
    if (alias >= 0)
        return fcntl(alias, F_DUPFD_CLOEXEC, 0);
    struct stat st;
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode)) {
        errno = 0;
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        errno = EISDIR;
        return -1;
    }
    return open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
}

/* The descriptor to write path's output to: in place, or a new temporary
 * file (f->tmp) beside it. */
static int open_target(sgdstab_outfile *f, const char *path)
{
    int fd = open_in_place(path);
    if (fd >= 0 || errno != 0)
        return fd;
    if (!(f->tmp = with_suffix(path, ".tmp.XXXXXX"))) {
        errno = ENOMEM;
        return -1;
    }
    /* The name is in the table before the file exists, so that a signal
     * arriving in between cannot leave the file behind. */
    f->slot = claim_slot(f->tmp);
    return create_temp(f->tmp, path);
}

sgdstab_outfile *sgdstab_outfile_open(const char *path, sgdstab_error *err)
{
    sgdstab_outfile *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    f->slot = -1;
    int fd = open_target(f, path);
    if (fd < 0) {
        sgdstab_fail(err, SGDSTAB_EIO, "%s: cannot create file: %s", path,
                     strerror(errno));
        release(f);
        return NULL;
    }
    f->stream = fdopen(fd, "wb");
    if (!f->stream) {
        sgdstab_fail(err, SGDSTAB_EIO, "%s: %s", path, strerror(errno));
        close(fd);
        sgdstab_outfile_abort(f);
        return NULL;
    }
    return f;
}

const char *sgdstab_outfile_temp_path(const sgdstab_outfile *f)
{
    return f->tmp ? f->tmp : f->path;
}

FILE *sgdstab_outfile_stream(sgdstab_outfile *f)
{
    return f->stream;
}

/* Remove f's temporary file (if any) and free f. */
static void discard(sgdstab_outfile *f)
{
    if (f->tmp)
        unlink(f->tmp);
    release(f);
}

/* Flush and close the stream; on a write error seen at any point, report
 * it and discard f. */
static int finish_writing(sgdstab_outfile *f, sgdstab_error *err)
{
    int failed = ferror(f->stream);
    int saved = errno;
    if (fclose(f->stream) != 0 && !failed) {
        failed = 1;
        saved = errno;
    }
    f->stream = NULL;
    if (!failed)
        return SGDSTAB_OK;
    sgdstab_fail(err, SGDSTAB_EIO, "%s: write failed: %s", f->path,
                 strerror(saved ? saved : EIO));
    discard(f);
    return SGDSTAB_EIO;
}

/* ---------------------------------------------------------------- groups */

static struct {
    sgdstab_outfile **items;    /* written, waiting to be installed */
    size_t count, cap;
    int depth;
    int failed;                 /* an inner group was aborted */
} group;

/* Set while a group is being installed: a signal then only notes itself
 * (deferred_signal) and is raised again when the installation is over, so
 * that a Ctrl-C cannot leave half of the outputs replaced. */
static volatile sig_atomic_t installing, deferred_signal;

static int defer(sgdstab_outfile *f, sgdstab_error *err)
{
    if (group.count == group.cap) {
        size_t cap = group.cap ? 2 * group.cap : 8;
        sgdstab_outfile **items = realloc(group.items, cap * sizeof *items);
        if (!items) {
            discard(f);
            return sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory");
        }
        group.items = items;
        group.cap = cap;
    }
    group.items[group.count++] = f;
    return SGDSTAB_OK;
}

int sgdstab_outfile_commit(sgdstab_outfile *f, sgdstab_error *err)
{
    if (finish_writing(f, err))
        return SGDSTAB_EIO;
    if (f->tmp && group.depth > 0)
        return defer(f, err);
    int status = SGDSTAB_OK;
    if (f->tmp && rename(f->tmp, f->path) != 0)
        status = sgdstab_fail(err, SGDSTAB_EIO, "%s: write failed: %s",
                              f->path, strerror(errno));
    discard(f);
    return status;
}

void sgdstab_outfile_abort(sgdstab_outfile *f)
{
    if (!f)
        return;
    if (f->stream)
        fclose(f->stream);
    discard(f);
}

void sgdstab_outfile_group_begin(void)
{
    group.depth++;
}

/* Remove every waiting outfile's temporary file. */
static void drop_waiting(void)
{
    for (size_t i = 0; i < group.count; i++)
        discard(group.items[i]);
    free(group.items);
    group.items = NULL;
    group.count = group.cap = 0;
}

void sgdstab_outfile_group_abort(void)
{
    drop_waiting();
    if (group.depth > 0)
        group.depth--;
    group.failed = group.depth > 0;
}

/* Can every waiting outfile be renamed into place? */
static int check_waiting(sgdstab_error *err)
{
    struct stat st;
    for (size_t i = 0; i < group.count; i++) {
        const sgdstab_outfile *f = group.items[i];
        if (lstat(f->path, &st) == 0 && S_ISDIR(st.st_mode))
            return sgdstab_fail(err, SGDSTAB_EIO, "%s: cannot create file: "
                                "%s", f->path, strerror(EISDIR));
        if (lstat(f->tmp, &st) != 0)
            return sgdstab_fail(err, SGDSTAB_EIO, "%s: write failed: the "
                                "temporary file %s is gone: %s", f->path,
                                f->tmp, strerror(errno));
    }
    return SGDSTAB_OK;
}

/* A hard link f->backup to the file f->path replaces, if there is one. */
static int keep_old(sgdstab_outfile *f)
{
    struct stat st;
    if (lstat(f->path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!(f->backup = with_suffix(f->path, ".old.XXXXXX")))
        return -1;
    for (int attempt = 0; attempt < 100; attempt++) {
        random_suffix(f->backup);
        if (link(f->path, f->backup) == 0)
            return 0;
        if (errno != EEXIST)
            break;
    }
    free(f->backup);
    f->backup = NULL;
    return -1;
}

/* Rename f into place, keeping the old file when later renames may still
 * fail (not for the last one). */
static int replace(sgdstab_outfile *f, int last, sgdstab_error *err)
{
    if (!last && keep_old(f) != 0)
        return sgdstab_fail(err, SGDSTAB_EIO, "%s: cannot keep the old file "
                            "while replacing it: %s", f->path,
                            strerror(errno));
    if (rename(f->tmp, f->path) == 0)
        return SGDSTAB_OK;
    int saved = errno;
    if (f->backup)
        unlink(f->backup);
    return sgdstab_fail(err, SGDSTAB_EIO, "%s: write failed: %s", f->path,
                        strerror(saved));
}

/* Undo a replace(): the old file back, or no file where there was none. */
static void restore(sgdstab_outfile *f)
{
    if (f->backup)
        rename(f->backup, f->path);
    else
        unlink(f->path);
}

static int install_waiting(sgdstab_error *err)
{
    installing = 1;
    size_t done = 0;
    int status = SGDSTAB_OK;
    while (done < group.count && !status)
        if (!(status = replace(group.items[done], done + 1 == group.count,
                               err)))
            done++;
    for (size_t i = 0; i < done; i++) {
        sgdstab_outfile *f = group.items[i];
        if (status)
            restore(f);
        else if (f->backup)
            unlink(f->backup);
        /* installed or restored: no temporary file left to remove */
        set_slot(f->slot, NULL);
        free(f->tmp);
        f->tmp = NULL;
    }
    installing = 0;
    if (deferred_signal)
        raise(deferred_signal);
    return status;
}

int sgdstab_outfile_group_commit(sgdstab_error *err)
{
    if (group.depth == 0 || --group.depth > 0)
        return SGDSTAB_OK;
    int status = SGDSTAB_OK;
    if (group.failed)
        status = sgdstab_fail(err, SGDSTAB_EIO, "no output written: an "
                              "earlier one failed");
    if (!status)
        status = check_waiting(err);
    if (!status)
        status = install_waiting(err);
    group.failed = 0;
    drop_waiting();
    return status;
}

/* ---------------------------------------------------------------- signals */

void sgdstab_outfile_cleanup(void)
{
    name_table *t = atomic_load(&names);
    for (size_t i = 0; t && i < t->size; i++) {
        char *name = t->names[i];
        if (name)
            unlink(name);
    }
}

int sgdstab_outfile_signal(int sig)
{
    if (installing) {
        deferred_signal = sig;
        return 0;
    }
    sgdstab_outfile_cleanup();
    return 1;
}

/* ------------------------------------------------------------ same file */

/* path with its directory resolved by realpath (kept as written when it
 * does not exist); malloc'd, NULL when out of memory. */
static char *normalized(const char *path)
{
    char *d = strdup(path), *b = strdup(path), *out = NULL;
    if (d && b) {
        char *dir = dirname(d), *base = basename(b);
        char *real = realpath(dir, NULL);
        const char *use = real ? real : dir;
        size_t len = strlen(use) + strlen(base) + 2;
        if ((out = malloc(len)))
            snprintf(out, len, "%s/%s", use, base);
        free(real);
    }
    free(d);
    free(b);
    return out;
}

int sgdstab_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    int ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
    if (ea || eb)
        return ea && eb && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    char *na = normalized(a), *nb = normalized(b);
    int same = na && nb ? !strcmp(na, nb) : !strcmp(a, b);
    free(na);
    free(nb);
    return same;
}
