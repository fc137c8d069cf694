#include "parallel.h"

#include <cblas.h>
#include <pthread.h>

enum { PAR_MAX_THREADS = 64 };

static size_t nthreads = 1;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
    int t = openblas_get_num_threads();
    nthreads = t < 1 ? 1 : t > PAR_MAX_THREADS ? PAR_MAX_THREADS : (size_t)t;
}

size_t par_threads(void)
{
    pthread_once(&once, init);
    return nthreads;
}

int par_blas_serial(void)
{
    pthread_once(&once, init);
    int saved = openblas_get_num_threads();
    if (saved != 1)
        openblas_set_num_threads(1);
    return saved;
}

void par_blas_restore(int saved)
{
    if (saved != openblas_get_num_threads())
        openblas_set_num_threads(saved);
}

typedef struct {
    par_fn fn;
    void *ctx;
    size_t parts, stride, first;
} par_job;

static void *run_parts(void *arg)
{
    const par_job *j = arg;
    for (size_t p = j->first; p < j->parts; p += j->stride)
        j->fn(j->ctx, p);
    return NULL;
}

void par_run(size_t parts, par_fn fn, void *ctx)
{
    size_t nt = par_threads() < parts ? par_threads() : parts;
    int saved = par_blas_serial();
    par_job jobs[PAR_MAX_THREADS];
    pthread_t tid[PAR_MAX_THREADS];
    int started[PAR_MAX_THREADS] = {0};
    for (size_t t = 0; t < nt; t++)
        jobs[t] = (par_job){fn, ctx, parts, nt, t};
    for (size_t t = 1; t < nt; t++)
        started[t] = pthread_create(&tid[t], NULL, run_parts, &jobs[t]) == 0;
    run_parts(&jobs[0]);
    /* A thread that could not start leaves its parts to the caller. */
    for (size_t t = 1; t < nt; t++)
        if (started[t])
            pthread_join(tid[t], NULL);
        else
            run_parts(&jobs[t]);
    par_blas_restore(saved);
}
