// optimizer.cu: the one Adam kernel (gpu.Backend.Adam; the math and the
// storage rules are at the top of internal/gpu/adam.go, the 8-bit code in
// internal/gpu/quant8.go). As llm.c's adamw, one routine serves every
// storage: the element types are template parameters, the direction and
// the rounding keys are arguments.
//
// adam_<out>_<state>[_gbf16](TO* out, const TG* g, TS* m, TS* v, float* m_scale, float* v_scale,
//                    const float* clip, long n, float lr, float beta1, float beta2, float eps,
//                    float wd, float scale, float bc1, float bc2, int direction,
//                    unsigned int seed_lo, unsigned int seed_hi, unsigned int stream_w,
//                    unsigned int stream_m, unsigned int stream_v, unsigned int step,
//                    long woff, long moff)
//   <out> f32 | bf16: TO = float | bf16, the weights (direction == 0) or the
//   direction (direction != 0), n elements; g, n elements: TG = float, or
//   with the _gbf16 suffix bf16 (the bf16 gradient sums of
//   train.grad_accum_state bf16, internal/model/accum.go), each read as its
//   exact fp32 value, so the step is the fp32 one on those values.
//   <state> f32 | bf16 | i8: TS = float | bf16 | unsigned char (8-bit codes);
//   m_scale, v_scale (i8 only, else null): one fp32 scale per block of 128
//   elements, block b covering m[128b .. 128b+127] (moff is a multiple of 128).
//   For each i < n, fp32 arithmetic with every product and sum rounded on
//   its own (no fma contraction), correctly rounded sqrtf and division:
//     c   = clip ? clip[0] : 1                 (clip: a device pointer, nullable)
//     gc  = float(g[i]) * c
//     m'  = beta1 * m + (1 - beta1) * gc
//     v'  = beta2 * v + (1 - beta2) * gc * gc
//     d   = scale * (m' / bc1) / (sqrtf(v' / bc2) + eps)
//     direction: out[i] = d                                  (bf16: nearest even)
//     else:      out[i] = out[i] - lr * (d + wd * out[i])    (bf16: stochastic
//                rounding, stream_w at element woff + i; fp32 as computed)
//     m', v' stored: f32 as computed; bf16 stochastically rounded (stream_m,
//     stream_v at element moff + i); i8: once the block's 128 elements are
//     updated, its scales are the largest |m'| and v' (as integer bits) and
//     each element is encoded as quant8.go says.
//   m and v are read from their storage (i8: decoded) and d is formed from
//   m', v' before they are stored. bc1, bc2 are computed on the host (in
//   float64, rounded to fp32) and select the form: torch's AdamW passes
//   bc1 = 1 - beta1^step and bc2 = 1 - beta2^step; HuggingFace's (the CompAct
//   paper's) bc1 = (1 - beta1^step) / sqrt(1 - beta2^step) and bc2 = 1.
//   Variants: adam_f32_f32 (fp32 master), adam_f32_bf16, adam_f32_i8,
//   adam_bf16_f32 (bf16 weights or direction), adam_bf16_bf16, adam_bf16_i8,
//   and each of the six with _gbf16 (a bf16 gradient).
//
// Launch: block 256. f32 and bf16 states: grid = min(ceil_div(n, 256*8),
// 16*SMs), grid-stride; each thread takes 8 consecutive elements (16-byte
// vectors when every pointer is 16-byte aligned: a bf16 gradient's 8 elements
// are one 16-byte load, an fp32 one's two; elementwise otherwise), the
// n % 8 tail one by one. i8: one warp per block of 128 elements (4
// consecutive elements per lane), grid = min(ceil_div(ceil_div(n, 128), 8),
// 16*SMs), warps grid-stride over the blocks. No shared memory, no scratch.
//
// Determinism: every element is computed by one thread in a fixed order;
// an i8 block's scale is a maximum of integers (independent of order).
#include "common.cuh"

#define Q8_BLOCK 128
#define Q8_EMAX_M 15u  // first moment: sign, 4 exponent bits, 3 mantissa bits
#define Q8_EMAX_V 31u  // second moment: 5 exponent bits, 3 mantissa bits

typedef unsigned char q8;

