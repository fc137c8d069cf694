/* sgdstab — reproducible random numbers for synthetic problems and
 * benchmarks: GSL's MT19937 generator, so a seed gives the same numbers on
 * every machine and thread count. */
#ifndef SGDSTAB_RNG_H
#define SGDSTAB_RNG_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sgdstab_rng sgdstab_rng;

/* NULL if out of memory. */
sgdstab_rng *sgdstab_rng_alloc(unsigned long seed);
void sgdstab_rng_free(sgdstab_rng *rng);

/* count independent N(0, sd²) values into out. */
void sgdstab_rng_gaussian(sgdstab_rng *rng, double sd, size_t count,
                          double *out);

#ifdef __cplusplus
}
#endif

#endif
