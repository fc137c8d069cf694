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
#include "sgdstab/moments.h"
#include "sgdstab/npy.h"
#include "sgdstab/problem.h"
#include "sgdstab/reduce.h"
#include "sgdstab/rng.h"
#include "sgdstab/simulate.h"
#include "sgdstab/stability.h"
#include "sgdstab/status.h"

/* A configuration (config.h) as a compound literal: learning rate, batch
 * size, sampling rule and loss scale. */
#define TU_CONFIG(lr_, batch_, sampling_, scale_)                          \
    (&(sgdstab_config){.lr = (lr_), .batch = (batch_),                     \
                       .sampling = (sampling_), .loss_scale = (scale_)})

/* A problem, its reduced coordinates and a stability workspace, freed
 * together; c is a loss scale for the test's own use. */
typedef struct {
    sgdstab_problem *prob;
    sgdstab_reduced *red;
    sgdstab_stability *s;
    double c;
} tu_engine;

void tu_engine_free(tu_engine *e);

/* K += w·(M⊗M): the p²×p² matrix of S ↦ M S Mᵀ on row-major vec(S),
 * K[(a,b),(c,d)] = M_ac M_bd. */
void tu_kron_add(const double *M, size_t p, double w, double *K);

/* The relative probability of a subset of `size` of the n samples as a
 * batch: for `without`, 1 when size = B and 0 otherwise; for `bernoulli`,
 * q^size (1 − q)^(n − size) with q = B/n. */
double tu_subset_weight(sgdstab_sampling smp, size_t n, size_t B,
                        size_t size);

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

/* The scratch directory of a group of tests.  tu_tmpdir_setup, a cmocka
 * setup function, makes a fresh directory $TMPDIR/sgdstab-test-XXXXXX (/tmp
 * without TMPDIR), whose path tu_tmpdir() returns; tu_tmpdir_teardown
 * deletes the files left in it, then the directory.  Both give 0 on
 * success, −1 on failure. */
int tu_tmpdir_setup(void **state);
int tu_tmpdir_teardown(void **state);
const char *tu_tmpdir(void);

/* tu_tmpdir()/name in path (size bytes); returns path. */
char *tu_tmp_path(char *path, size_t size, const char *name);

/* The number of entries of dir, without . and ..; every entry other than
 * want (which may be NULL) is printed, and *found (unless found is NULL)
 * tells whether want is there. */
size_t tu_dir_entries(const char *dir, const char *want, int *found);

/* A heap array of nd dimensions (the shape entries beyond nd are 1) with
 * the given dtype descr, holding a copy of vals, or the fixtures' formula
 * tu_formula when vals is NULL.  No data for an empty array. */
sgdstab_array tu_array(int nd, size_t s0, size_t s1, size_t s2,
                       const char *descr, const double *vals);

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

/* |a − b| ≤ rtol·|b|, with a readable failure message. */
#define tu_assert_close_rel(a, b, rtol, what)                                 \
    tu_assert_close_rel_((a), (b), (rtol), (what), __FILE__, __LINE__)
void tu_assert_close_rel_(double a, double b, double rtol, const char *what,
                          const char *file, int line);

/* ------------------------------------------------- problems and engines */

/* Every fresh-batch sampling rule. */
extern const sgdstab_sampling tu_samplings[3];

/* n·k·p values with N(0, (scale/√p)²) entries drawn from rng (malloc'd):
 * a Jacobian whose G = JᵀJ/n has eigenvalues of order scale². */
double *tu_random_J(sgdstab_rng *rng, size_t n, size_t k, size_t p,
                    double scale);

/* The problem named label with J (n·k·p values) and, unless H is NULL, the
 * p×p Hessian H, both copied; fails the test if the library refuses it. */
sgdstab_problem *tu_problem(const char *label, size_t n, size_t k, size_t p,
                            const double *J, const double *H);

/* tu_problem("random", …) of tu_random_J from a generator seeded with
 * seed, without H. */
sgdstab_problem *tu_random_problem(size_t n, size_t k, size_t p, double scale,
                                   unsigned long seed);

/* The reduced coordinates of prob with the default options; fails the test
 * on an error. */
sgdstab_reduced *tu_reduce(const sgdstab_problem *prob);

/* A problem with its reduced coordinates. */
typedef struct {
    sgdstab_problem *prob;
    sgdstab_reduced *red;
} tu_fixture;

/* prob (taken over) and tu_reduce(prob). */
tu_fixture tu_fixture_of(sgdstab_problem *prob);
void tu_fixture_free(tu_fixture *f);

/* G = JᵀJ/n for J of n·k rows of p, computed here with CBLAS: p×p,
 * calloc'd, the upper triangle only. */
double *tu_gram(const double *J, size_t n, size_t k, size_t p);

/* The p eigenvalues of prob's G = JᵀJ/n, ascending, with LAPACKE. */
void tu_gram_eigenvalues(const sgdstab_problem *prob, double *w);

/* Simulation options: learning rate lr, batch size, steps, runs, loss
 * scale 1, seed 5, everything else zero (sampling without replacement). */
sgdstab_sim_options tu_sim_options(double lr, size_t batch, size_t steps,
                                   size_t runs);

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
