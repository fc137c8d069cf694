/* sgdstab — progress reports of the long computations, through which a
 * caller may also stop them. */
#ifndef SGDSTAB_PROGRESS_H
#define SGDSTAB_PROGRESS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Called with the units of work done and their total (solves of a phase
 * diagram, groups of Monte Carlo runs); a non-zero return stops the
 * computation with SGDSTAB_ECANCELED (status.h). */
typedef int (*sgdstab_progress_fn)(void *ctx, size_t done, size_t total);

#ifdef __cplusplus
}
#endif

#endif
