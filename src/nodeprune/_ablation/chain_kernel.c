/* The ablation engine's fused pass for a Linear first site followed by a chain of ReLUs and Linears and the
 * class cross-entropy (nodeprune/_ablation/fused.py recognises the chain and calls this through ctypes).
 *
 * For sample row r and the node feeding input feature f of the first site:
 *   a = table[r] - columns[f, r] * table[n_rows + f]    (the rank-one update: baseline output, weight column)
 *   a = op_k(a) for every op of the chain                (ReLU, or a Linear with the masker's masks folded in)
 *   loss = (max - a[target]) + log(sum_c exp(a_c - max)), hit = (first arg-max == target)
 * nodeprune_chain_rows writes the loss and hit of rows without any removal (the baseline);
 * nodeprune_chain_nodes sums, per node, the loss and hit changes over the rows where the node is active, in
 * row order (the same sums whatever the number of threads). A tile of four rows goes through the whole
 * chain in small per-thread buffers that stay in cache: one pass over a pair's values instead of one
 * memory pass per operation over (pairs x width) tensors. Plain C with GCC/Clang vector extensions; its threads
 * are OpenMP's where the compiler has it (the runtime torch loaded, so torch's own thread pool), else POSIX
 * threads started per call. Compiled at first use with the machine's C compiler.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const float *table;       /* (n_rows + inputs, width0): the first site's baseline output above its weight^T */
    int64_t n_rows;           /* samples of the baseline */
    int64_t width0;           /* the first site's output features */
    const float *columns;     /* (inputs, n_rows): the first site's input, transposed */
    int32_t n_ops;
    const int32_t *ops;       /* -1: ReLU; k >= 0: Linear k */
    const int64_t *in_dims;   /* per Linear, multiples of 16 */
    const int64_t *out_dims;
    const float *const *weights; /* per Linear: (in, out), contiguous, zero-padded to multiples of 16 */
    const float *const *biases;  /* per Linear: (out), zero-padded, or NULL */
    int64_t max_width;        /* the widest value, padded to a multiple of 16 */
    int64_t classes;          /* the logits: the last value's first `classes` features */
    const int64_t *targets;   /* per sample row, in [0, classes) */
    const double *base_losses; /* per sample row (nodeprune_chain_nodes) */
    const int64_t *base_hits;
} chain_t;

#if defined(__AVX512F__)
#define LANES 16 /* one 512-bit register */
#else
#define LANES 8 /* one 256-bit register (two 128-bit ones, or scalar code, where the CPU has less) */
#endif
#define PAD 16 /* every width is padded to a multiple of 16 floats (fused.py pads the weights alike) */
typedef float vf __attribute__((vector_size(LANES * 4)));
typedef float vfu __attribute__((vector_size(LANES * 4), aligned(4))); /* unaligned loads and stores */

typedef int32_t vi __attribute__((vector_size(LANES * 4)));

/* exp(x) for x <= 0 in float32, lane by lane, within about 2 ulp: Cephes' expf (x = n ln 2 + r, a degree-6
 * polynomial in r, then the exponent bits of 2^n; n rounded to nearest by the 1.5 * 2^23 trick); 0 below -87
 * (where a term is under 1e-37 of a sum that is at least 1). */
static inline vf exp_nonpositive_v(vf x) {
    const vf log2e = (vf){0} + 1.44269504088896341f;
    const vf magic = (vf){0} + 12582912.0f;
    const vi low = x < -87.0f; /* -1 where x < -87 */
    const vf clamped = (vf)(((vi)x & ~low) | ((vi)((vf){0} - 87.0f) & low));
    const vf n = (clamped * log2e + magic) - magic;
    vf r = clamped - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    const vf z = r * r;
    vf p = (vf){0} + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * z + r + 1.0f;
    const vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
    return (vf)((vi)(p * (vf)bits) & ~low);
}

#define TILE 4 /* rows per tile: TILE x 2 accumulators stay in registers */

/* out[p] = bias + in[p] @ weight for the TILE rows of a tile; n_in and n_out are multiples of PAD (the weight
 * is padded with zero rows and columns); in[p] and out[p] are `stride` floats apart. */
