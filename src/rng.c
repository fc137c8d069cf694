#include "sgdstab/rng.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <stdlib.h>

struct sgdstab_rng {
    gsl_rng *r;
};

sgdstab_rng *sgdstab_rng_alloc(unsigned long seed)
{
    sgdstab_rng *rng = malloc(sizeof *rng);
    if (!rng)
        return NULL;
    if (!(rng->r = gsl_rng_alloc(gsl_rng_mt19937))) {
        free(rng);
        return NULL;
    }
    gsl_rng_set(rng->r, seed);
    return rng;
}

void sgdstab_rng_free(sgdstab_rng *rng)
{
    if (!rng)
        return;
    gsl_rng_free(rng->r);
    free(rng);
}

void sgdstab_rng_gaussian(sgdstab_rng *rng, double sd, size_t count,
                          double *out)
{
    for (size_t i = 0; i < count; i++)
        out[i] = gsl_ran_gaussian(rng->r, sd);
}
