/* .npz archives: a zip file whose members "NAME.npy" are .npy files.  numpy
 * writes them stored (np.savez) or deflated (np.savez_compressed), always with
 * Zip64 extra fields; libzip handles both. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "npy_stream.h"

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
        int io = code == ZIP_ER_OPEN || code == ZIP_ER_NOENT ||
                 code == ZIP_ER_READ || code == ZIP_ER_SEEK;
        if (io)
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

static int64_t read_member(void *ctx, void *buf, size_t n)
{
    zip_int64_t r = zip_fread((zip_file_t *)ctx, buf, n);
    return r < 0 ? -1 : (int64_t)r;
}

int sgdstab_npz_read(sgdstab_npz *z, const char *name, sgdstab_array *out,
                     sgdstab_error *err)
{
    memset(out, 0, sizeof *out);
    zip_int64_t idx = locate(z, name);
    if (idx < 0)
        return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: no array '%s' in archive",
                            z->label, name);
    char label[1024];
    snprintf(label, sizeof label, "%s:%s.npy", z->label, name);

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

    zip_file_t *zf = zip_fopen_index(z->za, (zip_uint64_t)idx, 0);
    if (!zf)
        return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: cannot open zip entry: %s",
                            label, zip_strerror(z->za));
    npy_stream s = {read_member, zf, st.size, label};
    int status = npy_read_stream(&s, out, err);
    /* libzip checks the CRC when it reaches the end of the member: one more
     * read makes sure it does. */
    char extra;
    if (status == SGDSTAB_OK && zip_fread(zf, &extra, 1) != 0)
        status = SGDSTAB_EIO;
    if (status == SGDSTAB_EIO)  /* say why libzip failed (CRC, inflate, …) */
        status = sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: %s", label,
                              zip_error_strerror(zip_file_get_error(zf)));
    zip_fclose(zf);
    if (status)
        sgdstab_array_free(out);
    return status;
}

void sgdstab_npz_close(sgdstab_npz *z)
{
    if (!z)
        return;
    zip_discard(z->za);
    free(z->label);
    free(z);
}
