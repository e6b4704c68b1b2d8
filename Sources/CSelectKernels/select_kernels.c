// AVX2+FMA row scans for dynamic Top-K selection. The algorithm is the portable Swift scan's
// (Sources/LogitCore/SelectionRowScan.swift); read its doc comment first. What differs here:
// eight lanes in one register, FMA (the exp's range reduction and polynomial are 7 fused
// operations instead of 12), and candidate lanes found with a movemask instead of a lane loop.
// Every function that uses AVX2 carries a target attribute, so the rest of the package keeps
// the default x86-64 baseline; callers check `select_kernels_have_avx2_fma()` once.
//
// Measured (AMD EPYC Zen 4 under KVM, 2 shared vCPUs, V = 151,936 Float32, thread CPU time,
// best of interleaved runs): 60 µs per row already in L2 against 160 µs for the Swift scan;
// the loop without its exps costs 22 µs, a plain max pass 5 µs. Streamed from DRAM the row
// costs ~88 µs, i.e. reading it (17 µs alone) barely overlaps the arithmetic. Tried, no
// measurable gain: Estrin instead of Horner for the polynomial (61 vs 62 µs), software
// prefetch 1–64 KB ahead into L1/L2 or non-temporal (±3%, worse far ahead), and keeping
// the block's vectors out of the stack (a libm call in the rescale path forced spills; the
// inline Double exp below removed them without changing the time).

#include "select_kernels.h"

#if defined(__x86_64__) || defined(_M_X64)

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define KERNEL __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

int select_kernels_have_avx2_fma(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

int select_kernels_have_f16c(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("f16c");
}

// MARK: - Selection keys (same encoding as Swift's `selectionKey`)

/// Larger key = earlier in selection order: the logit as an order-preserving unsigned integer
/// (−0 folded to +0 by adding +0) in the high half, the inverted id in the low half.
INLINE uint64_t selection_key(float z, uint32_t id) {
    float folded = z + 0.0f;
    uint32_t bits;
    memcpy(&bits, &folded, sizeof bits);
    uint32_t ordered = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
    return ((uint64_t)ordered << 32) | (uint64_t)(uint32_t)~id;
}

INLINE float key_logit(uint64_t key) {
    uint32_t ordered = (uint32_t)(key >> 32);
    uint32_t bits = (ordered & 0x80000000u) ? (ordered & 0x7FFFFFFFu) : ~ordered;
    float z;
    memcpy(&z, &bits, sizeof z);
    return z;
}

// MARK: - Descending sort of the candidate pool (introsort; keys are distinct)

static void insertion_sort_desc(uint64_t *a, int64_t n) {
    for (int64_t i = 1; i < n; i++) {
        uint64_t x = a[i];
        int64_t j = i;
        while (j > 0 && a[j - 1] < x) { a[j] = a[j - 1]; j--; }
        a[j] = x;
    }
}

/// Min-heap sift-down: the heap's root is its smallest key, moved to the end each step, which
/// leaves the array in descending order.
static void sift_down_min(uint64_t *a, int64_t root, int64_t n) {
    uint64_t x = a[root];
    for (;;) {
        int64_t child = 2 * root + 1;
        if (child >= n) break;
        if (child + 1 < n && a[child + 1] < a[child]) child++;
        if (a[child] >= x) break;
        a[root] = a[child];
        root = child;
    }
    a[root] = x;
}

static void heap_sort_desc(uint64_t *a, int64_t n) {
    for (int64_t i = n / 2 - 1; i >= 0; i--) sift_down_min(a, i, n);
    for (int64_t end = n - 1; end > 0; end--) {
        uint64_t t = a[0]; a[0] = a[end]; a[end] = t;
        sift_down_min(a, 0, end);
    }
}

static void intro_sort_desc(uint64_t *a, int64_t n, int depth) {
    while (n > 24) {
        if (depth-- == 0) { heap_sort_desc(a, n); return; }
        // Median of three moved into place: a[0] ≥ pivot ≥ a[n − 1] act as sentinels.
        int64_t mid = n / 2;
        uint64_t t;
        if (a[mid] > a[0]) { t = a[mid]; a[mid] = a[0]; a[0] = t; }
        if (a[n - 1] > a[0]) { t = a[n - 1]; a[n - 1] = a[0]; a[0] = t; }
        if (a[n - 1] > a[mid]) { t = a[n - 1]; a[n - 1] = a[mid]; a[mid] = t; }
        uint64_t pivot = a[mid];
        int64_t i = 0, j = n - 1;
        for (;;) {
            do i++; while (a[i] > pivot);
            do j--; while (a[j] < pivot);
            if (i >= j) break;
            t = a[i]; a[i] = a[j]; a[j] = t;
        }
        // [0, j] ≥ pivot ≥ [j + 1, n): recurse into the smaller side, loop on the larger.
        int64_t left = j + 1, right = n - left;
        if (left < right) {
            intro_sort_desc(a, left, depth);
            a += left; n = right;
        } else {
            intro_sort_desc(a + left, right, depth);
            n = left;
        }
    }
    insertion_sort_desc(a, n);
}

static void sort_desc(uint64_t *a, int64_t n) {
    int depth = 0;
    for (int64_t m = n; m > 1; m >>= 1) depth += 2;
    intro_sort_desc(a, n, depth);
}

// MARK: - Vector exp

/// e^x for x ≤ 0, eight lanes: the Swift `fastExpNonPositive` with fused operations.
/// Cody–Waite reduction x = n·ln2 + r (ln2 as a 9-bit head plus a tail), then
/// e^r ≈ 1 + r + c2·r² + … + c5·r⁵ (minimax coefficients, relative error ≈ 1e-7) by Horner in
/// FMAs, scaled by 2^n written into the exponent bits. x is clamped at −87.3 so 2^n stays
/// normal (the result is then ≈ 1.2e-38, negligible in a sum ≥ 1). NaN stays NaN: `max_ps`
/// returns its second operand when either is NaN.
KERNEL INLINE __m256 exp_nonpositive(__m256 x) {
    const __m256 shifter = _mm256_set1_ps(12582912.0f + 127.0f);
    __m256 xc = _mm256_max_ps(_mm256_set1_ps(-87.3f), x);
    __m256 t = _mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504f), shifter);
    __m256 n = _mm256_sub_ps(t, shifter);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.1219444e-4f), r);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(8.3147194e-3f), r, _mm256_set1_ps(4.1890208e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.1666709f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.4999923f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23));
    return _mm256_mul_ps(p, scale);
}

