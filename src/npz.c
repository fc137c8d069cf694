/* .npz archives: a zip file whose members "NAME.npy" are .npy files, and
 * maybe raw members such as "meta.json".  numpy writes them stored (np.savez)
 * or deflated (np.savez_compressed), always with Zip64 extra fields; libzip
 * handles both.  Archives are written stored, like np.savez. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "npy_stream.h"
#include "sgdstab/outfile.h"

/* Deflate cannot expand data by more than about 1032:1, so a member that
 * claims more than this is corrupt (or a zip bomb) and is refused before any
 * allocation. */
#define DEFLATE_MAX_RATIO 1032u

struct sgdstab_npz {
    zip_t *za;
    char *label;
};

static sgdstab_npz *open_source(zip_source_t *src, const char *label,
                                sgdstab_error *err)
{
    zip_error_t ze;
    zip_error_init(&ze);
    zip_t *za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (!za) {
        int code = zip_error_code_zip(&ze);
        int io = code == ZIP_ER_OPEN || code == ZIP_ER_READ ||
                 code == ZIP_ER_SEEK;
        /* The file exists (it was opened already): libzip 1.7 says "No such
         * file" when a size or offset is the Zip64 marker 0xFFFFFFFF and the
         * entry has no Zip64 extra field holding the real value. */
        if (code == ZIP_ER_NOENT)
            sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: not a readable .npz "
                         "archive: an entry's size or offset is 0xFFFFFFFF "
                         "(the Zip64 marker) but it has no Zip64 extra field",
                         label);
        else if (io)
            sgdstab_fail(err, SGDSTAB_EIO, "%s: %s", label,
                         zip_error_strerror(&ze));
        else
            sgdstab_fail(err, SGDSTAB_EFORMAT,
                         "%s: not a readable .npz archive: %s", label,
                         zip_error_strerror(&ze));
        zip_error_fini(&ze);
        zip_source_free(src);
        return NULL;
    }
    zip_error_fini(&ze);
    sgdstab_npz *z = malloc(sizeof *z);
    if (!z || !(z->label = strdup(label))) {
        free(z);
        zip_close(za);
        sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory", label);
        return NULL;
    }
    z->za = za;
    return z;
}

sgdstab_npz *sgdstab_npz_open(const char *path, sgdstab_error *err)
{
    FILE *f;
    size_t size;
    if (sgdstab_open_input(path, &f, &size, err))
        return NULL;
    fclose(f);
    if (size == 0) {
        sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: empty file", path);
        return NULL;
    }
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_file_create(path, 0, -1, &ze);
    if (!src) {
        sgdstab_fail(err, SGDSTAB_EIO, "%s: %s", path, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return NULL;
    }
    zip_error_fini(&ze);
    return open_source(src, path, err);
}

sgdstab_npz *sgdstab_npz_open_buffer(const void *buf, size_t len,
                                     const char *label, sgdstab_error *err)
{
    if (len == 0) {
        sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: empty file", label);
        return NULL;
    }
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(buf, len, 0, &ze);
    if (!src) {
        sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: %s", label,
                     zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return NULL;
    }
    zip_error_fini(&ze);
    return open_source(src, label, err);
}

static zip_int64_t locate(const sgdstab_npz *z, const char *name)
{
    char member[256];
    if ((size_t)snprintf(member, sizeof member, "%s.npy", name) >= sizeof member)
        return -1;
    return zip_name_locate(z->za, member, 0);
}

int sgdstab_npz_has(const sgdstab_npz *z, const char *name)
{
    return locate(z, name) >= 0;
}

int sgdstab_npz_has_member(const sgdstab_npz *z, const char *member)
{
    return zip_name_locate(z->za, member, 0) >= 0;
}

static int64_t read_member(void *ctx, void *buf, size_t n)
{
    zip_int64_t r = zip_fread((zip_file_t *)ctx, buf, n);
    return r < 0 ? -1 : (int64_t)r;
}

/* Reads the whole of a member from its stream into out. */
typedef int (*member_reader)(const npy_stream *s, void *out,
                             sgdstab_error *err);

/* Check the sizes the entry at idx claims (and that it holds at most
 * max_len bytes), then hand its bytes to reader as a stream.  label names
 * the member in messages. */
static int read_entry(sgdstab_npz *z, zip_int64_t idx, const char *label,
                      uint64_t max_len, member_reader reader, void *out,
                      sgdstab_error *err)
{
    zip_stat_t st;
    if (zip_stat_index(z->za, (zip_uint64_t)idx, 0, &st) != 0 ||
        !(st.valid & ZIP_STAT_SIZE) || !(st.valid & ZIP_STAT_COMP_SIZE))
        return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: unreadable zip entry: %s",
                            label, zip_strerror(z->za));
    int stored = (st.valid & ZIP_STAT_COMP_METHOD) &&
                 st.comp_method == ZIP_CM_STORE;
    if ((stored && st.size != st.comp_size) ||
        st.size / DEFLATE_MAX_RATIO > st.comp_size + 1)
        return sgdstab_fail(err, SGDSTAB_EFORMAT,
                            "%s: corrupt zip entry (claims %llu bytes from "
                            "%llu compressed)", label,
                            (unsigned long long)st.size,
                            (unsigned long long)st.comp_size);
    if (st.size > max_len)
        return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: %llu bytes, more than "
                            "the %llu allowed", label,
                            (unsigned long long)st.size,
                            (unsigned long long)max_len);

    zip_file_t *zf = zip_fopen_index(z->za, (zip_uint64_t)idx, 0);
    if (!zf)
        return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: cannot open zip entry: %s",
                            label, zip_strerror(z->za));
    npy_stream s = {read_member, zf, st.size, label, NULL, NULL};
    int status = reader(&s, out, err);
    /* libzip checks the CRC when it reaches the end of the member: one more
     * read makes sure it does.  It stops at the declared size only for
     * stored members: a deflated one may inflate to more. */
    char extra;
    zip_int64_t more = status == SGDSTAB_OK ? zip_fread(zf, &extra, 1) : 0;
    if (more > 0)
        status = sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: the compressed data "
                              "inflate to more than the %llu bytes the zip "
                              "directory declares", label,
                              (unsigned long long)st.size);
    else if (more < 0)
        status = SGDSTAB_EIO;
    if (status == SGDSTAB_EIO)  /* say why libzip failed (CRC, inflate, …) */
        status = sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: %s", label,
                              zip_error_strerror(zip_file_get_error(zf)));
    zip_fclose(zf);
    return status;
}

