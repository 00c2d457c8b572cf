// rounding.cu: stochastic rounding of fp32 values to bf16, for master-free
// bf16 weights and bf16 optimizer state. Exactly internal/gpu/rounding.go.
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
//
// Launch: one thread per Philox block touched,
//   nblocks = ceil_div(offset + n, 4) - offset / 4;
//   block 256, grid = min(ceil_div(nblocks, 256), 32*SMs) (any grid >= 1:
//   grid-stride). No shared memory.
//
// Determinism: pure function of (src, seed, stream, step, offset).
#include "common.cuh"

#define SR_COUNTER_TAG 0x53526E64u

__device__ __forceinline__ unsigned short sr_bf16_bits(float x, unsigned int r) {
    const unsigned int b = __float_as_uint(x);
    if ((b & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((b | 0x00400000u) >> 16);
    return (unsigned short)((b + (r & 0xffffu)) >> 16);
}

extern "C" __global__ void stochastic_round_bf16(bf16* dst, const float* src, long n, unsigned int seed_lo,
                                                 unsigned int seed_hi, unsigned int stream, unsigned int step,
                                                 long offset) {
    const long first = offset / 4;
    const long nblocks = (offset + n + 3) / 4 - first;
    uint2 key;
    key.x = seed_lo;
    key.y = seed_hi;
    for (long b = gtid(); b < nblocks; b += gstride()) {
        const long block = first + b;
        uint4 ctr;
        ctr.x = (unsigned int)block;
        ctr.y = stream;
        ctr.z = step;
        ctr.w = SR_COUNTER_TAG;
        const uint4 x = philox4x32_10(ctr, key);
        const unsigned int rs[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
        for (int lane = 0; lane < 4; ++lane) {
            const long i = block * 4 + lane - offset;
            if (i >= 0 && i < n) dst[i] = __ushort_as_bfloat16(sr_bf16_bits(src[i], rs[lane]));
        }
    }
}