KERNEL void select_kernels_exp8(const float *x, float *out) {
    _mm256_storeu_ps(out, exp_nonpositive(_mm256_loadu_ps(x)));
}

/// e^x in Double on four lanes, for the rare rescale of a lane's partial sum when its max
/// rises. Inline arithmetic rather than a libm call: a call in the loop clobbers every vector
/// register, and the compiler then spilled the block's vectors to the stack on every block.
/// x = k·ln2 + r with ln2 in two parts (the head has 32 significant bits, so k·head is exact
/// for |k| < 2^20), then the degree-12 Taylor polynomial of e^r for |r| ≤ ln2/2 (truncation
/// error < 2e-16). x is clamped at −700 so 2^k stays normal; the rescaled sum is then
/// e^−700 times too large, 1e-304 of a sum ≥ 1. x = 0 gives exactly 1; NaN stays NaN.
KERNEL INLINE __m256d exp_double(__m256d x) {
    const double ln2_hi = 0.693147180369123816490, ln2_lo = 1.90821492927058770002e-10;
    __m256d xc = _mm256_max_pd(_mm256_set1_pd(-700.0), x);
    __m256d k = _mm256_round_pd(_mm256_mul_pd(xc, _mm256_set1_pd(1.4426950408889634074)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_fnmadd_pd(k, _mm256_set1_pd(ln2_hi), xc);
    r = _mm256_fnmadd_pd(k, _mm256_set1_pd(ln2_lo), r);
    __m256d p = _mm256_set1_pd(1.0 / 479001600.0);
    static const double inverse_factorials[12] = {
        1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0,
        1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0};
    for (int j = 0; j < 12; j++) p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(inverse_factorials[j]));
    __m256i biased = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(k)), _mm256_set1_epi64x(1023));
    return _mm256_mul_pd(p, _mm256_castsi256_pd(_mm256_slli_epi64(biased, 52)));
}

