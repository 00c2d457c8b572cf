// optimizer.cu: fused AdamW and CompAct's compressed Adam direction.
//
// adamw(float* p, const float* g, float* m, float* v, const float* clip, long n,
//       float lr, float beta1, float beta2, float eps, float wd, float scale,
//       float bc1, float bc2)
//   For each i < n (fp32 arithmetic, correctly rounded sqrtf and division):
//   every product and sum rounded on its own (no fma contraction),
//     c  = clip ? clip[0] : 1          (clip is a device pointer, nullable)
//     gc = g[i] * c
//     m[i] = beta1 * m[i] + (1 - beta1) * gc          (stored fp32)
//     v[i] = beta2 * v[i] + (1 - beta2) * gc * gc     (stored fp32)
//     dir  = scale * (m[i] / bc1) / (sqrtf(v[i] / bc2) + eps)
//     p[i] = p[i] - lr * (dir + wd * p[i])
//   bc1, bc2 are computed on the host (in float64, then rounded to fp32) and
//   select the form: torch's AdamW passes bc1 = 1 - beta1^step and
//   bc2 = 1 - beta2^step; HuggingFace's AdamW (the CompAct paper's) passes
//   bc1 = (1 - beta1^step) / sqrt(1 - beta2^step) and bc2 = 1, which is
//   sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps). As in the CPU backend the
//   direction is computed from the stored (fp32) moments.
//
// adam_direction(float* dir, const float* g, float* m, float* v,
//                const float* clip, long n, float beta1, float beta2,
//                float eps, float scale, float bc1, float bc2)
//   Updates m, v exactly as adamw and writes dir[i] = scale * mhat/(sqrt(vhat)+eps).
//
// Precision variants (same math; the suffix names the bf16 operands):
//   adamw_gbf16        (float* p, const bf16* g, ...)   bf16 gradient
//   adamw_pbf16        (bf16* p,  const float* g, ...)  bf16 weights, no master
//   adamw_pbf16_gbf16  (bf16* p,  const bf16* g, ...)
//   adam_direction_gbf16        (float* dir, const bf16* g, ...)
//   adam_direction_dbf16        (bf16* dir,  const float* g, ...)
//   adam_direction_dbf16_gbf16  (bf16* dir,  const bf16* g, ...)
//   Parameter lists are otherwise identical to adamw / adam_direction.
//
// Lean variants (master-free bf16 weights, bf16 moments): one pass that
// reads the narrow tensors, runs exactly the fp32 arithmetic above (the same
// AdamK::step and adamw_weight) and rounds the stores stochastically with
// the noise of common.cuh (internal/gpu/rounding.go), so the bits equal the
// staged path convert -> adamw / adam_direction -> stochastic_round_bf16.
// g is fp32 (the gradient arena and the fused scratch are fp32).
//   adamw_sr_pbf16        (bf16* p, const float* g, float* m, float* v, ...)  p rounded
//   adamw_sr_pbf16_sbf16  (bf16* p, const float* g, bf16* m, bf16* v, ...)    p, m, v rounded
//   adamw_sr_sbf16        (float* p, const float* g, bf16* m, bf16* v, ...)   m, v rounded (fp32 master p)
//     (..., const float* clip, long n, float lr, float beta1, float beta2, float eps, float wd,
//      float scale, float bc1, float bc2, unsigned int seed_lo, unsigned int seed_hi,
//      unsigned int stream_w, unsigned int stream_m, unsigned int stream_v, unsigned int step,
//      long woff, long moff)
//     p[i] draws the noise of (stream_w, element woff + i); m[i], v[i] those of
//     (stream_m / stream_v, element moff + i); an fp32 operand is stored as computed.
//   adam_direction_sr_sbf16       (float* dir, const float* g, bf16* m, bf16* v, ...)
//   adam_direction_sr_dbf16_sbf16 (bf16* dir,  const float* g, bf16* m, bf16* v, ...)
//     (..., const float* clip, long n, float beta1, float beta2, float eps, float scale,
//      float bc1, float bc2, unsigned int seed_lo, unsigned int seed_hi, unsigned int stream_m,
//      unsigned int stream_v, unsigned int step, long moff)
//     m, v rounded as above; a bf16 dir is rounded to nearest, as adam_direction_dbf16 stores it.
//   Each thread takes 8 consecutive elements (two or three Philox blocks per
//   rounded operand), the n % 8 tail one by one.
//
// Launch (all): block 256, grid = min(ceil_div(n, 256*8), 16*SMs) (any grid
// >= 1: grid-stride). No shared memory, no scratch. 16-byte vectors of 8 when
// every pointer is 16-byte aligned, elementwise otherwise.
//
// Determinism: elementwise, one thread per element.
#include "common.cuh"

