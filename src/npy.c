/* NumPy .npy reader and writer.  Format reference: numpy/lib/format.py
 * ("NEP 1"): magic "\x93NUMPY", major/minor version bytes, a little-endian
 * header length (2 bytes in 1.0, 4 bytes in 2.0/3.0), then a Python dict
 * literal with 'descr', 'fortran_order' and 'shape', padded with spaces and
 * ended by '\n'; the raw array data follows. */
#include "npy_stream.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hugealloc.h"
#include "sgdstab/outfile.h"

static const char NPY_MAGIC[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

/* ---------------------------------------------------------------- dtypes */

typedef struct {
    size_t itemsize;  /* 2, 4 or 8 */
    int swap;         /* stored in the other byte order than the host's */
} npy_dtype;

static int host_is_little(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Parse a descr string such as "<f8"; 0 when it is not a float type we read.
 * '=' and '|' (and no prefix) mean native order, as numpy.dtype has it. */
static int parse_descr(const char *descr, npy_dtype *dt)
{
    const char *c = descr;
    int little = host_is_little();
    if (*c == '<' || *c == '>' || *c == '=' || *c == '|') {
        if (*c == '<')
            little = 1;
        else if (*c == '>')
            little = 0;
        c++;
    }
    if (c[0] != 'f' || c[1] == '\0' || c[2] != '\0')
        return 0;
    switch (c[1]) {
    case '2': dt->itemsize = 2; break;
    case '4': dt->itemsize = 4; break;
    case '8': dt->itemsize = 8; break;
    default: return 0;
    }
    dt->swap = little != host_is_little();
    return 1;
}

size_t sgdstab_npy_itemsize(const char *descr)
{
    npy_dtype dt;
    return parse_descr(descr, &dt) ? dt.itemsize : 0;
}

double sgdstab_npy_epsilon(const char *descr)
{
    switch (sgdstab_npy_itemsize(descr)) {
    case 2: return 0x1p-10;  /* IEEE binary16 */
    case 4: return FLT_EPSILON;
    default: return DBL_EPSILON;
    }
}

static double half_to_double(uint16_t h)
{
    int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    double v;
    if (exp == 0)
        v = ldexp(mant, -24);
    else if (exp == 31)
        v = mant ? NAN : INFINITY;
    else
        v = ldexp(mant | 0x400, exp - 25);
    return sign ? -v : v;
}

/* Convert count items of raw bytes to doubles. */
static void convert(const unsigned char *raw, size_t count, npy_dtype dt,
                    double *dst)
{
    unsigned char b[8];
    for (size_t i = 0; i < count; i++) {
        const unsigned char *src = raw + i * dt.itemsize;
        if (dt.swap) {
            for (size_t j = 0; j < dt.itemsize; j++)
                b[j] = src[dt.itemsize - 1 - j];
        } else {
            memcpy(b, src, dt.itemsize);
        }
        if (dt.itemsize == 8) {
            memcpy(&dst[i], b, 8);
        } else if (dt.itemsize == 4) {
            float f;
            memcpy(&f, b, 4);
            dst[i] = f;
        } else {
            uint16_t h;
            memcpy(&h, b, 2);
            dst[i] = half_to_double(h);
        }
    }
}

/* ---------------------------------------------------------------- header */

typedef struct {
    const char *p;
    char descr[8];
    int fortran;
    int ndim;
    size_t shape[SGDSTAB_NPY_MAX_DIMS];
    const char *label;
    sgdstab_error *err;
} header_parser;

static void skip_space(header_parser *h)
{
    while (*h->p == ' ' || *h->p == '\t' || *h->p == '\n' || *h->p == '\r')
        h->p++;
}

static int header_error(header_parser *h, const char *what)
{
    return sgdstab_fail(h->err, SGDSTAB_EFORMAT, "%s: malformed .npy header: %s",
                        h->label, what);
}

/* A Python string literal in single or double quotes, without escapes (numpy
 * never writes any in these headers).  Writes at most cap−1 chars to out and
 * reports longer strings as truncated with "..." so messages stay readable. */
static int parse_string(header_parser *h, char *out, size_t cap)
{
    char quote = *h->p;
    if (quote != '\'' && quote != '"')
        return header_error(h, "expected a quoted string");
    const char *start = ++h->p;
    while (*h->p && *h->p != quote) {
        if (*h->p == '\\')
            return header_error(h, "escape sequences are not supported");
        h->p++;
    }
    if (*h->p != quote)
        return header_error(h, "unterminated string");
    size_t len = (size_t)(h->p - start);
    h->p++;
    if (len < cap) {
        memcpy(out, start, len);
        out[len] = '\0';
    } else {
        memcpy(out, start, cap - 4);
        memcpy(out + cap - 4, "...", 4);
    }
    return SGDSTAB_OK;
}

static int parse_uint(header_parser *h, size_t *v)
{
    if (*h->p < '0' || *h->p > '9')
        return header_error(h, "expected a non-negative integer in 'shape'");
    size_t x = 0;
    int overflow = 0;
    while (*h->p >= '0' && *h->p <= '9') {
        size_t d = (size_t)(*h->p++ - '0');
        if (x > (SIZE_MAX - d) / 10)
            overflow = 1;
        else
            x = x * 10 + d;
    }
    if (*h->p == 'L')  /* Python 2 long literal, as old numpy wrote */
        h->p++;
    if (overflow)
        return sgdstab_fail(h->err, SGDSTAB_EFORMAT,
                            "%s: declared shape too large (a dimension "
                            "overflows %zu bits)", h->label, 8 * sizeof(size_t));
    *v = x;
    return SGDSTAB_OK;
}

/* '(' [int (',' int)* [',']] ')', where a single element needs its comma. */
static int parse_shape(header_parser *h)
{
    if (*h->p != '(')
        return header_error(h, "'shape' must be a tuple");
    h->p++;
    skip_space(h);
    int count = 0, comma_after_last = 0;
    while (*h->p != ')') {
        size_t v = 0;
        int st = parse_uint(h, &v);
        if (st)
            return st;
        if (count < SGDSTAB_NPY_MAX_DIMS)
            h->shape[count] = v;
        count++;
        skip_space(h);
        comma_after_last = 0;
        if (*h->p == ',') {
            h->p++;
            comma_after_last = 1;
            skip_space(h);
        } else if (*h->p != ')') {
            return header_error(h, "expected ',' or ')' in 'shape'");
        }
    }
    h->p++;
    if (count == 1 && !comma_after_last)
        return header_error(h, "'shape' must be a tuple, e.g. (7,)");
    if (count == 0 || count > SGDSTAB_NPY_MAX_DIMS)
        return sgdstab_fail(h->err, SGDSTAB_EFORMAT,
                            "%s: %d-dimensional arrays are not supported "
                            "(need 1 to 4 dimensions)", h->label, count);
    h->ndim = count;
    return SGDSTAB_OK;
}

static int parse_header(header_parser *h)
{
    enum { KEY_DESCR = 1, KEY_FORTRAN = 2, KEY_SHAPE = 4 };
    int seen = 0, st;
    skip_space(h);
    if (*h->p != '{')
        return header_error(h, "expected '{'");
    h->p++;
    for (;;) {
        skip_space(h);
        if (*h->p == '}')
            break;
        char key[32];
        if ((st = parse_string(h, key, sizeof key)))
            return st;
        skip_space(h);
        if (*h->p != ':')
            return header_error(h, "expected ':' after a key");
        h->p++;
        skip_space(h);
        int which = !strcmp(key, "descr") ? KEY_DESCR
                  : !strcmp(key, "fortran_order") ? KEY_FORTRAN
                  : !strcmp(key, "shape") ? KEY_SHAPE : 0;
        if (!which)
            return sgdstab_fail(h->err, SGDSTAB_EFORMAT,
                                "%s: malformed .npy header: unknown key '%s'",
                                h->label, key);
        if (seen & which)
            return sgdstab_fail(h->err, SGDSTAB_EFORMAT,
                                "%s: malformed .npy header: duplicate key '%s'",
                                h->label, key);
        seen |= which;
        if (which == KEY_DESCR) {
            if (*h->p == '[' || *h->p == '(')
                return sgdstab_fail(h->err, SGDSTAB_EFORMAT,
                                    "%s: structured dtype not supported "
                                    "(need float32/float64)", h->label);
            if ((st = parse_string(h, h->descr, sizeof h->descr)))
                return st;
        } else if (which == KEY_FORTRAN) {
            if (!strncmp(h->p, "True", 4)) {
                h->fortran = 1;
                h->p += 4;
            } else if (!strncmp(h->p, "False", 5)) {
                h->fortran = 0;
                h->p += 5;
            } else {
                return header_error(h, "'fortran_order' must be True or False");
            }
        } else if ((st = parse_shape(h))) {
            return st;
        }
        skip_space(h);
        if (*h->p == ',')
            h->p++;
        else if (*h->p != '}')
            return header_error(h, "expected ',' or '}'");
    }
    h->p++;
    skip_space(h);
    if (*h->p != '\0')
        return header_error(h, "unexpected text after '}'");
    if (seen != (KEY_DESCR | KEY_FORTRAN | KEY_SHAPE))
        return header_error(h, !(seen & KEY_DESCR) ? "missing key 'descr'"
                            : !(seen & KEY_SHAPE) ? "missing key 'shape'"
                                                  : "missing key 'fortran_order'");
    return SGDSTAB_OK;
}

/* ------------------------------------------------------------------ read */

static int read_exact(const npy_stream *s, void *buf, size_t n, size_t *got)
{
    int64_t r = s->read(s->ctx, buf, n);
    if (r < 0)
        return -1;
    *got = (size_t)r;
    return 0;
}

static void format_shape(const header_parser *h, char *buf, size_t cap)
{
    int len = snprintf(buf, cap, "(");
    for (int d = 0; d < h->ndim && len > 0 && (size_t)len < cap; d++)
        len += snprintf(buf + len, cap - (size_t)len, d ? ", %zu" : "%zu",
                        h->shape[d]);
    if (len > 0 && (size_t)len < cap)
        snprintf(buf + len, cap - (size_t)len, h->ndim == 1 ? ",)" : ")");
}

/* Fortran order → C order for up to three dimensions. */
static void fortran_to_c(const double *f, double *c, int ndim,
                         const size_t *shape)
{
    size_t s0 = shape[0], s1 = ndim > 1 ? shape[1] : 1,
           s2 = ndim > 2 ? shape[2] : 1;
    for (size_t i = 0; i < s0; i++)
        for (size_t j = 0; j < s1; j++)
            for (size_t l = 0; l < s2; l++)
                c[(i * s1 + j) * s2 + l] = f[i + s0 * (j + s1 * l)];
}

static int read_data(const npy_stream *s, const header_parser *h,
                     npy_dtype dt, size_t size, sgdstab_array *out,
                     sgdstab_error *err)
{
    enum { CHUNK = 1 << 16 };
    double *data = sgdstab_huge_malloc(size, sizeof *data);
    double *cdata = h->fortran && h->ndim > 1
                        ? sgdstab_huge_malloc(size, sizeof *cdata) : NULL;
    unsigned char *raw = malloc(CHUNK);
    int st = SGDSTAB_OK;
    if (!data || !raw || (h->fortran && h->ndim > 1 && !cdata)) {
        st = sgdstab_fail(err, SGDSTAB_ENOMEM,
                          "%s: out of memory reading %zu values", s->label,
                          size);
        goto done;
    }
    size_t per_chunk = CHUNK / dt.itemsize;
    for (size_t done_items = 0; done_items < size;) {
        size_t want = size - done_items < per_chunk ? size - done_items
                                                    : per_chunk;
        size_t got;
        if (read_exact(s, raw, want * dt.itemsize, &got)) {
            st = sgdstab_fail(err, SGDSTAB_EIO, "%s: read error", s->label);
            goto done;
        }
        if (got != want * dt.itemsize) {
            st = sgdstab_fail(err, SGDSTAB_EFORMAT,
                              "%s: truncated data (stream ended early)",
                              s->label);
            goto done;
        }
        convert(raw, want, dt, data + done_items);
        done_items += want;
    }
    if (cdata) {
        fortran_to_c(data, cdata, h->ndim, h->shape);
        double *t = data;
        data = cdata;
        cdata = t;
    }
    out->data = data;
    data = NULL;
done:
    free(data);
    free(cdata);
    free(raw);
    return st;
}

/* The magic string, the version and the header of a .npy stream, parsed
 * into h; *consumed is the number of bytes read. */
static int read_header(const npy_stream *s, header_parser *h,
                       uint64_t *consumed, sgdstab_error *err)
{
    unsigned char pre[12];
    size_t got;
    if (s->size == 0)
        return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: empty file", s->label);
    if (read_exact(s, pre, 8, &got))
        return sgdstab_fail(err, SGDSTAB_EIO, "%s: read error", s->label);
    if (got < 6 || memcmp(pre, NPY_MAGIC, 6) != 0)
        return sgdstab_fail(err, SGDSTAB_EFORMAT,
                            "%s: not a .npy file (bad magic)", s->label);
    if (got < 8)
        return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: truncated header",
                            s->label);
    int major = pre[6], minor = pre[7];
    if (major < 1 || major > 3 || minor != 0)
        return sgdstab_fail(err, SGDSTAB_EFORMAT,
                            "%s: unsupported .npy format version %d.%d "
                            "(need 1.0, 2.0 or 3.0)", s->label, major, minor);
    size_t lenbytes = major == 1 ? 2 : 4;
    if (read_exact(s, pre + 8, lenbytes, &got))
        return sgdstab_fail(err, SGDSTAB_EIO, "%s: read error", s->label);
    if (got < lenbytes)
        return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: truncated header",
                            s->label);
    uint64_t hlen = (uint64_t)pre[8] | (uint64_t)pre[9] << 8;
    if (lenbytes == 4)
        hlen |= (uint64_t)pre[10] << 16 | (uint64_t)pre[11] << 24;
    if (hlen > SGDSTAB_NPY_HEADER_MAX)
        return sgdstab_fail(err, SGDSTAB_EFORMAT,
                            "%s: header length %llu exceeds the limit of %d "
                            "bytes", s->label, (unsigned long long)hlen,
                            SGDSTAB_NPY_HEADER_MAX);
    *consumed = 8 + lenbytes;
    if (hlen > s->size - *consumed)
        return sgdstab_fail(err, SGDSTAB_EFORMAT,
                            "%s: truncated header (declares %llu bytes, %llu "
                            "present)", s->label, (unsigned long long)hlen,
                            (unsigned long long)(s->size - *consumed));
    char *text = malloc(hlen + 1);
    if (!text)
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory",
                            s->label);
    if (read_exact(s, text, hlen, &got) || got != hlen) {
        free(text);
        return sgdstab_fail(err, SGDSTAB_EFORMAT, "%s: truncated header",
                            s->label);
    }
    text[hlen] = '\0';
    *consumed += hlen;
    if (strlen(text) != hlen) {
        free(text);
        return sgdstab_fail(err, SGDSTAB_EFORMAT,
                            "%s: malformed .npy header: contains a NUL byte",
                            s->label);
    }
    *h = (header_parser){.p = text, .label = s->label, .err = err};
    int st = parse_header(h);
    free(text);
    return st;
}