/* An array to read, and the check to run on its header. */
typedef struct {
    sgdstab_array *array;
    sgdstab_npy_check check;
    void *ctx;
} npy_target;

static int read_npy(const npy_stream *s, void *out, sgdstab_error *err)
{
    const npy_target *t = out;
    npy_stream checked = *s;
    checked.check = t->check;
    checked.check_ctx = t->ctx;
    return npy_read_stream(&checked, t->array, err);
}

int sgdstab_npz_read(sgdstab_npz *z, const char *name, sgdstab_array *out,
                     sgdstab_error *err)
{
    return sgdstab_npz_read_checked(z, name, NULL, NULL, out, err);
}

int sgdstab_npz_read_checked(sgdstab_npz *z, const char *name,
                             sgdstab_npy_check check, void *ctx,
                             sgdstab_array *out, sgdstab_error *err)
{
    memset(out, 0, sizeof *out);
    zip_int64_t idx = locate(z, name);
    if (idx < 0)
        return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: no array '%s' in archive",
                            z->label, name);
    char label[1024];
    snprintf(label, sizeof label, "%s:%s.npy", z->label, name);
    npy_target t = {out, check, ctx};
    int status = read_entry(z, idx, label, UINT64_MAX, read_npy, &t, err);
    if (status)
        sgdstab_array_free(out);
    return status;
}

typedef struct {
    char *data;
    size_t len;
} byte_buffer;

/* The whole member into a byte_buffer; read_entry says why a read failed
 * (SGDSTAB_EIO). */
static int read_raw(const npy_stream *s, void *out, sgdstab_error *err)
{
    byte_buffer *b = out;
    if (!(b->data = malloc((size_t)s->size + 1)))
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory",
                            s->label);
    int64_t got = s->size ? s->read(s->ctx, b->data, (size_t)s->size) : 0;
    if (got < 0)
        return SGDSTAB_EIO;
    if ((uint64_t)got != s->size)
        return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: truncated member "
                            "(stream ended early)", s->label);
    b->data[got] = '\0';
    b->len = (size_t)got;
    return SGDSTAB_OK;
}

int sgdstab_npz_read_bytes(sgdstab_npz *z, const char *member, size_t max_len,
                           char **out, size_t *len, sgdstab_error *err)
{
    *out = NULL;
    *len = 0;
    zip_int64_t idx = zip_name_locate(z->za, member, 0);
    if (idx < 0)
        return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: no member '%s' in "
                            "archive", z->label, member);
    char label[1024];
    snprintf(label, sizeof label, "%s:%s", z->label, member);
    byte_buffer b = {NULL, 0};
    int status = read_entry(z, idx, label, max_len, read_raw, &b, err);
    if (status) {
        free(b.data);
        return status;
    }
    *out = b.data;
    *len = b.len;
    return SGDSTAB_OK;
}

void sgdstab_npz_close(sgdstab_npz *z)
{
    if (!z)
        return;
    zip_discard(z->za);
    free(z->label);
    free(z);
}

/* ----------------------------------------------------------------- write */

/* The DOS date of 1980-01-01, the earliest a zip entry can carry:
 * (year − 1980) << 9 | month << 5 | day.  A fixed time makes the bytes
 * depend on the contents only (not on the clock or the time zone). */
#define DOS_DATE_1980_01_01 ((1u << 5) | 1u)

/* What one member needs alive until zip_close, when libzip reads it. */
typedef struct {
    unsigned char prefix[NPY_V1_PREFIX_MAX];
    unsigned char *swapped;  /* little-endian copy on big-endian hosts */
} member_buffers;

