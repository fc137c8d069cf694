#include "minibatch.h"

#include <gsl/gsl_randist.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* MurmurHash3's finalizer: a bijection of 32-bit words that scatters them. */
static uint32_t mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x85EBCA6Bu;
    x ^= x >> 13;
    x *= 0xC2B2AE35u;
    x ^= x >> 16;
    return x;
}

/* The MT19937 seed of run j: distinct for every run of one seed (a
 * bijection of mix32(seed) + j modulo 2^32), scattered over the seed space. */
static unsigned long run_seed(unsigned long seed, size_t run)
{
    return mix32(mix32((uint32_t)seed) + (uint32_t)run);
}

int mb_problem_make(mb_problem *pb, const sgdstab_reduced *red,
                    const sgdstab_sim_options *opt, sgdstab_error *err)
{
    memset(pb, 0, sizeof *pb);
    pb->red = red;
    pb->opt = opt;
    pb->n = red->n;
    pb->k = red->k;
    pb->r = red->r;
    pb->p = red->p;
    pb->nnull = red->p > red->r ? red->p - red->r : 0;
    pb->c = opt->config.loss_scale;
    size_t r = red->r;
    if (!red->G)
        return SGDSTAB_OK;
    if (!(pb->fixed = malloc(r * r * sizeof *pb->fixed)))
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "out of memory");
    for (size_t j = 0; j < r; j++)
        for (size_t l = 0; l < r; l++)
            pb->fixed[j * r + l] = pb->c * ((j == l ? red->lambda[j] : 0) -
                                            red->G[j * r + l]);
    return SGDSTAB_OK;
}

void mb_problem_free(mb_problem *pb)
{
    free(pb->fixed);
    pb->fixed = NULL;
}

void mb_work_free(mb_work *w)
{
    if (w->rng)
        gsl_rng_free(w->rng);
    free(w->perm);
    free(w->batch);
    free(w->z);
    free(w->g);
    free(w->gp);
    free(w->buf);
    free(w->v);
    memset(w, 0, sizeof *w);
}

int mb_work_alloc(const mb_problem *pb, mb_work *w)
{
    memset(w, 0, sizeof *w);
    size_t r = pb->r ? pb->r : 1, p = pb->p > r ? pb->p : r;
    w->rng = gsl_rng_alloc(gsl_rng_mt19937);
    w->perm = malloc(pb->n * sizeof *w->perm);
    size_t B = pb->opt->config.batch, most = B > pb->n ? B : pb->n;
    w->batch = malloc(most * sizeof *w->batch);
    w->z = malloc(r * sizeof *w->z);
    w->g = malloc(r * sizeof *w->g);
    w->gp = malloc(3 * p * sizeof *w->gp);
    w->buf = malloc(r * sizeof *w->buf);
    w->v = malloc(r * sizeof *w->v);
    if (w->rng && w->perm && w->batch && w->z && w->g && w->gp && w->buf &&
        w->v)
        return 0;
    mb_work_free(w);
    return -1;
}

void mb_start_run(const mb_problem *pb, mb_work *w, size_t run)
{
    gsl_rng_set(w->rng, run_seed(pb->opt->seed, run));
    for (size_t i = 0; i < pb->n; i++)
        w->perm[i] = i;
    w->pos = pb->n;  /* reshuffle at the first step */
}

size_t mb_draw_batch(const mb_problem *pb, mb_work *w, double *scale)
{
    const sgdstab_sim_options *o = pb->opt;
    size_t n = pb->n, B = o->config.batch, m = 0;
    if (o->config.sampling == SGDSTAB_SAMPLING_RESHUFFLE) {
        if (w->pos >= n) {
            gsl_ran_shuffle(w->rng, w->perm, n, sizeof *w->perm);
            w->pos = 0;
        }
        m = n - w->pos < B ? n - w->pos : B;
        memcpy(w->batch, w->perm + w->pos, m * sizeof *w->batch);
        w->pos += m;
        *scale = (double)m;
        return m;
    }
    *scale = (double)B;
    switch (o->config.sampling) {
    case SGDSTAB_SAMPLING_WITH:
        for (m = 0; m < B; m++)
            w->batch[m] = gsl_rng_uniform_int(w->rng, n);
        return B;
    case SGDSTAB_SAMPLING_BERNOULLI: {
        /* Each sample kept with probability q: skip geometric gaps. */
        double q = (double)B / (double)n;
        if (q >= 1) {
            for (m = 0; m < n; m++)
                w->batch[m] = m;
            return n;
        }
        for (size_t i = gsl_ran_geometric(w->rng, q) - 1; i < n;
             i += gsl_ran_geometric(w->rng, q))
            w->batch[m++] = i;
        return m;
    }
    default:
        /* Partial Fisher–Yates: the first B entries become the batch. */
        for (m = 0; m < B; m++) {
            size_t j = m + gsl_rng_uniform_int(w->rng, n - m);
            size_t t = w->perm[m];
            w->perm[m] = w->perm[j];
            w->perm[j] = t;
            w->batch[m] = w->perm[m];
        }
        return B;
    }
}