/* The element count of the declared shape, checked against the bytes left
 * after the header (remaining): exactly the data, no more, no less. */
static int check_data_size(const npy_stream *s, const header_parser *h,
                           npy_dtype dt, uint64_t remaining, size_t *count,
                           sgdstab_error *err)
{
    char shape_text[96];
    format_shape(h, shape_text, sizeof shape_text);
    size_t size = 1;
    for (int d = 0; d < h->ndim; d++) {
        if (h->shape[d] && size > SIZE_MAX / h->shape[d])
            return sgdstab_fail(err, SGDSTAB_EFORMAT,
                                "%s: declared shape %s too large", s->label,
                                shape_text);
        size *= h->shape[d];
    }
    if (size > SIZE_MAX / sizeof(double))
        return sgdstab_fail(err, SGDSTAB_EFORMAT,
                            "%s: declared shape %s too large", s->label,
                            shape_text);
    uint64_t nbytes = (uint64_t)size * dt.itemsize;
    if (nbytes > remaining)
        return sgdstab_fail(err, SGDSTAB_EFORMAT,
                            "%s: truncated data: declared shape %s of '%s' "
                            "needs %llu bytes but only %llu are present",
                            s->label, shape_text, h->descr,
                            (unsigned long long)nbytes,
                            (unsigned long long)remaining);
    if (nbytes < remaining)
        return sgdstab_fail(err, SGDSTAB_EFORMAT,
                            "%s: %llu unexpected bytes after the data of "
                            "declared shape %s", s->label,
                            (unsigned long long)(remaining - nbytes),
                            shape_text);
    *count = size;
    return SGDSTAB_OK;
}