static void linear(const float *in, float *out, int64_t stride, int64_t n_in, int64_t n_out,
                   const float *weight, const float *bias) {
    int64_t o = 0;
    for (; o + 2 * LANES <= n_out; o += 2 * LANES) {
        vf acc[TILE][2];
        for (int p = 0; p < TILE; p++) {
            acc[p][0] = bias != NULL ? *(const vfu *)(bias + o) : (vf){0};
            acc[p][1] = bias != NULL ? *(const vfu *)(bias + o + LANES) : (vf){0};
        }
        for (int64_t k = 0; k < n_in; k++) {
            const vf w0 = *(const vfu *)(weight + k * n_out + o);
            const vf w1 = *(const vfu *)(weight + k * n_out + o + LANES);
            for (int p = 0; p < TILE; p++) {
                const float s = in[p * stride + k];
                acc[p][0] += s * w0;
                acc[p][1] += s * w1;
            }
        }
        for (int p = 0; p < TILE; p++) {
            *(vfu *)(out + p * stride + o) = acc[p][0];
            *(vfu *)(out + p * stride + o + LANES) = acc[p][1];
        }
    }
    for (; o < n_out; o += LANES) {
        vf acc[TILE];
        for (int p = 0; p < TILE; p++) {
            acc[p] = bias != NULL ? *(const vfu *)(bias + o) : (vf){0};
        }
        for (int64_t k = 0; k < n_in; k++) {
            const vf w0 = *(const vfu *)(weight + k * n_out + o);
            for (int p = 0; p < TILE; p++) {
                acc[p] += in[p * stride + k] * w0;
            }
        }
        for (int p = 0; p < TILE; p++) {
            *(vfu *)(out + p * stride + o) = acc[p];
        }
    }
}

typedef struct {
    float *first, *second, *exps;
} buffers_t;

static int allocate(buffers_t *b, int64_t width) {
    b->first = malloc((size_t)(TILE * width) * sizeof(float));
    b->second = malloc((size_t)(TILE * width) * sizeof(float));
    b->exps = malloc((size_t)(TILE * width) * sizeof(float));
    return b->first != NULL && b->second != NULL && b->exps != NULL;
}

static void release(buffers_t *b) {
    free(b->first);
    free(b->second);
    free(b->exps);
}

/* Loss and hit of `count` (<= TILE) rows, node feature `feature` removed (-1: none). */
static void tile(const chain_t *c, buffers_t *buf, const int64_t *rows, int count, int64_t feature,
                 double *losses, int64_t *hits) {
    const int64_t stride = c->max_width;
    const int64_t width0 = c->width0;
    const int64_t padded0 = (width0 + PAD - 1) / PAD * PAD;
    float *a = buf->first, *b = buf->second;
    for (int p = 0; p < TILE; p++) {
        const int64_t row = rows[p < count ? p : count - 1]; /* a short tile repeats its last row */
        const float *y = c->table + row * width0;
        float *out = a + p * stride;
        if (feature >= 0) {
            const float v = c->columns[feature * c->n_rows + row];
            const float *w = c->table + (c->n_rows + feature) * width0;
            for (int64_t o = 0; o < width0; o++) {
                out[o] = y[o] - v * w[o];
            }
        } else {
            memcpy(out, y, (size_t)width0 * sizeof(float));
        }
        for (int64_t o = width0; o < padded0; o++) {
            out[o] = 0.0f;
        }
    }
    int64_t width = padded0;
    for (int32_t i = 0; i < c->n_ops; i++) {
        const int32_t op = c->ops[i];
        if (op < 0) {
            for (int p = 0; p < TILE; p++) {
                float *values = a + p * stride;
                for (int64_t o = 0; o < width; o++) {
                    values[o] = values[o] < 0.0f ? 0.0f : values[o]; /* NaN stays NaN, as torch.relu */
                }
            }
        } else {
            linear(a, b, stride, c->in_dims[op], c->out_dims[op], c->weights[op], c->biases[op]);
            width = c->out_dims[op];
            float *swap = a;
            a = b;
            b = swap;
        }
    }
    /* the class cross-entropy of the TILE rows together (their chains of dependent operations interleave) */
    const int64_t classes = c->classes;
    float top[TILE];
    int64_t best[TILE];
    double total[TILE];
    for (int p = 0; p < TILE; p++) {
        top[p] = a[p * stride];
        best[p] = classes;
        total[p] = 0.0;
    }
    for (int64_t k = 1; k < classes; k++) {
        for (int p = 0; p < TILE; p++) {
            const float value = a[p * stride + k];
            top[p] = value > top[p] ? value : top[p];
        }
    }
    for (int64_t k = classes - 1; k >= 0; k--) { /* the first maximum, as torch.argmax */
        for (int p = 0; p < TILE; p++) {
            best[p] = a[p * stride + k] == top[p] ? k : best[p];
        }
    }
    const int64_t padded = (classes + LANES - 1) / LANES * LANES; /* within the value's padding */
    for (int p = 0; p < TILE; p++) {
        for (int64_t k = 0; k < padded; k += LANES) {
            *(vfu *)(buf->exps + p * stride + k) = exp_nonpositive_v(*(const vfu *)(a + p * stride + k) - top[p]);
        }
    }
    for (int64_t k = 0; k < classes; k++) {
        for (int p = 0; p < TILE; p++) {
            total[p] += (double)buf->exps[p * stride + k];
        }
    }
    for (int p = 0; p < count; p++) {
        const float *logits = a + p * stride;
        const int64_t target = c->targets[rows[p]];
        double loss = ((double)top[p] - (double)logits[target]) + log(total[p]);
        if (isnan(top[p]) || isnan(logits[target])) {
            loss = NAN;
        }
        losses[p] = loss;
        hits[p] = best[p] == target;
    }
}

