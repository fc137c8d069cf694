/* Internal: the .npy parser reads from a byte stream, so that files, memory
 * buffers and .npz members (libzip) share one implementation. */
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
} npy_stream;

int npy_read_stream(const npy_stream *s, sgdstab_array *out,
                    sgdstab_error *err);

#endif