struct AdamK {
    float b1, b2, eps, scale, bc1, bc2, c;
    // Updates (mi, vi) from gradient gi and returns the scaled direction.
    __device__ __forceinline__ float step(float gi, float& mi, float& vi) const {
        // Explicit roundings: left to the compiler, a * b + c contracts into
        // an fma differently in the vectorised and the scalar loops, which
        // differ by an ulp.
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

// AdamW's new weight, rounded step by step (no contraction).
__device__ __forceinline__ float adamw_weight(float p, float dir, float lr, float wd) {
    return __fsub_rn(p, __fmul_rn(lr, __fadd_rn(dir, __fmul_rn(wd, p))));
}

// What one call stores: the direction or the weights, the step's lr and
// weight decay, and the rounding keys of the weights and the moments.
struct AdamStore {
    bool direction;
    float lr, wd;
    SRKey w, m, v;
    long woff, moff;
};

// ---------------------------------------------------------------------------
// fp32 and bf16 moments: elementwise.
// ---------------------------------------------------------------------------

template <typename TO, typename TS, typename TG>
__device__ __forceinline__ void adam_run(TO* out, const TG* g, TS* m, TS* v, float*, float*, long n,
                                         const AdamK& k, const AdamStore& s) {
    const long tid = gtid(), stride = gstride();
    const bool vec = aligned16(out) && aligned16(g) && aligned16(m) && aligned16(v);
    const long ngroups = n / 8;
    for (long q = tid; q < ngroups; q += stride) {
        const long i = q * 8;
        float fo[8], fg[8], fm[8], fv[8];
        if (!s.direction) load8v(out, i, fo, vec);
        load8v(g, i, fg, vec);
        load8v(m, i, fm, vec);
        load8v(v, i, fv, vec);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const float d = k.step(fg[j], fm[j], fv[j]);
            fo[j] = s.direction ? d : adamw_weight(fo[j], d, s.lr, s.wd);
        }
        store8_sr(m, i, fm, vec, s.m, s.moff + i);
        store8_sr(v, i, fv, vec, s.v, s.moff + i);
        if (s.direction) {
            store8v(out, i, fo, vec);
        } else {
            store8_sr(out, i, fo, vec, s.w, s.woff + i);
        }
    }
    for (long i = ngroups * 8 + tid; i < n; i += stride) {
        float mi = load_f(m, i), vi = load_f(v, i);
        const float d = k.step(load_f(g, i), mi, vi);
        store_sr(m, i, mi, s.m, s.moff + i);
        store_sr(v, i, vi, s.v, s.moff + i);
        if (s.direction) {
            store_f(out, i, d);
        } else {
            store_sr(out, i, adamw_weight(load_f(out, i), d, s.lr, s.wd), s.w, s.woff + i);
        }
    }
}

// ---------------------------------------------------------------------------
// 8-bit moments, exactly internal/gpu/quant8.go.
// ---------------------------------------------------------------------------

// value(u) of a magnitude code under emax.
__device__ __forceinline__ float q8_value(unsigned int u, unsigned int emax) {
    if (u == 0u) return 0.0f;
    return __uint_as_float((((u >> 3) + 127u - emax) << 23) | ((u & 7u) << 20));
}

// The magnitude code of y = |x| / s (y in [0, 1]); keep maps values below
// the smallest code to it rather than to zero (the second moment).
__device__ __forceinline__ unsigned int q8_magnitude(float y, unsigned int emax, bool keep) {
    const unsigned int b = __float_as_uint(y);
    if (b == 0u) return 0u;
    if (b > 0x3f800000u) return emax << 3;  // above 1 or NaN: a non-finite scale
    const unsigned int r = (b + 0x7ffffu + ((b >> 20) & 1u)) >> 20;
    const unsigned int lo = (127u - emax) << 3;
    if (r == lo) return 1u;
    if (r < lo) return keep ? 1u : 0u;
    return r - lo;
}

// The value of code c under scale s: the first moment's code (signed) or
// the second's.
__device__ __forceinline__ float q8_decode(q8 c, float s, bool first) {
    const unsigned int u = first ? (c & 0x7fu) : c;
    const float x = __fmul_rn(s, q8_value(u, first ? Q8_EMAX_M : Q8_EMAX_V));
    return (first && (c & 0x80u)) ? -x : x;
}

// The code of x under the block's scale s > 0.
__device__ __forceinline__ q8 q8_encode(float x, float s, bool first) {
    const unsigned int b = __float_as_uint(x);
    unsigned int u = q8_magnitude(__fdiv_rn(__uint_as_float(b & 0x7fffffffu), s), first ? Q8_EMAX_M : Q8_EMAX_V, !first);
    if (first && u != 0u && (b >> 31)) u |= 0x80u;
    return (q8)u;
}

__device__ __forceinline__ unsigned int warp_max_u(unsigned int v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const unsigned int w = __shfl_xor_sync(0xffffffffu, v, o);
        v = w > v ? w : v;
    }
    return v;
}