struct AdamK {
    float b1, b2, eps, scale, bc1, bc2, c;
    // Updates (mi, vi) from gradient gi and returns the scaled direction.
    __device__ __forceinline__ float step(float gi, float& mi, float& vi) const {
        // Explicit roundings: left to the compiler, a * b + c contracts into
        // an fma differently in the vectorised and the scalar loops (and in
        // the fused and the staged kernels), which differ by an ulp.
        const float gc = gi * c;
        mi = __fadd_rn(__fmul_rn(b1, mi), __fmul_rn(1.0f - b1, gc));
        vi = __fadd_rn(__fmul_rn(b2, vi), __fmul_rn(__fmul_rn(1.0f - b2, gc), gc));
        const float mhat = mi / bc1, vhat = vi / bc2;
        return scale * mhat / (sqrtf(vhat) + eps);
    }
};

__device__ __forceinline__ AdamK adam_k(const float* clip, float b1, float b2, float eps, float scale, float bc1,
                                        float bc2) {
    AdamK k;
    k.b1 = b1; k.b2 = b2; k.eps = eps; k.scale = scale; k.bc1 = bc1; k.bc2 = bc2;
    k.c = clip ? clip[0] : 1.0f;
    return k;
}

// AdamW's new weight: one expression for every variant, rounded step by
// step (no contraction), so the fused and the staged kernels agree bit for bit.
__device__ __forceinline__ float adamw_weight(float p, float dir, float lr, float wd) {
    return __fsub_rn(p, __fmul_rn(lr, __fadd_rn(dir, __fmul_rn(wd, p))));
}

template <typename TP, typename TG>
__device__ __forceinline__ void adamw_impl(TP* p, const TG* g, float* m, float* v, const float* clip, long n,
                                           float lr, float b1, float b2, float eps, float wd, float scale,
                                           float bc1, float bc2) {
    const AdamK k = adam_k(clip, b1, b2, eps, scale, bc1, bc2);
    const long tid = gtid(), stride = gstride();
    const bool vec = aligned16(p) && aligned16(g) && aligned16(m) && aligned16(v);
    const long nvec = vec ? n / 8 : 0;
    for (long q = tid; q < nvec; q += stride) {
        float fp[8], fg[8], fm[8], fv[8];
        load8(p, q * 8, fp);
        load8(g, q * 8, fg);
        load8(m, q * 8, fm);
        load8(v, q * 8, fv);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const float dir = k.step(fg[j], fm[j], fv[j]);
            fp[j] = adamw_weight(fp[j], dir, lr, wd);
        }
        store8(m, q * 8, fm);
        store8(v, q * 8, fv);
        store8(p, q * 8, fp);
    }
    for (long i = nvec * 8 + tid; i < n; i += stride) {
        float mi = m[i], vi = v[i];
        const float dir = k.step(load_f(g, i), mi, vi);
        m[i] = mi;
        v[i] = vi;
        store_f(p, i, adamw_weight(load_f(p, i), dir, lr, wd));
    }
}

