// rounding.cu: stochastic rounding of fp32 values into bf16, for master-free
// bf16 weights (gpu.Backend.StochasticRound). Exactly internal/gpu/rounding.go
// (the noise and the rounding are common.cuh's sr_* helpers).
//
// stochastic_round_bf16(bf16* dst, const float* src, long n, float beta,
//                       unsigned int seed_lo, unsigned int seed_hi,
//                       unsigned int stream, unsigned int step, long offset)
//   For each i < n:
//     x = beta == 0 ? src[i]
//                   : __fadd_rn(__fmul_rn(beta, float(dst[i])), src[i])   (two roundings,
//                                                   never an FMA, as the CPU reference)
//     dst[i] = stochastic rounding of x with the noise of arena element e = offset + i:
//       block = e / 4, lane = e % 4
//       counter = (uint32(block), stream, step, 0x53526E64), key = (seed_lo, seed_hi)
//       r = Philox4x32-10(counter, key)[lane] & 0xFFFF
//       b = bits of x; NaN: (b | 0x00400000) >> 16 (a quiet NaN), else (b + r) >> 16
//   beta = 0 never reads dst. The master-free compressed update calls it with
//   src = D = -lr N P^T (the decompression GEMM's fp32 output) and
//   beta = 1 - lr wd.
//   Launch: elementwise, block 256, grid = min(ceil_div(n, 256*8), 16*SMs)
//   (any grid >= 1: grid-stride); 8 elements per thread (16-byte vectors when
//   dst and src are 16-byte aligned), the n % 8 tail one by one. No shared
//   memory.
//
// Determinism: a pure function of its inputs and (seed, stream, step, offset);
// integer arithmetic for the rounding, so the bits equal the CPU's for the
// same x.
#include "common.cuh"

__device__ __forceinline__ float round_input(float beta, float w, float x) {
    return beta == 0.0f ? x : __fadd_rn(__fmul_rn(beta, w), x);
}

extern "C" __global__ void stochastic_round_bf16(bf16* dst, const float* src, long n, float beta, unsigned int seed_lo,
                                                 unsigned int seed_hi, unsigned int stream, unsigned int step,
                                                 long offset) {
    const SRKey k = sr_key(seed_lo, seed_hi, stream, step);
    const long tid = gtid(), stride = gstride();
    const bool vec = aligned16(dst) && aligned16(src);
    const long ngroups = n / 8;
    for (long q = tid; q < ngroups; q += stride) {
        const long i = q * 8;
        float fw[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f}, fs[8];
        if (beta != 0.0f) load8v(dst, i, fw, vec);
        load8v(src, i, fs, vec);
#pragma unroll
        for (int j = 0; j < 8; ++j) fw[j] = round_input(beta, fw[j], fs[j]);
        store8_sr(dst, i, fw, vec, k, offset + i);
    }
    for (long i = ngroups * 8 + tid; i < n; i += stride) {
        const float w = beta != 0.0f ? load_f(dst, i) : 0.0f;
        store_sr(dst, i, round_input(beta, w, src[i]), k, offset + i);
    }
}
