// rope.cu: rotary position embedding, split-half ("rotate_half") convention,
// in place, forward and inverse (the backward).
//
// rope(bf16* x, int N, int T, int heads, int D, float theta, int inverse)
//   x (N, heads*D) bf16 row-major, row n = b*T + t, position pos = n mod T.
//   For every head h and pair (i, i + D/2), i < D/2:
//     inv_i = float(1.0 / pow((double)theta, (double)(2i) / (double)D))
//     ang   = float(pos) * inv_i                     (one fp32 multiply)
//     co = float(cos((double)ang)), si = float(sin((double)ang)); inverse: si = -si
//     x1' = x1*co - x2*si,  x2' = x2*co + x1*si      (fp32), stored as bf16.
//   inv_i, ang, co and si are formed exactly as the CPU backend forms them
//   (fp64 pow / cos / sin of the fp32 angle, then rounded to fp32), so the
//   rotation coefficients are bit-identical to the CPU's; only the rotation
//   itself is fp32. D must be even.
//
// rope_rows(same arguments): the same values, for D % 16 == 0, D <= 128 and
//   x 16-byte aligned. A block takes ROPE_ROWS rows at a time: its threads
//   first form (co, si) of every (row, i) into shared memory, once per row as
//   in rope, then rotate 8 pairs per thread with 16-byte loads of x1 and x2
//   (rope's one-pair threads walk the heads with 2-byte accesses, ~40% of
//   the bandwidth).
//   Launch: block 256, grid = min(ceil_div(N, ROPE_ROWS), 32*SMs) (any grid
//   >= 1: grid-stride over row groups). Static shared memory 4 KiB.
//
// Launch (rope): one thread per (row n, pair i), looping over the heads:
//   total = N * (D/2) threads; block 256, grid = min(ceil_div(total, 256),
//   32*SMs) (any grid >= 1: grid-stride). No shared memory.
//
// Determinism: each element is rewritten by exactly one thread.
#include "common.cuh"

// The rotation coefficients of pair i at position pos, as the CPU forms them.
__device__ __forceinline__ float2 rope_coeffs(int pos, int i, int D, float theta, int inverse) {
    const float inv = (float)(1.0 / pow((double)theta, (double)(2 * i) / (double)D));
    const float ang = (float)pos * inv;
    double sd, cd;
    sincos((double)ang, &sd, &cd);
    return make_float2((float)cd, inverse ? -(float)sd : (float)sd);
}

#define ROPE_ROWS 8
#define ROPE_MAX_HALF 64

extern "C" __global__ void rope_rows(bf16* x, int N, int T, int heads, int D, float theta, int inverse) {
    __shared__ float2 cs[ROPE_ROWS * ROPE_MAX_HALF];
    const int half = D / 2, chunks = half / 8, perRow = heads * chunks;
    const long W = (long)heads * D;
    for (long r0 = (long)blockIdx.x * ROPE_ROWS; r0 < N; r0 += (long)gridDim.x * ROPE_ROWS) {
        const int rows = (int)min((long)ROPE_ROWS, (long)N - r0);
        __syncthreads();  // the previous row group is done with cs
        for (int e = threadIdx.x; e < rows * half; e += blockDim.x) {
            const int rr = e / half, i = e - rr * half;
            cs[e] = rope_coeffs((int)((r0 + rr) % T), i, D, theta, inverse);
        }
        __syncthreads();
        for (int e = threadIdx.x; e < rows * perRow; e += blockDim.x) {
            const int rr = e / perRow, rem = e - rr * perRow;
            const int h = rem / chunks, c = rem - h * chunks;
            bf16* p = x + (r0 + rr) * W + (long)h * D + c * 8;
            const float2* t = cs + rr * half + c * 8;
            float x1[8], x2[8], o1[8], o2[8];
            load8(p, 0, x1);
            load8(p + half, 0, x2);
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                o1[j] = x1[j] * t[j].x - x2[j] * t[j].y;
                o2[j] = x2[j] * t[j].x + x1[j] * t[j].y;
            }
            store8(p, 0, o1);
            store8(p + half, 0, o2);
        }
    }
}

extern "C" __global__ void rope(bf16* x, int N, int T, int heads, int D, float theta, int inverse) {
    const int half = D / 2;
    const long total = (long)N * half;
    const long W = (long)heads * D;
    for (long e = gtid(); e < total; e += gstride()) {
        const long n = e / half;
        const int i = (int)(e - n * half);
        const int pos = (int)(n % T);
        const float2 c = rope_coeffs(pos, i, D, theta, inverse);
        const float co = c.x, si = c.y;
        bf16* row = x + n * W;
        for (int h = 0; h < heads; ++h) {
            bf16* p = row + (long)h * D;
            const float x1 = __bfloat162float(p[i]);
            const float x2 = __bfloat162float(p[i + half]);
            p[i] = __float2bfloat16_rn(x1 * co - x2 * si);
            p[i + half] = __float2bfloat16_rn(x2 * co + x1 * si);
        }
    }
}
