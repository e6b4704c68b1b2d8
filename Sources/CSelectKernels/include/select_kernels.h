#ifndef SELECT_KERNELS_H
#define SELECT_KERNELS_H

/// AVX2+FMA and AVX-512 row scans for dynamic Top-K selection (LogitCore's `TopKSelector`), chosen at run
/// time. They compute exactly what the portable Swift scan (`scanRow`) computes: the row max,
/// the partition sum Σ exp(z − max) and the sorted pool of the best `pool_limit` selection keys.

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Elements per block of the AVX2 loop; the pool must hold 2·pool_limit + this many keys.
#define SELECT_KERNELS_BLOCK 32
/// Elements per block of the AVX-512 loop (four 16-lane vectors); its pool needs
/// 2·pool_limit + this many keys.
#define SELECT_KERNELS_BLOCK_AVX512 64

/// What a scan found. Same meaning as Swift's `RowScanResult`.
typedef struct {
    double max_logit;    ///< global maximum logit
    double partition;    ///< Σ exp(z − max_logit), ≥ 1
    int64_t pool_count;  ///< valid keys at the front of the pool, sorted descending
} select_scan_result;

/// 1 when the CPU has AVX2 and FMA (the Float32 and BFloat16 kernels need both).
int select_kernels_have_avx2_fma(void);
/// 1 when the CPU also has F16C (the Float16 kernel needs it).
int select_kernels_have_f16c(void);

/// Scan a row of `n ≥ 1` logits. `pool` holds at least 2·pool_limit + SELECT_KERNELS_BLOCK keys,
/// 1 ≤ pool_limit ≤ n. Returns 1 and fills `out`, or 0 when the row holds a NaN or ±infinity
/// (the caller locates it). Call only when `select_kernels_have_avx2_fma()` (and, for halves,
/// `select_kernels_have_f16c()`) returned 1.
int select_scan_f32(const float *row, int64_t n, int64_t pool_limit, uint64_t *pool,
                    select_scan_result *out);
int select_scan_f16(const uint16_t *row, int64_t n, int64_t pool_limit, uint64_t *pool,
                    select_scan_result *out);
int select_scan_bf16(const uint16_t *row, int64_t n, int64_t pool_limit, uint64_t *pool,
                     select_scan_result *out);

/// The kernel's e^x (x ≤ 0) on 8 floats, exposed so tests can bound its error.
void select_kernels_exp8(const float *x, float *out);

/// 1 when the CPU has AVX-512 F, BW, VL and DQ (plus FMA and F16C, which they imply in practice).
int select_kernels_have_avx512(void);

/// The same scans in 16 lanes, same contract except the pool: at least
/// 2·pool_limit + SELECT_KERNELS_BLOCK_AVX512 keys. Call only when `select_kernels_have_avx512()`.
int select_scan_f32_avx512(const float *row, int64_t n, int64_t pool_limit, uint64_t *pool,
                           select_scan_result *out);
int select_scan_f16_avx512(const uint16_t *row, int64_t n, int64_t pool_limit, uint64_t *pool,
                           select_scan_result *out);
int select_scan_bf16_avx512(const uint16_t *row, int64_t n, int64_t pool_limit, uint64_t *pool,
                            select_scan_result *out);

/// The AVX-512 kernel's e^x (x ≤ 0) on 16 floats, for the same error test.
void select_kernels_exp16_avx512(const float *x, float *out);

#ifdef __cplusplus
}
#endif

#endif