// MARK: - Element types

enum element_kind { KIND_F32, KIND_F16, KIND_BF16 };

/// Eight consecutive elements widened to Float exactly (F16C's conversion is exact for every
/// finite half, subnormals included; bfloat16 is the top half of a binary32).
KERNEL INLINE __m256 load8(const void *p, enum element_kind kind) {
    switch (kind) {
    case KIND_F32:
        return _mm256_loadu_ps((const float *)p);
    case KIND_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    case KIND_BF16:
    default:
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
    }
}

KERNEL INLINE float load1(const void *row, int64_t i, enum element_kind kind) {
    switch (kind) {
    case KIND_F32:
        return ((const float *)row)[i];
    case KIND_F16:
        return _cvtsh_ss(((const uint16_t *)row)[i]);
    case KIND_BF16:
    default: {
        uint32_t bits = (uint32_t)((const uint16_t *)row)[i] << 16;
        float z;
        memcpy(&z, &bits, sizeof z);
        return z;
    }
    }
}

// MARK: - The scan

/// The part of a scan after the vector loop, shared by the AVX2 and AVX-512 kernels: combines
/// the `lanes` per-lane maxima and sums, runs the scalar tail (< one block) from `i`, checks
/// for non-finite input and sorts the pool. Returns the scan's result (1, or 0 on NaN/±inf).
KERNEL INLINE int finish_scan(const void *row, int64_t n, int64_t i, enum element_kind kind, int lanes,
                              const float *maxima, const float *minima, const double *sums,
                              float threshold, int64_t pool_limit, uint64_t *pool, int64_t count,
                              select_scan_result *out) {
    const int64_t cut_at = 2 * pool_limit;
    // Combine lanes around the global max (lanes that saw no block hold −inf and add nothing).
    double m = -INFINITY;
    for (int l = 0; l < lanes; l++) if ((double)maxima[l] > m) m = (double)maxima[l];
    double s = 0.0;
    if (m > -INFINITY) {
        for (int l = 0; l < lanes; l++) {
            if (maxima[l] > -INFINITY) s += sums[l] * exp((double)maxima[l] - m);
        }
    }
    // Scalar tail (< one block), in Double.
    int tail_bad = 0;
    for (; i < n; i++) {
        float z = load1(row, i, kind);
        if (!isfinite(z)) { tail_bad = 1; break; }
        double zd = (double)z;
        if (zd > m) {
            s *= exp(m - zd);
            m = zd;
        }
        s += exp(zd - m);
        if (z > threshold) {
            pool[count++] = selection_key(z, (uint32_t)i);
            if (count > cut_at) {
                sort_desc(pool, count);
                count = pool_limit;
                threshold = key_logit(pool[pool_limit - 1]);
            }
        }
    }
    // NaN reaches a lane sum through exp; +inf makes a lane max infinite; −inf shows in the min.
    if (tail_bad || !isfinite(s) || !isfinite(m)) return 0;
    for (int l = 0; l < lanes; l++) {
        if (!isfinite(sums[l]) || isnan(maxima[l]) || maxima[l] == INFINITY
            || minima[l] == -INFINITY || isnan(minima[l])) return 0;
    }
    sort_desc(pool, count);
    out->max_logit = m;
    out->partition = s;
    out->pool_count = count < pool_limit ? count : pool_limit;
    return 1;
}

/// Adds lanes 0–3 and 4–7 of a float partial sum into the two Double accumulators.
KERNEL INLINE void fold(__m256 f, __m256d *lo, __m256d *hi) {
    *lo = _mm256_add_pd(*lo, _mm256_cvtps_pd(_mm256_castps256_ps128(f)));
    *hi = _mm256_add_pd(*hi, _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1)));
}

/// Appends the lanes of `v` (ids first_id…first_id+7) above `threshold` to the pool, in id order.
KERNEL INLINE int64_t collect(__m256 v, __m256 threshold, int64_t first_id, uint64_t *pool,
                              int64_t count) {
    unsigned mask = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v, threshold, _CMP_GT_OQ));
    if (mask == 0) return count;
    float lanes[8];
    _mm256_storeu_ps(lanes, v);
    do {
        unsigned l = (unsigned)__builtin_ctz(mask);
        pool[count++] = selection_key(lanes[l], (uint32_t)(first_id + l));
        mask &= mask - 1;
    } while (mask);
    return count;
}

