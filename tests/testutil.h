/* Helpers shared by the cmocka test programs of sgdstab.
 *
 * Fixtures are written at build time by fixtures/make_npy_fixtures.py (real
 * NumPy) into the directory named by the environment variable
 * SGDSTAB_FIXTURES, together with manifest.json, which holds every expected
 * value (computed by NumPy, never by the code under test). */
#ifndef SGDSTAB_TESTUTIL_H
#define SGDSTAB_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "sgdstab/config.h"
#include "sgdstab/npy.h"
#include "sgdstab/status.h"

/* A configuration (config.h) as a compound literal: learning rate, batch
 * size, sampling rule and loss scale. */
#define TU_CONFIG(lr_, batch_, sampling_, scale_)                          \
    (&(sgdstab_config){.lr = (lr_), .batch = (batch_),                     \
                       .sampling = (sampling_), .loss_scale = (scale_)})

/* Fixture directory (aborts the program if SGDSTAB_FIXTURES is unset). */
const char *tu_fixtures(void);

/* Path of a fixture file; the string stays valid until tu_cleanup(). */
const char *tu_path(const char *name);

/* Parsed manifest.json (cached) and one of its top-level lists. */
const cJSON *tu_manifest(void);
const cJSON *tu_list(const char *key);

/* Free everything the helpers allocated. */
void tu_cleanup(void);

/* The formula of the fixtures: v[f] = ((37 f) mod 101)/8 − 6. */
double tu_formula(size_t f);
/* Symmetric p×p formula: h[i][j] = v[min(i,j)·p + max(i,j)]. */
double tu_symformula(size_t p, size_t i, size_t j);

/* Whole contents of a file (malloc'd; *len set).  Fails the test if the
 * file cannot be read. */
unsigned char *tu_slurp(const char *path, size_t *len);

/* Create a fresh directory $TMPDIR/sgdstab-test-TAG-XXXXXX (/tmp without
 * TMPDIR) and put its path in dir; 0 on success, −1 on failure (the
 * return value a cmocka setup function gives). */
int tu_make_tmpdir(char *dir, size_t size, const char *tag);

/* Fill an output struct with garbage, so that a function which leaves a
 * field unset on some path is caught. */
void tu_dirty(void *p, size_t size);

/* Assert a failure: rc != SGDSTAB_OK, err->status == rc, the message is one
 * non-empty line, and it contains every non-NULL needle given (NULL ends the
 * list). */
void tu_check_failure(int rc, const sgdstab_error *err, ...);

/* Assert that msg contains at least one of the strings of a JSON array
 * (nothing to check if the array is empty or NULL). */
void tu_check_any(const char *msg, const cJSON *any);

/* Map "EFORMAT" etc. to the status code; -1 for null/unknown. */
int tu_status_code(const cJSON *name);

/* JSON accessors that fail the test when the key is missing. */
size_t tu_jsize(const cJSON *obj, const char *key);
double tu_jnum(const cJSON *obj, const char *key);
const char *tu_jstr(const cJSON *obj, const char *key);
int tu_jbool(const cJSON *obj, const char *key);
const cJSON *tu_jget(const cJSON *obj, const char *key);

/* |a − b| ≤ tol, with a readable failure message. */
#define tu_assert_close(a, b, tol, what)                                      \
    tu_assert_close_((a), (b), (tol), (what), __FILE__, __LINE__)
void tu_assert_close_(double a, double b, double tol, const char *what,
                      const char *file, int line);

/* A = Q·diag(lambda)·Qᵀ (n×n, row-major) with Q a random orthogonal matrix
 * (Gram–Schmidt, twice, of Gaussian columns drawn from seed), so that
 * column j of Q is an eigenvector for lambda[j]; Q is stored if not NULL. */
void tu_spectral_matrix(size_t n, const double *lambda, unsigned long seed,
                        double *A, double *Q);

/* Run a dynamically built group of tests; frees nothing. */
int tu_run(const char *group, struct CMUnitTest *tests, size_t n);

/* A growable list of dynamically named tests. */
typedef struct {
    struct CMUnitTest *t;
    size_t n, cap;
    char **names;
} tu_tests;
void tu_add(tu_tests *ts, const char *name, CMUnitTestFunction fn,
            void *state);
void tu_tests_free(tu_tests *ts);

#endif
