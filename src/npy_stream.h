/* Internal: the .npy parser reads from a byte stream, so that files, memory
 * buffers and .npz members (libzip) share one implementation; the .npy and
 * .npz writers share the header and byte-order code. */
#ifndef SGDSTAB_NPY_STREAM_H
#define SGDSTAB_NPY_STREAM_H

#include <stdint.h>
#include "sgdstab/npy.h"

typedef struct {
    /* Read up to n bytes into buf; return the count read (short only at the
     * end of the stream) or −1 on an I/O error. */
    int64_t (*read)(void *ctx, void *buf, size_t n);
    void *ctx;
    uint64_t size;      /* total bytes in the stream */
    const char *label;  /* names the source in messages */
    sgdstab_npy_check check;  /* NULL or called before the data are read */
    void *check_ctx;
} npy_stream;

int npy_read_stream(const npy_stream *s, sgdstab_array *out,
                    sgdstab_error *err);

/* Writing, shared by the .npy and .npz writers.  The prefix of a .npy v1.0
 * '<f8' C-order file (magic, version, header length, header padded so that
 * the data start at a multiple of 64 bytes) is at most this long. */
#define NPY_V1_PREFIX_MAX 256

/* Write the prefix for a (1 to 3 dimensions) into out; returns its length. */
size_t npy_v1_prefix(const sgdstab_array *a, unsigned char *out);

/* The data of a as little-endian bytes: a->data itself on little-endian
 * hosts, else a byte-swapped copy returned in *copy (to be freed; NULL when
 * no copy was made).  NULL when out of memory. */
const void *npy_le_bytes(const sgdstab_array *a, unsigned char **copy);

#endif