KERNEL INLINE int scan(const void *row, int64_t n, int64_t pool_limit, uint64_t *pool,
                       select_scan_result *out, enum element_kind kind) {
    const size_t size = kind == KIND_F32 ? 4 : 2;
    const char *base = (const char *)row;
    __m256 lane_max = _mm256_set1_ps(-INFINITY);
    __m256 lane_min = _mm256_set1_ps(INFINITY);
    __m256d sum_lo = _mm256_setzero_pd(), sum_hi = _mm256_setzero_pd();
    __m256 float_sum = _mm256_setzero_ps();
    float threshold = -INFINITY;
    __m256 threshold8 = _mm256_set1_ps(-INFINITY);
    int64_t count = 0;
    const int64_t cut_at = 2 * pool_limit;
    int blocks_since_flush = 0;

    int64_t i = 0;
    for (; i + SELECT_KERNELS_BLOCK <= n; i += SELECT_KERNELS_BLOCK) {
        const char *p = base + (size_t)i * size;
        __m256 v0 = load8(p, kind), v1 = load8(p + 8 * size, kind);
        __m256 v2 = load8(p + 16 * size, kind), v3 = load8(p + 24 * size, kind);
        __m256 block_max = _mm256_max_ps(_mm256_max_ps(v0, v1), _mm256_max_ps(v2, v3));
        // NaN reaches the sum through exp; −inf (clamped inside exp) is caught by the minima.
        lane_min = _mm256_min_ps(lane_min, _mm256_min_ps(_mm256_min_ps(v0, v1), _mm256_min_ps(v2, v3)));
        if (__builtin_expect(_mm256_movemask_ps(_mm256_cmp_ps(block_max, lane_max, _CMP_GT_OQ)), 0)) {
            // A lane's max rose: fold its float partial into Double, rescale by e^(old − new)
            // (exactly 1 in lanes whose max stayed).
            fold(float_sum, &sum_lo, &sum_hi);
            float_sum = _mm256_setzero_ps();
            blocks_since_flush = 0;
            __m256 new_max = _mm256_max_ps(lane_max, block_max);
            __m256 drop = _mm256_sub_ps(lane_max, new_max);
            sum_lo = _mm256_mul_pd(sum_lo, exp_double(_mm256_cvtps_pd(_mm256_castps256_ps128(drop))));
            sum_hi = _mm256_mul_pd(sum_hi, exp_double(_mm256_cvtps_pd(_mm256_extractf128_ps(drop, 1))));
            lane_max = new_max;
        }
        // Pairwise inside the block, float across ≤ 4 blocks, then Double.
        __m256 e = _mm256_add_ps(
            _mm256_add_ps(exp_nonpositive(_mm256_sub_ps(v0, lane_max)),
                          exp_nonpositive(_mm256_sub_ps(v1, lane_max))),
            _mm256_add_ps(exp_nonpositive(_mm256_sub_ps(v2, lane_max)),
                          exp_nonpositive(_mm256_sub_ps(v3, lane_max))));
        float_sum = _mm256_add_ps(float_sum, e);
        if (++blocks_since_flush == 4) {
            fold(float_sum, &sum_lo, &sum_hi);
            float_sum = _mm256_setzero_ps();
            blocks_since_flush = 0;
        }
        // Candidates last: the cut calls the sort, and fewer vectors are live across it here.
        if (__builtin_expect(_mm256_movemask_ps(_mm256_cmp_ps(block_max, threshold8, _CMP_GT_OQ)), 0)) {
            count = collect(v0, threshold8, i, pool, count);
            count = collect(v1, threshold8, i + 8, pool, count);
            count = collect(v2, threshold8, i + 16, pool, count);
            count = collect(v3, threshold8, i + 24, pool, count);
            if (count > cut_at) {
                sort_desc(pool, count);
                count = pool_limit;
                threshold = key_logit(pool[pool_limit - 1]);
                threshold8 = _mm256_set1_ps(threshold);
            }
        }
    }
    fold(float_sum, &sum_lo, &sum_hi);

    float maxima[8], minima[8];
    double sums[8];
    _mm256_storeu_ps(maxima, lane_max);
    _mm256_storeu_ps(minima, lane_min);
    _mm256_storeu_pd(sums, sum_lo);
    _mm256_storeu_pd(sums + 4, sum_hi);
    return finish_scan(row, n, i, kind, 8, maxima, minima, sums, threshold, pool_limit, pool, count, out);
}