template <typename TO, typename TG>
__device__ __forceinline__ void adam_run(TO* out, const TG* g, q8* m, q8* v, float* m_scale, float* v_scale, long n,
                                         const AdamK& k, const AdamStore& s) {
    const int lane = threadIdx.x & 31;
    const long warp = gtid() >> 5, nwarps = gstride() >> 5;
    const long nblocks = ceil_div_l(n, Q8_BLOCK);
    for (long b = warp; b < nblocks; b += nwarps) {  // the same b in every lane of the warp
        const float sm = m_scale[b], sv = v_scale[b];
        float fm[4], fv[4];
        unsigned int top_m = 0u, top_v = 0u;
#pragma unroll
        for (int t = 0; t < 4; ++t) {
            const long i = b * Q8_BLOCK + lane * 4 + t;
            fm[t] = 0.0f;
            fv[t] = 0.0f;
            if (i < n) {
                float mi = q8_decode(m[i], sm, true), vi = q8_decode(v[i], sv, false);
                const float d = k.step(load_f(g, i), mi, vi);
                if (s.direction) {
                    store_f(out, i, d);
                } else {
                    store_sr(out, i, adamw_weight(load_f(out, i), d, s.lr, s.wd), s.w, s.woff + i);
                }
                fm[t] = mi;
                fv[t] = vi;
                const unsigned int am = __float_as_uint(mi) & 0x7fffffffu, av = __float_as_uint(vi) & 0x7fffffffu;
                top_m = am > top_m ? am : top_m;
                top_v = av > top_v ? av : top_v;
            }
        }
        // Every lane has read the block's old scales before the shuffles,
        // so lane 0 may overwrite them after.
        top_m = warp_max_u(top_m);
        top_v = warp_max_u(top_v);
        const float nsm = __uint_as_float(top_m), nsv = __uint_as_float(top_v);
#pragma unroll
        for (int t = 0; t < 4; ++t) {
            const long i = b * Q8_BLOCK + lane * 4 + t;
            if (i < n) {
                m[i] = top_m ? q8_encode(fm[t], nsm, true) : (q8)0;
                v[i] = top_v ? q8_encode(fv[t], nsv, false) : (q8)0;
            }
        }
        if (lane == 0) {
            m_scale[b] = nsm;
            v_scale[b] = nsv;
        }
    }
}

template <typename TO, typename TS, typename TG>
__device__ __forceinline__ void adam_impl(TO* out, const TG* g, TS* m, TS* v, float* m_scale, float* v_scale,
                                          const float* clip, long n, float lr, float b1, float b2, float eps,
                                          float wd, float scale, float bc1, float bc2, int direction,
                                          unsigned int seed_lo, unsigned int seed_hi, unsigned int stream_w,
                                          unsigned int stream_m, unsigned int stream_v, unsigned int step, long woff,
                                          long moff) {
    const AdamK k = adam_k(clip, b1, b2, eps, scale, bc1, bc2);
    AdamStore s;
    s.direction = direction != 0;
    s.lr = lr;
    s.wd = wd;
    s.w = sr_key(seed_lo, seed_hi, stream_w, step);
    s.m = sr_key(seed_lo, seed_hi, stream_m, step);
    s.v = sr_key(seed_lo, seed_hi, stream_v, step);
    s.woff = woff;
    s.moff = moff;
    adam_run(out, g, m, v, m_scale, v_scale, n, k, s);
}

#define ADAM_ENTRY(NAME, TO, TS, TG)                                                                               \
    extern "C" __global__ void NAME(TO* out, const TG* g, TS* m, TS* v, float* m_scale, float* v_scale,           \
                                    const float* clip, long n, float lr, float beta1, float beta2, float eps,     \
                                    float wd, float scale, float bc1, float bc2, int direction,                  \
                                    unsigned int seed_lo, unsigned int seed_hi, unsigned int stream_w,           \
                                    unsigned int stream_m, unsigned int stream_v, unsigned int step, long woff,  \
                                    long moff) {                                                                 \
        adam_impl(out, g, m, v, m_scale, v_scale, clip, n, lr, beta1, beta2, eps, wd, scale, bc1, bc2,           \
                  direction, seed_lo, seed_hi, stream_w, stream_m, stream_v, step, woff, moff);                  \
    }

ADAM_ENTRY(adam_f32_f32, float, float, float)
ADAM_ENTRY(adam_f32_bf16, float, bf16, float)
ADAM_ENTRY(adam_f32_i8, float, q8, float)
ADAM_ENTRY(adam_bf16_f32, bf16, float, float)
ADAM_ENTRY(adam_bf16_bf16, bf16, bf16, float)
ADAM_ENTRY(adam_bf16_i8, bf16, q8, float)
ADAM_ENTRY(adam_f32_f32_gbf16, float, float, bf16)
ADAM_ENTRY(adam_f32_bf16_gbf16, float, bf16, bf16)
ADAM_ENTRY(adam_f32_i8_gbf16, float, q8, bf16)
ADAM_ENTRY(adam_bf16_f32_gbf16, bf16, float, bf16)
ADAM_ENTRY(adam_bf16_bf16_gbf16, bf16, bf16, bf16)
ADAM_ENTRY(adam_bf16_i8_gbf16, bf16, q8, bf16)
