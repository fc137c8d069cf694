/* Internal: allocation of the library's large buffers (the problem, its
 * factorization, the moment workspace, the eigensolver's bases).
 *
 * A buffer of HUGEALLOC_MIN bytes or more is aligned to 2 MiB and advised
 * to the kernel as transparent huge pages (madvise MADV_HUGEPAGE, which
 * takes effect when /sys/kernel/mm/transparent_hugepage/enabled is
 * `always` or `madvise`).  Each first touch of a 4 KiB page is a page
 * fault; on a virtual machine such faults cost about 3.5 ms per MB
 * written, more than the arithmetic of a whole η* solve spends on its
 * workspace (README, Speed).  Smaller buffers come from malloc.  Either
 * kind is released with free(). */
#ifndef SGDSTAB_HUGEALLOC_H
#define SGDSTAB_HUGEALLOC_H

#include <stddef.h>

#define HUGEALLOC_MIN ((size_t)4 << 20)

/* count·size bytes, uninitialized; NULL when the product overflows or
 * memory is short. */
void *sgdstab_huge_malloc(size_t count, size_t size);

/* As sgdstab_huge_malloc, zeroed. */
void *sgdstab_huge_calloc(size_t count, size_t size);

#endif