template <typename TD, typename TG>
__device__ __forceinline__ void adam_dir_impl(TD* dir, const TG* g, float* m, float* v, const float* clip, long n,
                                              float b1, float b2, float eps, float scale, float bc1, float bc2) {
    const AdamK k = adam_k(clip, b1, b2, eps, scale, bc1, bc2);
    const long tid = gtid(), stride = gstride();
    const bool vec = aligned16(dir) && aligned16(g) && aligned16(m) && aligned16(v);
    const long nvec = vec ? n / 8 : 0;
    for (long q = tid; q < nvec; q += stride) {
        float fd[8], fg[8], fm[8], fv[8];
        load8(g, q * 8, fg);
        load8(m, q * 8, fm);
        load8(v, q * 8, fv);
#pragma unroll
        for (int j = 0; j < 8; ++j) fd[j] = k.step(fg[j], fm[j], fv[j]);
        store8(m, q * 8, fm);
        store8(v, q * 8, fv);
        store8(dir, q * 8, fd);
    }
    for (long i = nvec * 8 + tid; i < n; i += stride) {
        float mi = m[i], vi = v[i];
        const float d = k.step(load_f(g, i), mi, vi);
        m[i] = mi;
        v[i] = vi;
        store_f(dir, i, d);
    }
}

#define ADAMW_ENTRY(NAME, TP, TG)                                                                       \
    extern "C" __global__ void NAME(TP* p, const TG* g, float* m, float* v, const float* clip, long n,  \
                                    float lr, float beta1, float beta2, float eps, float wd,            \
                                    float scale, float bc1, float bc2) {                                \
        adamw_impl(p, g, m, v, clip, n, lr, beta1, beta2, eps, wd, scale, bc1, bc2);                    \
    }

ADAMW_ENTRY(adamw, float, float)
ADAMW_ENTRY(adamw_gbf16, float, bf16)
ADAMW_ENTRY(adamw_pbf16, bf16, float)
ADAMW_ENTRY(adamw_pbf16_gbf16, bf16, bf16)

#define ADAMDIR_ENTRY(NAME, TD, TG)                                                                        \
    extern "C" __global__ void NAME(TD* dir, const TG* g, float* m, float* v, const float* clip, long n,   \
                                    float beta1, float beta2, float eps, float scale, float bc1,           \
                                    float bc2) {                                                           \
        adam_dir_impl(dir, g, m, v, clip, n, beta1, beta2, eps, scale, bc1, bc2);                          \
    }

ADAMDIR_ENTRY(adam_direction, float, float)
ADAMDIR_ENTRY(adam_direction_gbf16, float, bf16)
ADAMDIR_ENTRY(adam_direction_dbf16, bf16, float)
ADAMDIR_ENTRY(adam_direction_dbf16_gbf16, bf16, bf16)

template <typename TP, typename TM>
__device__ __forceinline__ void adamw_sr_impl(TP* p, const float* g, TM* m, TM* v, const float* clip, long n,
                                              float lr, float b1, float b2, float eps, float wd, float scale,
                                              float bc1, float bc2, unsigned int seed_lo, unsigned int seed_hi,
                                              unsigned int stream_w, unsigned int stream_m, unsigned int stream_v,
                                              unsigned int step, long woff, long moff) {
    const AdamK k = adam_k(clip, b1, b2, eps, scale, bc1, bc2);
    const SRKey kw = sr_key(seed_lo, seed_hi, stream_w, step);
    const SRKey km = sr_key(seed_lo, seed_hi, stream_m, step);
    const SRKey kv = sr_key(seed_lo, seed_hi, stream_v, step);
    const long tid = gtid(), stride = gstride();
    const bool vec = aligned16(p) && aligned16(g) && aligned16(m) && aligned16(v);
    const long ngroups = n / 8;
    for (long q = tid; q < ngroups; q += stride) {
        const long i = q * 8;
        float fp[8], fg[8], fm[8], fv[8];
        load8v(p, i, fp, vec);
        load8v(g, i, fg, vec);
        load8v(m, i, fm, vec);
        load8v(v, i, fv, vec);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const float dir = k.step(fg[j], fm[j], fv[j]);
            fp[j] = adamw_weight(fp[j], dir, lr, wd);
        }
        store8_sr(m, i, fm, vec, km, moff + i);
        store8_sr(v, i, fv, vec, kv, moff + i);
        store8_sr(p, i, fp, vec, kw, woff + i);
    }
    for (long i = ngroups * 8 + tid; i < n; i += stride) {
        float mi = load_f(m, i), vi = load_f(v, i);
        const float dir = k.step(g[i], mi, vi);
        store_sr(m, i, mi, km, moff + i);
        store_sr(v, i, vi, kv, moff + i);
        store_sr(p, i, adamw_weight(load_f(p, i), dir, lr, wd), kw, woff + i);
    }
}