void mb_gradient(const mb_problem *pb, const mb_work *w, size_t m,
                 double scale, const double *z, double *g)
{
    const size_t r = pb->r, k = pb->k;
    const double *phi = pb->red->phi;
    memset(g, 0, r * sizeof *g);
    for (size_t b = 0; b < m; b++)
        for (size_t o = 0; o < k; o++) {
            const double *row = phi + (w->batch[b] * k + o) * r;
            double v = 0;
            for (size_t j = 0; j < r; j++)
                v += row[j] * z[j];
            for (size_t j = 0; j < r; j++)
                g[j] += v * row[j];
        }
    double f = pb->c / scale;
    for (size_t j = 0; j < r; j++)
        g[j] *= f;
    if (pb->fixed)
        for (size_t j = 0; j < r; j++) {
            double s = 0;
            for (size_t l = 0; l < r; l++)
                s += pb->fixed[j * r + l] * z[l];
            g[j] += s;
        }
}

void mb_gradient_noise(const mb_problem *pb, mb_work *w, size_t m,
                       double scale, double *g)
{
    const sgdstab_sim_options *o = pb->opt;
    const size_t r = pb->r, k = pb->k;
    if (!o->residuals && !(o->label_noise > 0))
        return;
    const double f = pb->c / scale;
    for (size_t b = 0; b < m; b++)
        for (size_t out = 0; out < k; out++) {
            const size_t row = w->batch[b] * k + out;
            double v = o->residuals ? o->residuals[row] : 0;
            if (o->label_noise > 0)
                v += gsl_ran_gaussian(w->rng, o->label_noise);
            const double *phi = pb->red->phi + row * r;
            for (size_t j = 0; j < r; j++)
                g[j] += f * v * phi[j];
        }
}

size_t mb_groups(size_t runs)
{
    return runs < MB_GROUPS ? runs : MB_GROUPS;
}

size_t mb_group_first(size_t runs, size_t g)
{
    return g * runs / mb_groups(runs);
}

typedef struct {
    const mb_problem *pb;
    void (*job)(void *ctx, mb_work *w, size_t g);
    void *ctx;
    size_t ngroups, next, done;
    int stop, failed;
    pthread_mutex_t lock;
    sgdstab_progress_fn progress;
    void *pctx;
} mb_pool;

static void *worker(void *arg)
{
    mb_pool *pool = arg;
    mb_work w;
    if (mb_work_alloc(pool->pb, &w)) {
        pthread_mutex_lock(&pool->lock);
        pool->failed = pool->stop = 1;
        pthread_mutex_unlock(&pool->lock);
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&pool->lock);
        size_t g = pool->stop ? pool->ngroups : pool->next++;
        pthread_mutex_unlock(&pool->lock);
        if (g >= pool->ngroups)
            break;
        pool->job(pool->ctx, &w, g);
        pthread_mutex_lock(&pool->lock);
        pool->done++;
        if (!pool->stop && pool->progress &&
            pool->progress(pool->pctx, pool->done, pool->ngroups))
            pool->stop = 1;
        pthread_mutex_unlock(&pool->lock);
    }
    mb_work_free(&w);
    return NULL;
}

int mb_parallel(const mb_problem *pb, size_t runs, size_t threads,
                void (*job)(void *ctx, mb_work *w, size_t g), void *ctx,
                sgdstab_progress_fn progress, void *pctx, const char *what,
                sgdstab_error *err)
{
    mb_pool pool = {.pb = pb, .job = job, .ctx = ctx,
                    .ngroups = mb_groups(runs), .progress = progress,
                    .pctx = pctx};
    size_t nt = threads;
    if (nt == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        nt = cpus > 0 ? (size_t)cpus : 1;
    }
    if (nt > pool.ngroups)
        nt = pool.ngroups;
    pthread_mutex_init(&pool.lock, NULL);
    pthread_t tid[MB_GROUPS];
    size_t started = 0;
    for (size_t i = 1; i < nt; i++)
        if (pthread_create(&tid[started], NULL, worker, &pool) == 0)
            started++;
    worker(&pool);  /* this thread works too */
    for (size_t i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    pthread_mutex_destroy(&pool.lock);
    if (pool.failed)
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory", what);
    if (pool.stop)
        return sgdstab_fail(err, SGDSTAB_ECANCELED, "%s canceled after %zu "
                            "of %zu groups of runs", what, pool.done,
                            pool.ngroups);
    return SGDSTAB_OK;
}