int npy_read_stream(const npy_stream *s, sgdstab_array *out,
                    sgdstab_error *err)
{
    memset(out, 0, sizeof *out);
    header_parser h;
    uint64_t consumed = 0;
    int st = read_header(s, &h, &consumed, err);
    if (st)
        return st;
    npy_dtype dt;
    if (!parse_descr(h.descr, &dt))
        return sgdstab_fail(err, SGDSTAB_EFORMAT,
                            "%s: dtype '%s' not supported (need "
                            "float32/float64)", s->label, h.descr);
    size_t size = 0;
    if ((st = check_data_size(s, &h, dt, s->size - consumed, &size, err)))
        return st;
    out->ndim = h.ndim;
    for (int d = 0; d < SGDSTAB_NPY_MAX_DIMS; d++)
        out->shape[d] = d < h.ndim ? h.shape[d] : 1;
    out->size = size;
    snprintf(out->descr, sizeof out->descr, "%s", h.descr);
    if ((s->check && (st = s->check(s->check_ctx, out, err))) ||
        (st = read_data(s, &h, dt, size, out, err)))
        memset(out, 0, sizeof *out);
    return st;
}

/* -------------------------------------------------------- file / memory */

static int64_t read_file(void *ctx, void *buf, size_t n)
{
    FILE *f = ctx;
    size_t r = fread(buf, 1, n, f);
    if (r < n && ferror(f))
        return -1;
    return (int64_t)r;
}

