/* Link-order check: every cblas_* symbol must come from OpenBLAS, never
 * from GSL's reference gslcblas, which libgsl drags in as a dependency of
 * its own (DT_NEEDED libgslcblas.so.0) and which defines the same names.
 *
 * The dynamic linker binds the library's undefined symbols through the
 * global scope, so the object that dlsym(RTLD_DEFAULT, ...) finds is the one
 * libsgdstab calls. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cblas.h>

#include "sgdstab/status.h"

static const char *object_of(void *addr)
{
    Dl_info info;
    if (!addr || !dladdr(addr, &info) || !info.dli_fname)
        return NULL;
    return info.dli_fname;
}

static void test_global_binding(void **state)
{
    (void)state;
    static const char *syms[] = {"cblas_dgemm", "cblas_dsyrk", "cblas_dgemv",
                                 "cblas_ddot",  "cblas_dnrm2", "cblas_daxpy",
                                 "cblas_dscal", "cblas_dsymm"};
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        void *addr = dlsym(RTLD_DEFAULT, syms[i]);
        const char *obj = object_of(addr);
        if (!obj) {
            fail_msg("%s: not resolvable", syms[i]);
            return;
        }
        print_message("%s -> %s\n", syms[i], obj);
        if (!strstr(obj, "openblas") || strstr(obj, "gslcblas"))
            fail_msg("%s resolves to %s, not OpenBLAS", syms[i], obj);
    }
}

/* The address the compiler took for cblas_dgemm in this program. */
static void test_direct_reference(void **state)
{
    (void)state;
    __typeof__(cblas_dgemm) *volatile fn = cblas_dgemm;
    __typeof__(cblas_dgemm) *plain = fn;
    void *addr;
    memcpy(&addr, &plain, sizeof addr);
    const char *obj = object_of(addr);
    if (!obj) {
        fail_msg("&cblas_dgemm: no object");
        return;
    }
    print_message("&cblas_dgemm -> %s\n", obj);
    assert_non_null(strstr(obj, "openblas"));
    assert_null(strstr(obj, "gslcblas"));

    /* And it computes: a 2x2 product. */
    const double a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
    double c[4] = {0};
    fn(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 1.0, a, 2, b, 2,
       0.0, c, 2);
    assert_true(c[0] == 19 && c[1] == 22 && c[2] == 43 && c[3] == 50);
}

static int seen_openblas;

static int each_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    if (info->dlpi_name && strstr(info->dlpi_name, "openblas"))
        seen_openblas = 1;
    if (info->dlpi_name && *info->dlpi_name)
        print_message("loaded: %s\n", info->dlpi_name);
    return 0;
}

/* OpenBLAS is loaded, and it is the OpenBLAS-specific API that answers. */
static void test_openblas_loaded(void **state)
{
    (void)state;
    seen_openblas = 0;
    dl_iterate_phdr(each_object, NULL);
    assert_true(seen_openblas);
    void *cfg = dlsym(RTLD_DEFAULT, "openblas_get_config");
    assert_non_null(cfg);
    /* keep libsgdstab on the link line (and so its dependencies) */
    assert_non_null(sgdstab_strstatus(SGDSTAB_OK));
}

int main(void)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openblas_loaded),
        cmocka_unit_test(test_global_binding),
        cmocka_unit_test(test_direct_reference),
    };
    return cmocka_run_group_tests_name("blas link", tests, NULL, NULL);
}
