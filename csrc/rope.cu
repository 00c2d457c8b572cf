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
// Launch: one thread per (row n, pair i), looping over the heads:
//   total = N * (D/2) threads; block 256, grid = min(ceil_div(total, 256),
//   32*SMs) (any grid >= 1: grid-stride). No shared memory.
//
// Determinism: each element is rewritten by exactly one thread.
#include "common.cuh"

extern "C" __global__ void rope(bf16* x, int N, int T, int heads, int D, float theta, int inverse) {
    const int half = D / 2;
    const long total = (long)N * half;
    const long W = (long)heads * D;
    for (long e = gtid(); e < total; e += gstride()) {
        const long n = e / half;
        const int i = (int)(e - n * half);
        const int pos = (int)(n % T);
        const float inv = (float)(1.0 / pow((double)theta, (double)(2 * i) / (double)D));
        const float ang = (float)pos * inv;
        double sd, cd;
        sincos((double)ang, &sd, &cd);
        const float co = (float)cd;
        const float si = inverse ? -(float)sd : (float)sd;
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
