/* sgdstab — NumPy .npy / .npz input and output.
 *
 * Reads .npy format versions 1.0, 2.0 and 3.0 with float64, float32 or
 * float16 data in either byte order and either memory order, and 1 to 3
 * dimensions; values are converted to double in C (row-major) order.
 * Reads .npz archives written by np.savez (stored) and np.savez_compressed
 * (deflated), Zip64 included.  Writes .npy version 1.0, '<f8', C order,
 * and .npz archives of such members, atomically (temporary file, then
 * rename).
 *
 * Headers are parsed strictly: exactly the keys 'descr', 'fortran_order' and
 * 'shape', in any order, with optional trailing comma and spaces; the header
 * may be at most SGDSTAB_NPY_HEADER_MAX bytes; the shape product is checked
 * for overflow and against the number of bytes actually present before any
 * allocation. */
#ifndef SGDSTAB_NPY_H
#define SGDSTAB_NPY_H

#include <stddef.h>
#include <stdio.h>
#include "sgdstab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SGDSTAB_NPY_MAX_DIMS 4
#define SGDSTAB_NPY_HEADER_MAX 65536

typedef struct {
    int ndim;                            /* 1, 2 or 3 */
    size_t shape[SGDSTAB_NPY_MAX_DIMS];  /* unused entries are 1 */
    size_t size;                         /* product of the shape */
    double *data;                        /* size values, C order */
    char descr[8];                       /* dtype as stored, e.g. "<f4" */
} sgdstab_array;

/* Open path for reading if it is a regular file; *size (if size is not
 * NULL) gets its size.  On failure a one-line error naming the file. */
int sgdstab_open_input(const char *path, FILE **f, size_t *size,
                       sgdstab_error *err);

/* Read a .npy file.  On failure *out is left empty (data == NULL). */
int sgdstab_npy_read(const char *path, sgdstab_array *out, sgdstab_error *err);

/* Called once a header is validated against the bytes present, before
 * anything is allocated for the data, with the dtype and shape (data NULL);
 * a non-zero return stops the read with that status (e.g. a memory
 * check). */
typedef int (*sgdstab_npy_check)(void *ctx, const sgdstab_array *declared,
                                 sgdstab_error *err);

/* sgdstab_npy_read with a check (which may be NULL). */
int sgdstab_npy_read_checked(const char *path, sgdstab_npy_check check,
                             void *ctx, sgdstab_array *out,
                             sgdstab_error *err);

/* Read .npy contents from memory; label names the source in messages. */
int sgdstab_npy_read_buffer(const void *buf, size_t len, const char *label,
                            sgdstab_array *out, sgdstab_error *err);

/* Write a as .npy v1.0, '<f8', C order, via a temporary file and rename. */
int sgdstab_npy_write(const char *path, const sgdstab_array *a,
                      sgdstab_error *err);

/* Release the data of a and reset it to empty.  NULL-safe. */
void sgdstab_array_free(sgdstab_array *a);

/* Size in bytes of one element of a supported dtype string, 0 if the string
 * is not one this module reads. */
size_t sgdstab_npy_itemsize(const char *descr);

/* Machine epsilon of the precision a dtype was stored in (float16, float32
 * or float64), for tolerances that must respect the source precision. */
double sgdstab_npy_epsilon(const char *descr);

typedef struct sgdstab_npz sgdstab_npz;

/* Open a .npz archive from a file or from memory (the buffer must outlive
 * the handle).  Returns NULL and fills err on failure. */
sgdstab_npz *sgdstab_npz_open(const char *path, sgdstab_error *err);
sgdstab_npz *sgdstab_npz_open_buffer(const void *buf, size_t len,
                                     const char *label, sgdstab_error *err);

/* Does the archive hold an array called name (member "name.npy")? */
int sgdstab_npz_has(const sgdstab_npz *z, const char *name);

/* Does it hold a member called exactly member (e.g. "meta.json")? */
int sgdstab_npz_has_member(const sgdstab_npz *z, const char *member);

/* Read the array called name.  A missing member is an SGDSTAB_EFORMAT error
 * naming the archive and the array. */
int sgdstab_npz_read(sgdstab_npz *z, const char *name, sgdstab_array *out,
                     sgdstab_error *err);

/* sgdstab_npz_read with a check (which may be NULL). */
int sgdstab_npz_read_checked(sgdstab_npz *z, const char *name,
                             sgdstab_npy_check check, void *ctx,
                             sgdstab_array *out, sgdstab_error *err);

/* Read the member called exactly member as raw bytes: *out (malloc'd, to be
 * freed) gets them with a NUL appended, *len their count (without the NUL;
 * the bytes may hold NULs of their own).  A member of more than max_len
 * bytes is refused before anything is allocated; that, a missing member and
 * a corrupt one are SGDSTAB_EFORMAT errors naming the archive and the
 * member.  On failure *out is NULL. */
int sgdstab_npz_read_bytes(sgdstab_npz *z, const char *member, size_t max_len,
                           char **out, size_t *len, sgdstab_error *err);

void sgdstab_npz_close(sgdstab_npz *z);

/* One member of an .npz archive to write: an array, stored as "NAME.npy"
 * (.npy v1.0, '<f8', C order), or, when array is NULL, len raw bytes stored
 * under NAME as is (np.load returns such a member, e.g. "meta.json", as
 * bytes). */
typedef struct {
    const char *name;
    const sgdstab_array *array;
    const void *bytes;
    size_t len;
} sgdstab_npz_member;

/* Write count ≥ 1 members, in order, as an .npz archive that np.load reads:
 * stored (uncompressed), with a fixed timestamp (1980-01-01), so the same
 * contents always give the same bytes; via a temporary file and rename. */
int sgdstab_npz_write(const char *path, const sgdstab_npz_member *members,
                      size_t count, sgdstab_error *err);

#ifdef __cplusplus
}
#endif

#endif