typedef struct {
    const chain_t *chain;
    /* rows mode */
    const int64_t *rows;
    int64_t begin, end;
    double *losses;
    int64_t *hits;
    /* nodes mode */
    const int64_t *features; /* per node: its first-site feature */
    int64_t n_nodes;
    const uint8_t *active;   /* (n_nodes, stride): whether node i is active on row r, at [i * stride + r] */
    int64_t active_stride;
    double *sums;
    int64_t *hit_sums;
    int64_t *counts;
    int64_t first, step;     /* this thread's nodes: first, first + step, ... */
    int status;
} work_t;

static void *run_rows(void *argument) {
    work_t *w = (work_t *)argument;
    buffers_t buf;
    if (!allocate(&buf, w->chain->max_width)) {
        release(&buf);
        w->status = 1;
        return NULL;
    }
    for (int64_t start = w->begin; start < w->end; start += TILE) {
        const int count = (int)(w->end - start < TILE ? w->end - start : TILE);
        tile(w->chain, &buf, w->rows + start, count, -1, w->losses + start, w->hits + start);
    }
    release(&buf);
    return NULL;
}

static void *run_nodes(void *argument) {
    work_t *w = (work_t *)argument;
    const chain_t *c = w->chain;
    buffers_t buf;
    if (!allocate(&buf, c->max_width)) {
        release(&buf);
        w->status = 1;
        return NULL;
    }
    /* blocks of rows whose baseline values (about 512 KiB) stay in cache while every node of this thread
     * passes over them; a node's sums still run over its rows in order */
    int64_t block = (int64_t)(1 << 19) / (4 * c->width0);
    block = block < 256 ? 256 : block;
    int64_t *listed = malloc((size_t)block * sizeof(int64_t));
    if (listed == NULL) {
        release(&buf);
        w->status = 1;
        return NULL;
    }
    double losses[TILE];
    int64_t hits[TILE];
    for (int64_t from = 0; from < c->n_rows; from += block) {
        const int64_t to = from + block < c->n_rows ? from + block : c->n_rows;
        for (int64_t i = w->first; i < w->n_nodes; i += w->step) {
            const uint8_t *active = w->active + i * w->active_stride;
            int64_t found = 0;
            for (int64_t r = from; r < to; r++) { /* the node's active rows, without a branch per row */
                listed[found] = r;
                found += active[r] != 0;
            }
            double sum = w->sums[i];
            int64_t hit_sum = w->hit_sums[i];
            for (int64_t start = 0; start < found; start += TILE) {
                const int filled = (int)(found - start < TILE ? found - start : TILE);
                tile(c, &buf, listed + start, filled, w->features[i], losses, hits);
                for (int p = 0; p < filled; p++) {
                    sum += losses[p] - c->base_losses[listed[start + p]];
                    hit_sum += hits[p] - c->base_hits[listed[start + p]];
                }
            }
            w->sums[i] = sum;
            w->hit_sums[i] = hit_sum;
            w->counts[i] += found;
        }
    }
    free(listed);
    release(&buf);
    return NULL;
}