KERNEL int select_scan_f32(const float *row, int64_t n, int64_t pool_limit, uint64_t *pool,
                           select_scan_result *out) {
    return scan(row, n, pool_limit, pool, out, KIND_F32);
}

KERNEL int select_scan_f16(const uint16_t *row, int64_t n, int64_t pool_limit, uint64_t *pool,
                           select_scan_result *out) {
    return scan(row, n, pool_limit, pool, out, KIND_F16);
}

KERNEL int select_scan_bf16(const uint16_t *row, int64_t n, int64_t pool_limit, uint64_t *pool,
                            select_scan_result *out) {
    return scan(row, n, pool_limit, pool, out, KIND_BF16);
}

// MARK: - AVX-512 (16 lanes)
//
// The same scan in 16 lanes with mask registers for the rare checks (a lane max rising, a
// candidate above the threshold) and blocks of 64 elements (four vectors), so the per-block
// bookkeeping (max/min trees, two compares and branches, the fold counter) is spread over
// twice the elements of the AVX2 block. Pools are bit-identical to the other paths (the pool
// is the best `pool_limit` keys whatever the cut schedule); sums differ only by rounding.
// Measured (same Zen 4 VM, `logit-bench topk`, both kernels in one run, 3 runs): 55–68 µs per
// streamed row against 79–89 µs for AVX2 (1.32–1.43×), 41–46 µs against 69–74 µs in L2. Zen 4
// executes 512-bit arithmetic as two 256-bit halves, so the gain is from fewer instructions
// (half the per-block bookkeeping per element, scalef for 2^n), not wider arithmetic.

#define KERNEL512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

int select_kernels_have_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

