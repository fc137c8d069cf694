#define _DEFAULT_SOURCE  /* MADV_HUGEPAGE */
#include "hugealloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

enum { HUGE_PAGE = 2 << 20 };

void *sgdstab_huge_malloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    size_t bytes = count * size;
    if (bytes < HUGEALLOC_MIN)
        return malloc(bytes ? bytes : 1);
    void *p;
    if (posix_memalign(&p, HUGE_PAGE, bytes))
        return NULL;
#ifdef MADV_HUGEPAGE
    /* Advice only: where huge pages are off, plain pages serve. */
    (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

void *sgdstab_huge_calloc(size_t count, size_t size)
{
    void *p = sgdstab_huge_malloc(count, size);
    if (p)
        memset(p, 0, count * size);
    return p;
}