template <typename TD>
__device__ __forceinline__ void adam_dir_sr_impl(TD* dir, const float* g, bf16* m, bf16* v, const float* clip, long n,
                                                 float b1, float b2, float eps, float scale, float bc1, float bc2,
                                                 unsigned int seed_lo, unsigned int seed_hi, unsigned int stream_m,
                                                 unsigned int stream_v, unsigned int step, long moff) {
    const AdamK k = adam_k(clip, b1, b2, eps, scale, bc1, bc2);
    const SRKey km = sr_key(seed_lo, seed_hi, stream_m, step);
    const SRKey kv = sr_key(seed_lo, seed_hi, stream_v, step);
    const long tid = gtid(), stride = gstride();
    const bool vec = aligned16(dir) && aligned16(g) && aligned16(m) && aligned16(v);
    const long ngroups = n / 8;
    for (long q = tid; q < ngroups; q += stride) {
        const long i = q * 8;
        float fd[8], fg[8], fm[8], fv[8];
        load8v(g, i, fg, vec);
        load8v(m, i, fm, vec);
        load8v(v, i, fv, vec);
#pragma unroll
        for (int j = 0; j < 8; ++j) fd[j] = k.step(fg[j], fm[j], fv[j]);
        store8_sr(m, i, fm, vec, km, moff + i);
        store8_sr(v, i, fv, vec, kv, moff + i);
        store8v(dir, i, fd, vec);
    }
    for (long i = ngroups * 8 + tid; i < n; i += stride) {
        float mi = load_f(m, i), vi = load_f(v, i);
        const float d = k.step(g[i], mi, vi);
        store_sr(m, i, mi, km, moff + i);
        store_sr(v, i, vi, kv, moff + i);
        store_f(dir, i, d);
    }
}

#define ADAMW_SR_ENTRY(NAME, TP, TM)                                                                        \
    extern "C" __global__ void NAME(TP* p, const float* g, TM* m, TM* v, const float* clip, long n,        \
                                    float lr, float beta1, float beta2, float eps, float wd, float scale,   \
                                    float bc1, float bc2, unsigned int seed_lo, unsigned int seed_hi,       \
                                    unsigned int stream_w, unsigned int stream_m, unsigned int stream_v,    \
                                    unsigned int step, long woff, long moff) {                              \
        adamw_sr_impl(p, g, m, v, clip, n, lr, beta1, beta2, eps, wd, scale, bc1, bc2, seed_lo, seed_hi,    \
                      stream_w, stream_m, stream_v, step, woff, moff);                                      \
    }

ADAMW_SR_ENTRY(adamw_sr_pbf16, bf16, float)
ADAMW_SR_ENTRY(adamw_sr_pbf16_sbf16, bf16, bf16)
ADAMW_SR_ENTRY(adamw_sr_sbf16, float, bf16)

#define ADAMDIR_SR_ENTRY(NAME, TD)                                                                          \
    extern "C" __global__ void NAME(TD* dir, const float* g, bf16* m, bf16* v, const float* clip, long n,  \
                                    float beta1, float beta2, float eps, float scale, float bc1, float bc2, \
                                    unsigned int seed_lo, unsigned int seed_hi, unsigned int stream_m,      \
                                    unsigned int stream_v, unsigned int step, long moff) {                  \
        adam_dir_sr_impl(dir, g, m, v, clip, n, beta1, beta2, eps, scale, bc1, bc2, seed_lo, seed_hi,      \
                         stream_m, stream_v, step, moff);                                                   \
    }

ADAMDIR_SR_ENTRY(adam_direction_sr_sbf16, float)
ADAMDIR_SR_ENTRY(adam_direction_sr_dbf16_sbf16, bf16)