static int spawn(work_t *works, int32_t threads, void *(*function)(void *)) {
    int status = 0;
#ifdef _OPENMP
    /* OpenMP: where torch uses the same runtime (libgomp on Linux), these are torch's own threads, which spin for
     * a while after each of its parallel regions; a second pool of threads would compete with them for the cores */
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int32_t t = 0; t < threads; t++) {
        function(&works[t]);
    }
    for (int32_t t = 0; t < threads; t++) {
        status |= works[t].status;
    }
#else
    pthread_t *handles = malloc((size_t)threads * sizeof(pthread_t));
    if (handles == NULL) {
        return 1;
    }
    int32_t started = 0;
    for (int32_t t = 1; t < threads; t++) {
        if (pthread_create(&handles[t], NULL, function, &works[t]) != 0) {
            status = 1; /* the caller then runs its torch passes */
            break;
        }
        started = t;
    }
    function(&works[0]);
    status |= works[0].status;
    for (int32_t t = 1; t <= started; t++) {
        pthread_join(handles[t], NULL);
        status |= works[t].status;
    }
    free(handles);
#endif
    return status;
}

/* Loss and hit of each of `count` rows, nothing removed. Returns 0, or 1 when memory or a thread was short. */
int nodeprune_chain_rows(const chain_t *chain, const int64_t *rows, int64_t count, double *losses, int64_t *hits,
                         int32_t threads) {
    if (threads < 1 || count < 4096 * (int64_t)threads) {
        threads = (int32_t)(count / 4096) + 1;
    }
    work_t *works = calloc((size_t)threads, sizeof(work_t));
    if (works == NULL) {
        return 1;
    }
    for (int32_t t = 0; t < threads; t++) {
        works[t].chain = chain;
        works[t].rows = rows;
        works[t].begin = count * t / threads;
        works[t].end = count * (t + 1) / threads;
        works[t].losses = losses;
        works[t].hits = hits;
    }
    int status = spawn(works, threads, run_rows);
    free(works);
    return status;
}

/* Per node i: the sums over the rows where active[i, row] of the loss and hit changes when the node
 * (first-site feature features[i]) is removed, in row order, and the number of those rows. Thread t takes
 * nodes t, t + threads, ... Returns 0, or 1 as above. */
int nodeprune_chain_nodes(const chain_t *chain, const int64_t *features, int64_t n_nodes,
                          const uint8_t *active, int64_t active_stride, double *sums, int64_t *hit_sums,
                          int64_t *counts, int32_t threads) {
    if (threads < 1) {
        threads = 1;
    }
    if (threads > n_nodes) {
        threads = n_nodes > 0 ? (int32_t)n_nodes : 1;
    }
    work_t *works = calloc((size_t)threads, sizeof(work_t));
    if (works == NULL) {
        return 1;
    }
    for (int64_t i = 0; i < n_nodes; i++) {
        sums[i] = 0.0;
        hit_sums[i] = 0;
        counts[i] = 0;
    }
    for (int32_t t = 0; t < threads; t++) {
        works[t].chain = chain;
        works[t].features = features;
        works[t].n_nodes = n_nodes;
        works[t].active = active;
        works[t].active_stride = active_stride;
        works[t].sums = sums;
        works[t].hit_sums = hit_sums;
        works[t].counts = counts;
        works[t].first = t;
        works[t].step = threads;
    }
    int status = spawn(works, threads, run_nodes);
    free(works);
    return status;
}
