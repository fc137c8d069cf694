/* The large-buffer allocator (src/hugealloc.h): small requests as malloc,
 * large ones aligned to 2 MiB, every byte writable, the zeroing variant
 * zero throughout, an overflowing count·size refused with NULL, and both
 * kinds released by free() (AddressSanitizer checks the pairing). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "hugealloc.h"

static void test_small_and_empty(void **state)
{
    (void)state;
    double *a = sgdstab_huge_malloc(100, sizeof *a);
    assert_non_null(a);
    a[99] = 1;
    free(a);
    void *z = sgdstab_huge_malloc(0, 8);  /* like malloc(0): freeable */
    assert_non_null(z);
    free(z);
}

static void test_large_aligned_writable(void **state)
{
    (void)state;
    const size_t count = HUGEALLOC_MIN / sizeof(double) + 12345;
    double *a = sgdstab_huge_malloc(count, sizeof *a);
    assert_non_null(a);
    assert_int_equal((uintptr_t)a % ((size_t)2 << 20), 0);
    for (size_t i = 0; i < count; i++)
        a[i] = (double)i;
    assert_true(a[count - 1] == (double)(count - 1));
    free(a);
}

static void test_zeroed(void **state)
{
    (void)state;
    /* Below and above the threshold, after a dirty buffer was freed. */
    const size_t sizes[] = {1000, HUGEALLOC_MIN / sizeof(double) + 7};
    for (size_t s = 0; s < 2; s++) {
        double *dirty = sgdstab_huge_malloc(sizes[s], sizeof *dirty);
        assert_non_null(dirty);
        memset(dirty, 0xff, sizes[s] * sizeof *dirty);
        free(dirty);
        double *a = sgdstab_huge_calloc(sizes[s], sizeof *a);
        assert_non_null(a);
        for (size_t i = 0; i < sizes[s]; i++)
            assert_true(a[i] == 0.0);
        free(a);
    }
}

static void test_overflow(void **state)
{
    (void)state;
    assert_null(sgdstab_huge_malloc(SIZE_MAX / 4, 8));
    assert_null(sgdstab_huge_calloc(SIZE_MAX / 4, 8));
    assert_null(sgdstab_huge_malloc((size_t)1 << 40, (size_t)1 << 40));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_and_empty),
        cmocka_unit_test(test_large_aligned_writable),
        cmocka_unit_test(test_zeroed),
        cmocka_unit_test(test_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