/* Add m to za as a stored entry with the fixed timestamp. */
static int add_member(zip_t *za, const char *path, const sgdstab_npz_member *m,
                      member_buffers *mb, sgdstab_error *err)
{
    char entry[256];
    zip_buffer_fragment_t frag[2];
    zip_uint64_t nfrag = 1;
    if ((size_t)snprintf(entry, sizeof entry, m->array ? "%s.npy" : "%s",
                         m->name) >= sizeof entry)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "%s: member name '%s' is too "
                            "long", path, m->name);
    if (m->array) {
        const sgdstab_array *a = m->array;
        if (a->ndim < 1 || a->ndim > SGDSTAB_NPY_MAX_DIMS)
            return sgdstab_fail(err, SGDSTAB_EINVAL, "%s: cannot write the "
                                "%d-dimensional array '%s'", path, a->ndim,
                                m->name);
        const void *data = npy_le_bytes(a, &mb->swapped);
        if (!data)
            return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory", path);
        frag[0].data = mb->prefix;
        frag[0].length = npy_v1_prefix(a, mb->prefix);
        frag[1].data = (zip_uint8_t *)data;  /* only read: freep is 0 */
        frag[1].length = 8 * (zip_uint64_t)a->size;
        nfrag = 2;
    } else {
        frag[0].data = (zip_uint8_t *)m->bytes;
        frag[0].length = m->len;
    }
    zip_source_t *src = zip_source_buffer_fragment_create(frag, nfrag, 0, NULL);
    if (!src)
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory", path);
    zip_int64_t idx = zip_file_add(za, entry, src, 0);
    if (idx < 0) {
        zip_source_free(src);
        return sgdstab_fail(err, SGDSTAB_EINVAL, "%s: cannot add member '%s': "
                            "%s", path, entry, zip_strerror(za));
    }
    if (zip_set_file_compression(za, (zip_uint64_t)idx, ZIP_CM_STORE, 0) ||
        zip_file_set_dostime(za, (zip_uint64_t)idx, 0, DOS_DATE_1980_01_01, 0))
        return sgdstab_fail(err, SGDSTAB_EIO, "%s: member '%s': %s", path,
                            entry, zip_strerror(za));
    return SGDSTAB_OK;
}

/* Copy the finished in-memory archive to the output stream. */
static int copy_archive(zip_source_t *archive, FILE *f, const char *path,
                        sgdstab_error *err)
{
    enum { CHUNK = 1 << 16 };
    unsigned char *buf = malloc(CHUNK);
    if (!buf)
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory", path);
    zip_int64_t got = -1;
    if (zip_source_open(archive) == 0) {
        while ((got = zip_source_read(archive, buf, CHUNK)) > 0)
            fwrite(buf, 1, (size_t)got, f);
        zip_source_close(archive);
    }
    free(buf);
    if (got < 0)
        return sgdstab_fail(err, SGDSTAB_EIO, "%s: %s", path,
                            zip_error_strerror(zip_source_error(archive)));
    return SGDSTAB_OK;
}

/* The archive is built in memory by libzip (a buffer source), then copied
 * to a temporary file that is renamed into place. */
int sgdstab_npz_write(const char *path, const sgdstab_npz_member *members,
                      size_t count, sgdstab_error *err)
{
    if (count == 0)
        return sgdstab_fail(err, SGDSTAB_EINVAL, "%s: an .npz archive needs at "
                            "least one member", path);
    sgdstab_outfile *of = sgdstab_outfile_open(path, err);
    if (!of)
        return err ? err->status : SGDSTAB_EIO;
    member_buffers *mb = calloc(count, sizeof *mb);
    zip_source_t *archive = zip_source_buffer_create(NULL, 0, 0, NULL);
    zip_t *za = NULL;
    int st = SGDSTAB_OK;
    zip_error_t ze;
    zip_error_init(&ze);
    if (mb && archive &&
        (za = zip_open_from_source(archive, ZIP_CREATE | ZIP_TRUNCATE, &ze)))
        zip_source_keep(archive);  /* still ours after zip_close */
    if (!za) {
        st = sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: cannot start the archive: "
                          "%s", path, mb && archive ? zip_error_strerror(&ze)
                                                    : "out of memory");
        goto done;
    }
    for (size_t i = 0; i < count && !st; i++)
        st = add_member(za, path, &members[i], &mb[i], err);
    if (st)
        goto done;
    if (zip_close(za) != 0) {
        st = sgdstab_fail(err, SGDSTAB_EIO, "%s: cannot write the archive: %s",
                          path, zip_strerror(za));
        goto done;
    }
    za = NULL;
    st = copy_archive(archive, sgdstab_outfile_stream(of), path, err);
done:
    if (za)
        zip_discard(za);
    zip_source_free(archive);
    zip_error_fini(&ze);
    for (size_t i = 0; mb && i < count; i++)
        free(mb[i].swapped);
    free(mb);
    if (st) {
        sgdstab_outfile_abort(of);
        return st;
    }
    return sgdstab_outfile_commit(of, err);
}
