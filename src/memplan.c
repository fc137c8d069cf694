#include "sgdstab/memplan.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

/* OpenBLAS takes a 128 MiB buffer (plus a page) for the calling thread at
 * its first BLAS call, and never gives up if it cannot: blas_memory_alloc
 * retries forever.  Under `ulimit -v` that address space must be left. */
#define OPENBLAS_BUFFER_RESERVE (160.0 * 1024 * 1024)

double sgdstab_memory_need(size_t n, size_t k, size_t p, int have_H)
{
    double rows = (double)n * (double)k, cols = (double)p;
    double mn = fmin(rows, cols), mx = fmax(rows, cols);
    double J = rows * cols;
    /* dgesdd, jobz = 'O': 3·mn + max(mx, 5·mn² + 4·mn) doubles, and 8·mn
     * integers (counted as doubles). */
    double dgesdd = 3 * mn + fmax(mx, 5 * mn * mn + 4 * mn) + 8 * mn;
    double phi = rows * mn;
    double doubles = 2 * J + mn * mn + fmax(dgesdd, phi);
    /* reduce_with_hessian: H, its eigenvectors, the basis, the SVD factor
     * of J·basis, plus J·basis and Φ. */
    if (have_H)
        doubles += 4 * cols * cols + 2 * J;
    return 8 * doubles;
}

double sgdstab_parse_memory_size(const char *text)
{
    static const struct {
        char suffix;
        double scale;
    } units[] = {{'K', 1e3}, {'M', 1e6}, {'G', 1e9}, {'T', 1e12}};
    char *end;
    double v = strtod(text, &end);
    if (end == text || !isfinite(v) || v <= 0)
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (toupper((unsigned char)*end) == units[i].suffix) {
            v *= units[i].scale;
            end++;
            break;
        }
    if (toupper((unsigned char)*end) == 'B')
        end++;
    return *end ? -1 : v;
}

/* A "Key:   123 kB" line of a /proc file, in bytes; -1 if absent. */
static double proc_kb(const char *file, const char *key)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return -1;
    char line[256];
    double v = -1;
    size_t len = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, len) && line[len] == ':') {
            v = 1024 * strtod(line + len + 1, NULL);
            break;
        }
    fclose(f);
    return v;
}

/* Lower lim to bytes (if lower), saying where the figure comes from. */
static void lower(sgdstab_memory_limit *lim, double bytes, const char *source)
{
    if (bytes >= 0 && bytes < lim->bytes) {
        lim->bytes = bytes;
        snprintf(lim->source, sizeof lim->source, "%s", source);
    }
}

/* Address space left under RLIMIT_AS (ulimit -v) for new allocations. */
static double address_space_left(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return -1;
    double used = proc_kb("/proc/self/status", "VmSize");
    double left = (double)rl.rlim_cur - fmax(used, 0) - OPENBLAS_BUFFER_RESERVE;
    return fmax(left, 0);
}

/* The limits of sgdstab_memory_available, with MemAvailable weighted by
 * share and the limits given less held (what the process has already). */
static int memory_limit(double max_memory, double share, double held,
                        sgdstab_memory_limit *lim, sgdstab_error *err)
{
    lim->bytes = INFINITY;
    snprintf(lim->source, sizeof lim->source, "no limit known");
    double avail = proc_kb("/proc/meminfo", "MemAvailable");
    lower(lim, avail < 0 ? avail : share * avail,
          share < 1 ? "90% of MemAvailable in /proc/meminfo"
                    : "MemAvailable in /proc/meminfo");
    const char *env = getenv("SGDSTAB_MAX_MEMORY");
    if (max_memory > 0) {
        lower(lim, fmax(max_memory - held, 0), held > 0
              ? "the limit given, less what is held already"
              : "the limit given");
    } else if (env && *env) {
        double v = sgdstab_parse_memory_size(env);
        if (v < 0)
            return sgdstab_fail(err, SGDSTAB_EINVAL, "SGDSTAB_MAX_MEMORY: '%s' "
                                "is not a size such as 8G or 512M", env);
        lower(lim, fmax(v - held, 0), held > 0
              ? "SGDSTAB_MAX_MEMORY, less what is held already"
              : "set by SGDSTAB_MAX_MEMORY");
    }
    lower(lim, address_space_left(), "address space left under ulimit -v");
    return SGDSTAB_OK;
}

int sgdstab_memory_available(double max_memory, sgdstab_memory_limit *lim,
                             sgdstab_error *err)
{
    return memory_limit(max_memory, 1.0, 0.0, lim, err);
}

int sgdstab_memory_left(double max_memory, sgdstab_memory_limit *lim,
                        sgdstab_error *err)
{
    return memory_limit(max_memory, 0.9,
                        fmax(proc_kb("/proc/self/status", "VmRSS"), 0), lim,
                        err);
}

void sgdstab_memory_format(double bytes, char *out, size_t cap)
{
    if (bytes >= 1e9)
        snprintf(out, cap, "%.1f GB", bytes / 1e9);
    else
        snprintf(out, cap, "%.3g MB", bytes / 1e6);
}

/* SGDSTAB_ENOMEM naming label, need (what it is for) and what is
 * available, when need exceeds it. */
static int check_need(const char *label, double need, const char *what,
                      double max_memory, sgdstab_error *err)
{
    sgdstab_memory_limit lim;
    int st = sgdstab_memory_available(max_memory, &lim, err);
    if (st)
        return st;
    if (need <= lim.bytes)
        return SGDSTAB_OK;
    char need_text[32], have_text[32];
    sgdstab_memory_format(need, need_text, sizeof need_text);
    sgdstab_memory_format(lim.bytes, have_text, sizeof have_text);
    return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: not enough memory: needs "
                        "about %s (%s), more than the %s available (%s)",
                        label, need_text, what, have_text, lim.source);
}

int sgdstab_memory_check(const char *label, size_t n, size_t k, size_t p,
                         int have_H, double max_memory, sgdstab_error *err)
{
    char what[128];
    snprintf(what, sizeof what, "J %zu x %zu as float64 plus its SVD%s",
             n * k, p, have_H ? " and H's eigenvectors" : "");
    return check_need(label, sgdstab_memory_need(n, k, p, have_H), what,
                      max_memory, err);
}

double sgdstab_memory_need_gram(size_t rows, int with_KP)
{
    double N = (double)rows;
    /* K (and KP) as loaded, the copy dsyevr overwrites, its eigenvectors
     * and Φ, each N² at most, and dsyevr's 26·N + 10·N of workspace. */
    return 8 * ((with_KP ? 2 : 1) * N * N + 3 * N * N + 36 * N);
}

int sgdstab_memory_check_gram(const char *label, size_t rows, int with_KP,
                              double max_memory, sgdstab_error *err)
{
    char what[128];
    snprintf(what, sizeof what, "K %zu x %zu as float64%s plus its "
             "eigendecomposition", rows, rows, with_KP ? " and KP" : "");
    return check_need(label, sgdstab_memory_need_gram(rows, with_KP), what,
                      max_memory, err);
}
