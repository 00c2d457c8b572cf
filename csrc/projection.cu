// projection.cu: CompAct's random projection P (n x r), regenerated on demand
// from a counter-based generator; never stored between uses.
//
// projection_f32(float* P, int n, int r, int ld, int kind, unsigned int seed_lo,
//                unsigned int seed_hi, unsigned int stream, unsigned int epoch)
// projection_bf16(bf16* P, int n, int r, int ld, int kind, unsigned int seed_lo,
//                 unsigned int seed_hi, unsigned int stream, unsigned int epoch)
//   P row-major (n, ld), ld >= r: the logical (n, r) matrix at row stride ld
//   (the engine pads r to a multiple of 8 for aligned GEMMs), and exact zeros
//   in columns r..ld-1 of every row, written on every call. The values are
//   exactly internal/projection (philox.go, projection.go), indexed by the
//   logical r, so they do not depend on ld:
//     key     = (seed_lo, seed_hi) = (uint32(seed), uint32(seed >> 32))
//     element e = i*r + j (stored at i*ld + j); block = e / 4, lane = e % 4
//     counter = (uint32(block), stream, epoch, 0x436F6D70)
//     x[0..3] = Philox4x32-10(counter, key)
//     kind 0, gaussian: Box-Muller on (x0,x1) and (x2,x3), all in fp64:
//       u1 = (x_even + 1) * 2^-32 in (0,1],  u2 = x_odd * 2^-32 in [0,1),
//       rad = sqrt(-2 log u1) * (1/sqrt(r)),  (s, c) = sincos(2 pi u2),
//       even lane: rad*c, odd lane: rad*s
//     kind 1, rademacher: (x_lane & 1 ? -1 : +1) * (1/sqrt(r))
//   The fp64 value is rounded to fp32 (projection_f32), or to fp32 and then to
//   bf16 (projection_bf16), which is what the CPU's Fill32 followed by an
//   fp32 -> bf16 conversion gives. CUDA's fp64 log/sqrt/sincos are within an
//   ulp or two of Go's math package, so P matches the CPU to fp32 rounding
//   (nearly always bit-identical).
//
// Launch: one thread per Philox block of 4 elements: nblocks = ceil_div(n*r, 4);
//   block 256, grid = min(ceil_div(nblocks, 256), 32*SMs) (any grid >= 1:
//   grid-stride; the same loop then zeroes the n*(ld-r) padding elements).
//   No shared memory.
//
// Determinism: pure function of (seed, stream, epoch, kind, n, r, ld).
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void projection_impl(T* P, int n, int r, int ld, int kind, unsigned int seed_lo,
                                                unsigned int seed_hi, unsigned int stream, unsigned int epoch) {
    const long total = (long)n * r;
    const long nblocks = (total + 3) / 4;
    const double scale = 1.0 / sqrt((double)r);
    const double two_pi = 6.283185307179586476925286766559;  // rounds to Go's float64(2*math.Pi)
    const double inv32 = 2.3283064365386962890625e-10;         // 2^-32, exact
    uint2 key;
    key.x = seed_lo;
    key.y = seed_hi;
    for (long b = gtid(); b < nblocks; b += gstride()) {
        uint4 ctr;
        ctr.x = (unsigned int)b;
        ctr.y = stream;
        ctr.z = epoch;
        ctr.w = PHILOX_COUNTER_TAG;
        const uint4 x = philox4x32_10(ctr, key);
        double v[4];
        if (kind == 1) {
            v[0] = (x.x & 1u) ? -scale : scale;
            v[1] = (x.y & 1u) ? -scale : scale;
            v[2] = (x.z & 1u) ? -scale : scale;
            v[3] = (x.w & 1u) ? -scale : scale;
        } else {
            const unsigned int xs[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
            for (int p = 0; p < 2; ++p) {
                const double u1 = ((double)xs[2 * p] + 1.0) * inv32;
                const double u2 = (double)xs[2 * p + 1] * inv32;
                const double rad = sqrt(-2.0 * log(u1)) * scale;
                double s, c;
                sincos(two_pi * u2, &s, &c);
                v[2 * p] = rad * c;
                v[2 * p + 1] = rad * s;
            }
        }
        const long e0 = b * 4;
#pragma unroll
        for (int lane = 0; lane < 4; ++lane) {
            const long e = e0 + lane;
            if (e < total) store_f(P, ld == r ? e : (e / r) * ld + e % r, (float)v[lane]);
        }
    }
    // The padding columns: the buffer may hold another group's P.
    const int pad = ld - r;
    const long npad = (long)n * pad;
    for (long k = gtid(); k < npad; k += gstride()) {
        store_f(P, (k / pad) * ld + r + k % pad, 0.0f);
    }
}

extern "C" __global__ void projection_f32(float* P, int n, int r, int ld, int kind, unsigned int seed_lo,
                                          unsigned int seed_hi, unsigned int stream, unsigned int epoch) {
    projection_impl(P, n, r, ld, kind, seed_lo, seed_hi, stream, epoch);
}
extern "C" __global__ void projection_bf16(bf16* P, int n, int r, int ld, int kind, unsigned int seed_lo,
                                           unsigned int seed_hi, unsigned int stream, unsigned int epoch) {
    projection_impl(P, n, r, ld, kind, seed_lo, seed_hi, stream, epoch);
}