int sgdstab_open_input(const char *path, FILE **f, size_t *size,
                       sgdstab_error *err)
{
    *f = fopen(path, "rb");
    if (!*f)
        return sgdstab_fail(err, SGDSTAB_EIO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(*f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(*f);
        *f = NULL;
        return sgdstab_fail(err, SGDSTAB_EIO, "%s: not a regular file", path);
    }
    if (size)
        *size = (size_t)sb.st_size;
    return SGDSTAB_OK;
}

int sgdstab_npy_read(const char *path, sgdstab_array *out, sgdstab_error *err)
{
    return sgdstab_npy_read_checked(path, NULL, NULL, out, err);
}

int sgdstab_npy_read_checked(const char *path, sgdstab_npy_check check,
                             void *ctx, sgdstab_array *out,
                             sgdstab_error *err)
{
    memset(out, 0, sizeof *out);
    FILE *f;
    size_t size;
    int st = sgdstab_open_input(path, &f, &size, err);
    if (st)
        return st;
    npy_stream s = {read_file, f, (uint64_t)size, path, check, ctx};
    st = npy_read_stream(&s, out, err);
    fclose(f);
    return st;
}

typedef struct {
    const unsigned char *buf;
    size_t len, pos;
} mem_cursor;

static int64_t read_mem(void *ctx, void *buf, size_t n)
{
    mem_cursor *m = ctx;
    size_t r = m->len - m->pos < n ? m->len - m->pos : n;
    memcpy(buf, m->buf + m->pos, r);
    m->pos += r;
    return (int64_t)r;
}

int sgdstab_npy_read_buffer(const void *buf, size_t len, const char *label,
                            sgdstab_array *out, sgdstab_error *err)
{
    mem_cursor m = {buf, len, 0};
    npy_stream s = {read_mem, &m, len, label, NULL, NULL};
    return npy_read_stream(&s, out, err);
}

void sgdstab_array_free(sgdstab_array *a)
{
    if (!a)
        return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* ----------------------------------------------------------------- write */

size_t npy_v1_prefix(const sgdstab_array *a, unsigned char *out)
{
    char *header = (char *)out + 10;
    size_t cap = NPY_V1_PREFIX_MAX - 10;
    int len = snprintf(header, cap,
                       "{'descr': '<f8', 'fortran_order': False, 'shape': (");
    for (int d = 0; d < a->ndim; d++)
        len += snprintf(header + len, cap - (size_t)len, d ? ", %zu" : "%zu",
                        a->shape[d]);
    len += snprintf(header + len, cap - (size_t)len, "%s}",
                    a->ndim == 1 ? ",), " : "), ");
    /* Pad with spaces so that magic (6) + version (2) + length (2) + header,
     * ending in '\n', is a multiple of 64, as numpy does. */
    size_t total = 10 + (size_t)len + 1;
    size_t padded = (total + 63) / 64 * 64;
    memset(header + len, ' ', padded - total);
    len += (int)(padded - total);
    header[len++] = '\n';
    memcpy(out, NPY_MAGIC, 6);
    out[6] = 1;
    out[7] = 0;
    out[8] = (unsigned char)(len & 0xff);
    out[9] = (unsigned char)(len >> 8);
    return 10 + (size_t)len;
}

const void *npy_le_bytes(const sgdstab_array *a, unsigned char **copy)
{
    *copy = NULL;
    if (host_is_little())
        return a->data;
    if (!(*copy = malloc(a->size ? 8 * a->size : 1)))
        return NULL;
    for (size_t i = 0; i < a->size; i++) {
        unsigned char b[8];
        memcpy(b, &a->data[i], 8);
        for (int j = 0; j < 8; j++)
            (*copy)[8 * i + j] = b[7 - j];
    }
    return *copy;
}

int sgdstab_npy_write(const char *path, const sgdstab_array *a,
                      sgdstab_error *err)
{
    if (a->ndim < 1 || a->ndim > SGDSTAB_NPY_MAX_DIMS)
        return sgdstab_fail(err, SGDSTAB_EINVAL,
                            "%s: cannot write a %d-dimensional array", path,
                            a->ndim);
    unsigned char prefix[NPY_V1_PREFIX_MAX], *copy;
    size_t len = npy_v1_prefix(a, prefix);
    const void *data = npy_le_bytes(a, &copy);
    if (!data)
        return sgdstab_fail(err, SGDSTAB_ENOMEM, "%s: out of memory", path);
    sgdstab_outfile *of = sgdstab_outfile_open(path, err);
    if (!of) {
        free(copy);
        return err ? err->status : SGDSTAB_EIO;
    }
    FILE *f = sgdstab_outfile_stream(of);
    fwrite(prefix, 1, len, f);
    fwrite(data, sizeof(double), a->size, f);
    free(copy);
    return sgdstab_outfile_commit(of, err);
}
