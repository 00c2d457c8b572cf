// decode.cu: the two ops of KV-cache generation (gpu.Decoder).
//
// rope_at(bf16* x, int N, int pos, int heads, int D, float theta)
//   RoPE (split-half "rotate_half") of every row of x (N, heads*D) at one
//   position pos, with rope.cu's coefficients: inv_i = float(1/theta^(2i/D))
//   in fp64, ang = float(pos) * inv_i in fp32, cos/sin in fp64 rounded to
//   fp32; x1' = x1 co - x2 si, x2' = x2 co + x1 si in fp32, stored bf16.
//   Launch: one thread per (row, pair): total = N*(D/2); block 256,
//   grid = min(ceil_div(total, 256), 32*SMs), grid-stride. No shared memory.
//
// attention_decode(bf16* out, const bf16* q, const bf16* kc, const bf16* vc,
//                  int B, int t, int H, int KV, int D)
//   One new query row per sequence against the cache:
//   q, out (B, H*D); kc, vc (maxT*B, KV*D), position j of sequence b in row
//   j*B + b; positions [0, t) valid. Query head h reads kv head h/(H/KV).
//   s_j = q . k_j / sqrt(D);  out = sum_j softmax(s)_j v_j   (fp32).
//   Launch: one block per (b, h): grid B*H, block 128, dynamic shared memory
//   (t + 32) * 4 bytes (scores, then reduction scratch); the host keeps t
//   small enough for 48 KiB. Deterministic: fixed per-thread order and a
//   fixed tree reduction.
#include "common.cuh"

extern "C" __global__ void rope_at(bf16* x, int N, int pos, int heads, int D, float theta) {
    const int half = D / 2;
    const long total = (long)N * half;
    const long W = (long)heads * D;
    for (long e = gtid(); e < total; e += gstride()) {
        const long n = e / half;
        const int i = (int)(e - n * half);
        const float inv = (float)(1.0 / pow((double)theta, (double)(2 * i) / (double)D));
        const float ang = (float)pos * inv;
        double sd, cd;
        sincos((double)ang, &sd, &cd);
        const float co = (float)cd, si = (float)sd;
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

// block_reduce combines one value per thread (blockDim.x a power of two,
// at most 1024) with op through shared scratch red (blockDim.x floats are
// not needed: 32 suffice, one per warp); every thread gets the result.
template <bool MAX>
__device__ float decode_block_reduce(float v, float* red) {
    for (int o = 16; o > 0; o >>= 1) {
        const float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = MAX ? fmaxf(v, w) : v + w;
    }
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nw = blockDim.x / 32;
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float r = red[0];
    for (int w = 1; w < nw; ++w) r = MAX ? fmaxf(r, red[w]) : r + red[w];
    return r;
}

extern "C" __global__ void attention_decode(bf16* out, const bf16* q, const bf16* kc, const bf16* vc,
                                            int B, int t, int H, int KV, int D) {
    extern __shared__ float smem[];
    float* s = smem;        // t scores, then probabilities
    float* red = smem + t;  // 32 floats
    const int bh = blockIdx.x;
    const int b = bh / H, h = bh % H;
    const int kvh = h / (H / KV);
    const bf16* qr = q + (long)b * H * D + (long)h * D;
    const long rowStride = (long)KV * D;
    const float scale = (float)(1.0 / sqrt((double)D));

    float lmax = -1e30f;
    for (int j = threadIdx.x; j < t; j += blockDim.x) {
        const bf16* kr = kc + ((long)j * B + b) * rowStride + (long)kvh * D;
        float acc = 0.f;
        for (int d = 0; d < D; ++d) acc += __bfloat162float(qr[d]) * __bfloat162float(kr[d]);
        s[j] = acc * scale;
        lmax = fmaxf(lmax, s[j]);
    }
    const float m = decode_block_reduce<true>(lmax, red);
    float lsum = 0.f;
    for (int j = threadIdx.x; j < t; j += blockDim.x) {
        const float e = expf(s[j] - m);
        s[j] = e;
        lsum += e;
    }
    const float sum = decode_block_reduce<false>(lsum, red);  // its barriers also publish s
    const float inv = 1.f / sum;
    bf16* orow = out + (long)b * H * D + (long)h * D;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float acc = 0.f;
        for (int j = 0; j < t; ++j) acc += s[j] * __bfloat162float(vc[((long)j * B + b) * rowStride + (long)kvh * D + d]);
        orow[d] = __float2bfloat16_rn(acc * inv);
    }
}