/// `exp_nonpositive` in 16 lanes, bit for bit: the same reduction and polynomial, with 2^n applied by
/// `scalef` (one instruction instead of a shift and a multiply; the product is the same, as
/// n ≥ −126 after the clamp keeps 2^n normal). NaN stays NaN (`max_ps` returns its second operand).
KERNEL512 INLINE __m512 exp16_nonpositive(__m512 x) {
    const __m512 shifter = _mm512_set1_ps(12582912.0f + 127.0f);
    __m512 xc = _mm512_max_ps(_mm512_set1_ps(-87.3f), x);
    __m512 t = _mm512_fmadd_ps(xc, _mm512_set1_ps(1.44269504f), shifter);
    __m512 n = _mm512_sub_ps(t, shifter);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.1219444e-4f), r);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(8.3147194e-3f), r, _mm512_set1_ps(4.1890208e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.1666709f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.4999923f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

KERNEL512 void select_kernels_exp16_avx512(const float *x, float *out) {
    _mm512_storeu_ps(out, exp16_nonpositive(_mm512_loadu_ps(x)));
}

/// `exp_double` in eight lanes (same reduction and degree-12 Taylor polynomial; 2^k by `scalef`).
KERNEL512 INLINE __m512d exp8_double(__m512d x) {
    const double ln2_hi = 0.693147180369123816490, ln2_lo = 1.90821492927058770002e-10;
    __m512d xc = _mm512_max_pd(_mm512_set1_pd(-700.0), x);
    __m512d k = _mm512_roundscale_pd(_mm512_mul_pd(xc, _mm512_set1_pd(1.4426950408889634074)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512d r = _mm512_fnmadd_pd(k, _mm512_set1_pd(ln2_hi), xc);
    r = _mm512_fnmadd_pd(k, _mm512_set1_pd(ln2_lo), r);
    __m512d p = _mm512_set1_pd(1.0 / 479001600.0);
    static const double inverse_factorials[12] = {
        1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0,
        1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0};
    for (int j = 0; j < 12; j++) p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(inverse_factorials[j]));
    return _mm512_scalef_pd(p, k);
}

/// Sixteen consecutive elements widened to Float exactly.
KERNEL512 INLINE __m512 load16(const void *p, enum element_kind kind) {
    switch (kind) {
    case KIND_F32:
        return _mm512_loadu_ps((const float *)p);
    case KIND_F16:
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
    case KIND_BF16:
    default:
        return _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
    }
}

/// Adds lanes 0–7 and 8–15 of a float partial sum into the two Double accumulators.
KERNEL512 INLINE void fold16(__m512 f, __m512d *lo, __m512d *hi) {
    *lo = _mm512_add_pd(*lo, _mm512_cvtps_pd(_mm512_castps512_ps256(f)));
    *hi = _mm512_add_pd(*hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(f, 1)));
}

/// Appends the lanes of `v` (ids first_id…first_id+15) above `threshold` to the pool, in id order.
KERNEL512 INLINE int64_t collect16(__m512 v, __m512 threshold, int64_t first_id, uint64_t *pool,
                                   int64_t count) {
    unsigned mask = (unsigned)_mm512_cmp_ps_mask(v, threshold, _CMP_GT_OQ);
    if (mask == 0) return count;
    float lanes[16];
    _mm512_storeu_ps(lanes, v);
    do {
        unsigned l = (unsigned)__builtin_ctz(mask);
        pool[count++] = selection_key(lanes[l], (uint32_t)(first_id + l));
        mask &= mask - 1;
    } while (mask);
    return count;
}

KERNEL512 INLINE int scan512(const void *row, int64_t n, int64_t pool_limit, uint64_t *pool,
                             select_scan_result *out, enum element_kind kind) {
    const size_t size = kind == KIND_F32 ? 4 : 2;
    const char *base = (const char *)row;
    __m512 lane_max = _mm512_set1_ps(-INFINITY);
    __m512 lane_min = _mm512_set1_ps(INFINITY);
    __m512d sum_lo = _mm512_setzero_pd(), sum_hi = _mm512_setzero_pd();
    __m512 float_sum = _mm512_setzero_ps();
    float threshold = -INFINITY;
    __m512 threshold16 = _mm512_set1_ps(-INFINITY);
    int64_t count = 0;
    const int64_t cut_at = 2 * pool_limit;
    int blocks_since_flush = 0;

    int64_t i = 0;
    for (; i + SELECT_KERNELS_BLOCK_AVX512 <= n; i += SELECT_KERNELS_BLOCK_AVX512) {
        const char *p = base + (size_t)i * size;
        __m512 v0 = load16(p, kind), v1 = load16(p + 16 * size, kind);
        __m512 v2 = load16(p + 32 * size, kind), v3 = load16(p + 48 * size, kind);
        __m512 block_max = _mm512_max_ps(_mm512_max_ps(v0, v1), _mm512_max_ps(v2, v3));
        // NaN reaches the sum through exp; −inf (clamped inside exp) is caught by the minima.
        lane_min = _mm512_min_ps(lane_min, _mm512_min_ps(_mm512_min_ps(v0, v1), _mm512_min_ps(v2, v3)));
        if (__builtin_expect(_mm512_cmp_ps_mask(block_max, lane_max, _CMP_GT_OQ) != 0, 0)) {
            // A lane's max rose: fold its float partial into Double, rescale by e^(old − new)
            // (exactly 1 in lanes whose max stayed).
            fold16(float_sum, &sum_lo, &sum_hi);
            float_sum = _mm512_setzero_ps();
            blocks_since_flush = 0;
            __m512 new_max = _mm512_max_ps(lane_max, block_max);
            __m512 drop = _mm512_sub_ps(lane_max, new_max);
            sum_lo = _mm512_mul_pd(sum_lo, exp8_double(_mm512_cvtps_pd(_mm512_castps512_ps256(drop))));
            sum_hi = _mm512_mul_pd(sum_hi, exp8_double(_mm512_cvtps_pd(_mm512_extractf32x8_ps(drop, 1))));
            lane_max = new_max;
        }
        // Pairwise inside the block, float across ≤ 4 blocks, then Double.
        __m512 e = _mm512_add_ps(
            _mm512_add_ps(exp16_nonpositive(_mm512_sub_ps(v0, lane_max)),
                          exp16_nonpositive(_mm512_sub_ps(v1, lane_max))),
            _mm512_add_ps(exp16_nonpositive(_mm512_sub_ps(v2, lane_max)),
                          exp16_nonpositive(_mm512_sub_ps(v3, lane_max))));
        float_sum = _mm512_add_ps(float_sum, e);
        if (++blocks_since_flush == 4) {
            fold16(float_sum, &sum_lo, &sum_hi);
            float_sum = _mm512_setzero_ps();
            blocks_since_flush = 0;
        }
        if (__builtin_expect(_mm512_cmp_ps_mask(block_max, threshold16, _CMP_GT_OQ) != 0, 0)) {
            count = collect16(v0, threshold16, i, pool, count);
            count = collect16(v1, threshold16, i + 16, pool, count);
            count = collect16(v2, threshold16, i + 32, pool, count);
            count = collect16(v3, threshold16, i + 48, pool, count);
            if (count > cut_at) {
                sort_desc(pool, count);
                count = pool_limit;
                threshold = key_logit(pool[pool_limit - 1]);
                threshold16 = _mm512_set1_ps(threshold);
            }
        }
    }
    fold16(float_sum, &sum_lo, &sum_hi);

    float maxima[16], minima[16];
    double sums[16];
    _mm512_storeu_ps(maxima, lane_max);
    _mm512_storeu_ps(minima, lane_min);
    _mm512_storeu_pd(sums, sum_lo);
    _mm512_storeu_pd(sums + 8, sum_hi);
    return finish_scan(row, n, i, kind, 16, maxima, minima, sums, threshold, pool_limit, pool, count, out);
}

KERNEL512 int select_scan_f32_avx512(const float *row, int64_t n, int64_t pool_limit, uint64_t *pool,
                                     select_scan_result *out) {
    return scan512(row, n, pool_limit, pool, out, KIND_F32);
}

KERNEL512 int select_scan_f16_avx512(const uint16_t *row, int64_t n, int64_t pool_limit, uint64_t *pool,
                                     select_scan_result *out) {
    return scan512(row, n, pool_limit, pool, out, KIND_F16);
}

KERNEL512 int select_scan_bf16_avx512(const uint16_t *row, int64_t n, int64_t pool_limit, uint64_t *pool,
                                      select_scan_result *out) {
    return scan512(row, n, pool_limit, pool, out, KIND_BF16);
}

#else // not x86-64: no kernels; the availability checks say so and Swift never calls the scans.

int select_kernels_have_avx2_fma(void) { return 0; }
int select_kernels_have_f16c(void) { return 0; }
int select_kernels_have_avx512(void) { return 0; }

static int unavailable(void) { __builtin_trap(); }
int select_scan_f32(const float *row, int64_t n, int64_t pool_limit, uint64_t *pool,
                    select_scan_result *out) { (void)row; (void)n; (void)pool_limit; (void)pool; (void)out; return unavailable(); }
int select_scan_f16(const uint16_t *row, int64_t n, int64_t pool_limit, uint64_t *pool,
                    select_scan_result *out) { (void)row; (void)n; (void)pool_limit; (void)pool; (void)out; return unavailable(); }
int select_scan_bf16(const uint16_t *row, int64_t n, int64_t pool_limit, uint64_t *pool,
                     select_scan_result *out) { (void)row; (void)n; (void)pool_limit; (void)pool; (void)out; return unavailable(); }
void select_kernels_exp8(const float *x, float *out) { (void)x; (void)out; __builtin_trap(); }
void select_kernels_exp16_avx512(const float *x, float *out) { (void)x; (void)out; __builtin_trap(); }
int select_scan_f32_avx512(const float *row, int64_t n, int64_t pool_limit, uint64_t *pool,
                           select_scan_result *out) { (void)row; (void)n; (void)pool_limit; (void)pool; (void)out; return unavailable(); }
int select_scan_f16_avx512(const uint16_t *row, int64_t n, int64_t pool_limit, uint64_t *pool,
                           select_scan_result *out) { (void)row; (void)n; (void)pool_limit; (void)pool; (void)out; return unavailable(); }
int select_scan_bf16_avx512(const uint16_t *row, int64_t n, int64_t pool_limit, uint64_t *pool,
                            select_scan_result *out) { (void)row; (void)n; (void)pool_limit; (void)pool; (void)out; return unavailable(); }

#endif
