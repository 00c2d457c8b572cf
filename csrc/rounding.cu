// rounding.cu: stochastic rounding of fp32 values to bf16, for master-free
// bf16 weights and bf16 optimizer state. Exactly internal/gpu/rounding.go
// (the noise and the rounding are common.cuh's sr_* helpers).
//
// stochastic_round_bf16(bf16* dst, const float* src, long n,
//                       unsigned int seed_lo, unsigned int seed_hi,
//                       unsigned int stream, unsigned int step, long offset)
//   Element i < n is arena element e = offset + i:
//     block = e / 4, lane = e % 4
//     counter = (uint32(block), stream, step, 0x53526E64), key = (seed_lo, seed_hi)
//     r = Philox4x32-10(counter, key)[lane] & 0xFFFF
//     b = bits of src[i]
//     NaN: dst[i] = (b | 0x00400000) >> 16 (a quiet NaN)
//     else dst[i] = (b + r) >> 16      (round toward zero after adding noise)
//   Integer arithmetic only, so the bits equal the CPU's for the same src.
//   Launch: one thread per Philox block touched,
//     nblocks = ceil_div(offset + n, 4) - offset / 4;
//     block 256, grid = min(ceil_div(nblocks, 256), 32*SMs) (any grid >= 1:
//     grid-stride). No shared memory.
//
// decay_add_sr_bf16(bf16* w, const float* d, long n, float decay,
//                   unsigned int seed_lo, unsigned int seed_hi,
//                   unsigned int stream, unsigned int step, long offset)
//   The master-free compressed update after the decompression GEMM wrote
//   d = -lr * N P^T (fp32, beta = 0):
//     x = __fadd_rn(__fmul_rn(decay, float(w[i])), d[i])   (two roundings, never an FMA,
//                                                            as the CPU reference computes it)
//     w[i] = stochastic rounding of x with the noise of element offset + i
//   Launch: elementwise, block 256, grid = min(ceil_div(n, 256*8), 16*SMs);
//   8 elements per thread (16-byte vectors when w and d are 16-byte
//   aligned), the n % 8 tail one by one.
//
// Determinism: pure functions of their inputs and (seed, stream, step, offset).
#include "common.cuh"

extern "C" __global__ void stochastic_round_bf16(bf16* dst, const float* src, long n, unsigned int seed_lo,
                                                 unsigned int seed_hi, unsigned int stream, unsigned int step,
                                                 long offset) {
    const long first = offset / 4;
    const long nblocks = (offset + n + 3) / 4 - first;
    const SRKey k = sr_key(seed_lo, seed_hi, stream, step);
    for (long b = gtid(); b < nblocks; b += gstride()) {
        const long block = first + b;
        const uint4 x = sr_block(k, block);
#pragma unroll
        for (int lane = 0; lane < 4; ++lane) {
            const long i = block * 4 + lane - offset;
            if (i >= 0 && i < n) dst[i] = __ushort_as_bfloat16(sr_bf16_bits(src[i], sr_lane(x, lane)));
        }
    }
}

__device__ __forceinline__ float decay_add(float decay, float w, float d) {
    return __fadd_rn(__fmul_rn(decay, w), d);
}

extern "C" __global__ void decay_add_sr_bf16(bf16* w, const float* d, long n, float decay, unsigned int seed_lo,
                                             unsigned int seed_hi, unsigned int stream, unsigned int step,
                                             long offset) {
    const SRKey k = sr_key(seed_lo, seed_hi, stream, step);
    const long tid = gtid(), stride = gstride();
    const bool vec = aligned16(w) && aligned16(d);
    const long ngroups = n / 8;
    for (long q = tid; q < ngroups; q += stride) {
        const long i = q * 8;
        float fw[8], fd[8];
        load8v(w, i, fw, vec);
        load8v(d, i, fd, vec);
#pragma unroll
        for (int j = 0; j < 8; ++j) fw[j] = decay_add(decay, fw[j], fd[j]);
        store8_sr(w, i, fw, vec, k, offset + i);
    }
    for (long i = ngroups * 8 + tid; i < n; i += stride) {
        store_sr(w, i, decay_add(decay, load_f(w, i), d[i]), k, offset + i);
    }
}
