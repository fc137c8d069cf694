/* sgdstab — memory planning: what loading and factorizing a problem will
 * need, compared with the memory available, before any large allocation.
 *
 * The need of J (n, k, p) is estimated as the peak of sgdstab_reduce: J as
 * doubles, its work copy for the thin SVD, the smaller singular-vector
 * factor (min(nk, p)² doubles), then the larger of dgesdd's workspace and
 * the reduced factor Φ ((nk)·min(nk, p) doubles); with H, H itself and
 * several p×p and (nk)×p matrices more.
 *
 * Available is the smallest of: MemAvailable in /proc/meminfo; the limit
 * given (SGDSTAB_MAX_MEMORY in the environment, or max_memory); the address
 * space `ulimit -v` leaves, less what OpenBLAS reserves for its buffers. */
#ifndef SGDSTAB_MEMPLAN_H
#define SGDSTAB_MEMPLAN_H

#include <stddef.h>
#include "sgdstab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes loading and factorizing a J of shape (n, k, p) needs (with H or
 * not), as a double since hostile shapes overflow 64 bits. */
double sgdstab_memory_need(size_t n, size_t k, size_t p, int have_H);

typedef struct {
    double bytes;       /* available; INFINITY when nothing is known */
    char source[96];    /* what the figure is, for messages */
} sgdstab_memory_limit;

/* The memory available (see above).  max_memory > 0 is a limit given by
 * the caller, taking the place of SGDSTAB_MAX_MEMORY.  A malformed
 * SGDSTAB_MAX_MEMORY is an SGDSTAB_EINVAL error. */
int sgdstab_memory_available(double max_memory, sgdstab_memory_limit *lim,
                             sgdstab_error *err);

/* What later allocations may take: as sgdstab_memory_available, but 90%
 * of MemAvailable (a margin for what the system and the process allocate
 * besides) and a limit given less what the process holds already
 * (VmRSS). */
int sgdstab_memory_left(double max_memory, sgdstab_memory_limit *lim,
                        sgdstab_error *err);

/* "24.2 GB", or "350 MB" below a gigabyte (decimal units), into out. */
void sgdstab_memory_format(double bytes, char *out, size_t cap);

/* SGDSTAB_ENOMEM with one line naming label and both numbers when J of
 * shape (n, k, p) needs more than is available, e.g. "big.npz: not enough
 * memory: needs about
 * 24.2 GB (J 200000 x 5000 as float64 plus its SVD), more than the 21.7 GB
 * available (MemAvailable in /proc/meminfo)". */
int sgdstab_memory_check(const char *label, size_t n, size_t k, size_t p,
                         int have_H, double max_memory, sgdstab_error *err);

/* The same for a Gram matrix K of rows × rows (reduce.h: its
 * eigendecomposition in place of the SVD), with the preconditioned KP
 * beside it or not. */
double sgdstab_memory_need_gram(size_t rows, int with_KP);
int sgdstab_memory_check_gram(const char *label, size_t rows, int with_KP,
                              double max_memory, sgdstab_error *err);

/* Parse a size such as "8G", "512M", "1.5e9" (bytes; suffixes K, M, G, T
 * are powers of 1000, an optional trailing B is ignored); -1 if malformed. */
double sgdstab_parse_memory_size(const char *text);

#ifdef __cplusplus
}
#endif

#endif
