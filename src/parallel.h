/* Internal: data-parallel loops for the memory-bound passes and the
 * split BLAS-3 products of the eigensolver.  Work is cut into a fixed
 * number of parts chosen by the caller, never by the number of threads, and
 * every part writes its own output, so results do not depend on how many
 * threads run them.  Used by moments.c (Σ(Z)) and eig_family.c (passes over
 * the basis).
 *
 * Why not OpenBLAS's own threads: after every threaded call its idle
 * workers poll for new work for a while, and on a machine with as many
 * threads as cores they take turns with any thread of ours.  So inside a
 * parallel region, and around whole solves (par_blas_serial), BLAS is held
 * at one thread and the parallelism is ours. */
#ifndef SGDSTAB_PARALLEL_H
#define SGDSTAB_PARALLEL_H

#include <stddef.h>

typedef void (*par_fn)(void *ctx, size_t part);

/* Threads used: OpenBLAS's thread count when first asked (so
 * OPENBLAS_NUM_THREADS=1 makes everything serial), at least 1. */
size_t par_threads(void);

/* fn(ctx, p) for p = 0..parts−1: thread t takes parts t, t+T, … of T
 * threads, the calling thread among them; returns when all are done.  BLAS
 * runs single-threaded meanwhile. */
void par_run(size_t parts, par_fn fn, void *ctx);

/* Hold BLAS at one thread; returns what par_blas_restore needs. */
int par_blas_serial(void);
void par_blas_restore(int saved);

/* First item of part p when n items are cut into `parts` nearly equal
 * contiguous ranges (part p is first(p) .. first(p+1) − 1). */
static inline size_t par_first(size_t n, size_t parts, size_t p)
{
    return n / parts * p + (n % parts) * p / parts;
}

#endif
