// common.cuh: helpers shared by every kernel of compact (csrc/*.cu).
//
// Compiled by NVRTC (-std=c++17, CUDA include path, no fast math), device code
// only: no host code, no runtime API, no <cstdio>/<cstdint>. Every .cu file
// starts with #include "common.cuh"; the host supplies this file by name.
//
// Conventions of all kernels:
//   - bf16 is __nv_bfloat16 (Low tensors), float is fp32 (Full tensors),
//     int is int32 (tokens, targets); `long` is 64-bit (Linux LP64).
//   - All arithmetic is fp32 unless a kernel's header says otherwise; bf16 is
//     a storage format only (load -> float, compute, round to nearest even on
//     store).
//   - Deterministic: no float atomics; every reduction has a fixed order that
//     depends only on the launch configuration documented in the kernel's
//     file, never on scheduling.
//   - Reductions assume blockDim.x is a multiple of 32 and at most 1024.
#ifndef COMPACT_COMMON_CUH
#define COMPACT_COMMON_CUH

#include <cuda_bf16.h>

typedef __nv_bfloat16 bf16;

// A large finite negative number used for masked scores and empty maxima, so
// that exp(x - max) never sees inf - inf.
#define NEG_BIG (-1.0e30f)

#define LOG2E_F 1.4426950408889634f
#define LN2_F 0.6931471805599453f

__device__ __forceinline__ long ceil_div_l(long a, long b) { return (a + b - 1) / b; }
__device__ __forceinline__ int ceil_div(int a, int b) { return (a + b - 1) / b; }

// ---------------------------------------------------------------------------
// Loads and stores with conversion to and from float.
// ---------------------------------------------------------------------------

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16 x) { return __bfloat162float(x); }

__device__ __forceinline__ float load_f(const float* p, long i) { return p[i]; }
__device__ __forceinline__ float load_f(const bf16* p, long i) { return __bfloat162float(p[i]); }

__device__ __forceinline__ void store_f(float* p, long i, float v) { p[i] = v; }
__device__ __forceinline__ void store_f(bf16* p, long i, float v) { p[i] = __float2bfloat16_rn(v); }

// Raw 16-bit views of bf16 values (for shared-memory tiles and packing).
__device__ __forceinline__ float bits_to_float(unsigned short b) {
    return __uint_as_float(((unsigned int)b) << 16);
}
__device__ __forceinline__ unsigned short float_to_bits(float v) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(v));
}
// Two bf16 in one 32-bit register: lo in bits 0..15, hi in bits 16..31 (the
// layout of __nv_bfloat162 and of mma.sync bf16x2 operands).
__device__ __forceinline__ unsigned int pack_bits(unsigned short lo, unsigned short hi) {
    return ((unsigned int)hi << 16) | (unsigned int)lo;
}
__device__ __forceinline__ unsigned int pack_float2(float lo, float hi) {
    return pack_bits(float_to_bits(lo), float_to_bits(hi));
}

// 16-byte alignment test of a device pointer.
__device__ __forceinline__ bool aligned16(const void* p) {
    return (((unsigned long long)p) & 15ull) == 0ull;
}

// Eight bf16 held in a uint4 (16-byte vector load/store).
__device__ __forceinline__ void unpack8(const uint4& u, float f[8]) {
    f[0] = __uint_as_float(u.x << 16); f[1] = __uint_as_float(u.x & 0xffff0000u);
    f[2] = __uint_as_float(u.y << 16); f[3] = __uint_as_float(u.y & 0xffff0000u);
    f[4] = __uint_as_float(u.z << 16); f[5] = __uint_as_float(u.z & 0xffff0000u);
    f[6] = __uint_as_float(u.w << 16); f[7] = __uint_as_float(u.w & 0xffff0000u);
}
__device__ __forceinline__ uint4 pack8(const float f[8]) {
    uint4 u;
    u.x = pack_float2(f[0], f[1]);
    u.y = pack_float2(f[2], f[3]);
    u.z = pack_float2(f[4], f[5]);
    u.w = pack_float2(f[6], f[7]);
    return u;
}

// Eight consecutive elements p[i..i+7] as floats; p + i must be 16-byte
// aligned (callers check aligned16 on the base and use i % 8 == 0).
__device__ __forceinline__ void load8(const bf16* p, long i, float f[8]) {
    unpack8(*reinterpret_cast<const uint4*>(p + i), f);
}
__device__ __forceinline__ void load8(const float* p, long i, float f[8]) {
    const float4 a = *reinterpret_cast<const float4*>(p + i);
    const float4 b = *reinterpret_cast<const float4*>(p + i + 4);
    f[0] = a.x; f[1] = a.y; f[2] = a.z; f[3] = a.w;
    f[4] = b.x; f[5] = b.y; f[6] = b.z; f[7] = b.w;
}
__device__ __forceinline__ void store8(bf16* p, long i, const float f[8]) {
    *reinterpret_cast<uint4*>(p + i) = pack8(f);
}
__device__ __forceinline__ void store8(float* p, long i, const float f[8]) {
    *reinterpret_cast<float4*>(p + i) = make_float4(f[0], f[1], f[2], f[3]);
    *reinterpret_cast<float4*>(p + i + 4) = make_float4(f[4], f[5], f[6], f[7]);
}

// Grid-stride indices: first index of this thread and the stride.
__device__ __forceinline__ long gtid() { return (long)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ long gstride() { return (long)gridDim.x * blockDim.x; }

// ---------------------------------------------------------------------------
// Warp and block reductions. The xor butterfly leaves the same bits in every
// lane for sums and maxima of plain values (a+b == b+a exactly); helpers that
// combine pairs broadcast lane 0's result so that every lane agrees even when
// the compiler contracts multiply-adds.
// ---------------------------------------------------------------------------

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Block-wide sum; every thread gets the same result. `red` is a __shared__
// float[32] scratch. Contains __syncthreads(): call from all threads.
__device__ __forceinline__ float block_sum(float v, float* red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int nwarps = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    __syncthreads();  // red may still be read by a previous call
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float r = (lane < nwarps) ? red[lane] : 0.0f;
    r = warp_sum(r);
    return r;
}
__device__ __forceinline__ double block_sum_d(double v, double* red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int nwarps = (blockDim.x + 31) >> 5;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    double r = (lane < nwarps) ? red[lane] : 0.0;
    r = warp_sum_d(r);
    return r;
}
__device__ __forceinline__ float block_max(float v, float* red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int nwarps = (blockDim.x + 31) >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float r = (lane < nwarps) ? red[lane] : NEG_BIG;
    r = warp_max(r);
    return r;
}

// ---------------------------------------------------------------------------
// Philox4x32-10, exactly as internal/projection/philox.go:
//   per round: (hi0,lo0) = M0*c0, (hi1,lo1) = M1*c2 (32x32->64 products),
//   c = (hi1^c1^k0, lo1, hi0^c3^k1, lo0); k0 += W0; k1 += W1.
// ---------------------------------------------------------------------------

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u
#define PHILOX_COUNTER_TAG 0x436F6D70u

__device__ __forceinline__ uint4 philox4x32_10(uint4 c, uint2 k) {
#pragma unroll
    for (int round = 0; round < 10; ++round) {
        const unsigned int hi0 = __umulhi(PHILOX_M0, c.x);
        const unsigned int lo0 = PHILOX_M0 * c.x;
        const unsigned int hi1 = __umulhi(PHILOX_M1, c.z);
        const unsigned int lo1 = PHILOX_M1 * c.z;
        uint4 n;
        n.x = hi1 ^ c.y ^ k.x;
        n.y = lo1;
        n.z = hi0 ^ c.w ^ k.y;
        n.w = lo0;
        c = n;
        k.x += PHILOX_W0;
        k.y += PHILOX_W1;
    }
    return c;
}

// ---------------------------------------------------------------------------
// Stochastic rounding to bf16, exactly internal/gpu/rounding.go: arena
// element e of stream `stream` at optimizer step `step` draws
//   r = Philox4x32-10((uint32(e/4), stream, step, 0x53526E64), seed)[e%4] & 0xFFFF
// and rounds fp32 bits b to (b + r) >> 16 (NaN: (b | 0x00400000) >> 16).
// Integer arithmetic only, so the bits equal the CPU's for the same fp32
// value.
// ---------------------------------------------------------------------------

#define SR_COUNTER_TAG 0x53526E64u

// SRKey is the key of one rounding stream.
struct SRKey {
    uint2 seed;
    unsigned int stream, step;
};

__device__ __forceinline__ SRKey sr_key(unsigned int seed_lo, unsigned int seed_hi, unsigned int stream,
                                        unsigned int step) {
    SRKey k;
    k.seed.x = seed_lo;
    k.seed.y = seed_hi;
    k.stream = stream;
    k.step = step;
    return k;
}

// The four noise words of Philox block `block` (elements 4*block .. +3).
__device__ __forceinline__ uint4 sr_block(const SRKey& k, long block) {
    uint4 ctr;
    ctr.x = (unsigned int)block;
    ctr.y = k.stream;
    ctr.z = k.step;
    ctr.w = SR_COUNTER_TAG;
    return philox4x32_10(ctr, k.seed);
}

// Lane l (0..3) of x, by selects (no local-memory array).
__device__ __forceinline__ unsigned int sr_lane(const uint4& x, int l) {
    return l == 0 ? x.x : (l == 1 ? x.y : (l == 2 ? x.z : x.w));
}

__device__ __forceinline__ unsigned short sr_bf16_bits(float x, unsigned int r) {
    const unsigned int b = __float_as_uint(x);
    if ((b & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((b | 0x00400000u) >> 16);
    return (unsigned short)((b + (r & 0xffffu)) >> 16);
}

// x rounded with the noise of arena element e (e >= 0).
__device__ __forceinline__ bf16 sr_round(float x, const SRKey& k, long e) {
    return __ushort_as_bfloat16(sr_bf16_bits(x, sr_lane(sr_block(k, e >> 2), (int)(e & 3))));
}

// Eight values rounded with the noise of arena elements e0 .. e0+7: two
// Philox blocks when e0 is a multiple of 4, else three.
__device__ __forceinline__ void sr_round8(const float f[8], const SRKey& k, long e0, unsigned short out[8]) {
    const long b0 = e0 >> 2;
    const int s = (int)(e0 & 3);
    const uint4 x0 = sr_block(k, b0), x1 = sr_block(k, b0 + 1);
    const uint4 x2 = s ? sr_block(k, b0 + 2) : x1;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        const int t = s + j;  // word t of the blocks b0, b0+1, b0+2
        const uint4 x = t < 4 ? x0 : (t < 8 ? x1 : x2);
        out[j] = sr_bf16_bits(f[j], sr_lane(x, t & 3));
    }
}

// Loads and stores of eight elements p[i..i+7] that take the 16-byte
// vector path only when vec (every pointer of the call aligned).
template <typename T>
__device__ __forceinline__ void load8v(const T* p, long i, float f[8], bool vec) {
    if (vec) {
        load8(p, i, f);
        return;
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) f[j] = load_f(p, i + j);
}
template <typename T>
__device__ __forceinline__ void store8v(T* p, long i, const float f[8], bool vec) {
    if (vec) {
        store8(p, i, f);
        return;
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) store_f(p, i + j, f[j]);
}

// Rounding stores: a bf16 tensor takes the stochastic rounding of arena
// elements e0.., an fp32 one the value itself.
__device__ __forceinline__ void store8_sr(float* p, long i, const float f[8], bool vec, const SRKey&, long) {
    store8v(p, i, f, vec);
}
__device__ __forceinline__ void store8_sr(bf16* p, long i, const float f[8], bool vec, const SRKey& k, long e0) {
    unsigned short b[8];
    sr_round8(f, k, e0, b);
    if (vec) {
        uint4 u;
        u.x = pack_bits(b[0], b[1]);
        u.y = pack_bits(b[2], b[3]);
        u.z = pack_bits(b[4], b[5]);
        u.w = pack_bits(b[6], b[7]);
        *reinterpret_cast<uint4*>(p + i) = u;
        return;
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) p[i + j] = __ushort_as_bfloat16(b[j]);
}
__device__ __forceinline__ void store_sr(float* p, long i, float x, const SRKey&, long) { p[i] = x; }
__device__ __forceinline__ void store_sr(bf16* p, long i, float x, const SRKey& k, long e) { p[i] = sr_round(x, k, e); }

#endif  // COMPACT_COMMON_CUH
