// loss.cu: fused softmax cross-entropy on one chunk of logits, in place.
//
// cross_entropy(float* losses, bf16* logits, const int* targets, int n, int V,
//               int grad, float grad_scale)
//   logits (n, V) bf16 row-major (row offsets are 64-bit: n*V may exceed 2^31),
//   losses (n) fp32 (overwritten), targets (n) int32.
//   Per row i with y = targets[i]:
//     m   = max_j x_j;  S = sum_j expf(x_j - m);  lse = m + logf(S)   (fp32)
//     losses[i] = lse - x_y
//     if grad: logits[i, j] = bf16(grad_scale * (expf(x_j - lse) - [j == y]))
//   y < 0 (ignored position): losses[i] = 0 and, if grad, the row is zeroed.
//   y >= V is a caller bug (the CPU backend panics): losses[i] = NaN and, if
//   grad, the row gets the softmax without the one-hot term.
//   The max and the sum are taken in one pass with an online (rescaling)
//   log-sum-exp per thread, then combined across the block in a fixed order;
//   the gradient pass reads the row a second time. -inf logits are fine
//   (their exp is 0); the running max starts at a finite -1e30.
//
// Launch: one block per row: grid n, block 512 (any multiple of 32 up to 1024
// works; the reduction order, hence the last bits, depends on it, so keep it
// fixed). Static shared memory 256 bytes. 16-byte vector loads when V % 8 == 0
// and logits is 16-byte aligned, scalar otherwise.
//
// Determinism: per row a fixed per-thread order (thread t reads elements t,
// t+blockDim, ... or vectors of 8 likewise), then warp butterflies whose
// lane-0 result is broadcast, then a fixed combination of warp results.
#include "common.cuh"

// Online log-sum-exp state: running max m and sum s of exp(x - m).
struct Lse {
    float m, s;
};

__device__ __forceinline__ void lse_add(Lse& a, float x) {
    if (x > a.m) {
        a.s = a.s * expf(a.m - x) + 1.0f;
        a.m = x;
    } else {
        a.s += expf(x - a.m);
    }
}

__device__ __forceinline__ Lse lse_merge(Lse a, Lse b) {
    const float m = fmaxf(a.m, b.m);
    Lse r;
    r.m = m;
    r.s = a.s * expf(a.m - m) + b.s * expf(b.m - m);
    return r;
}

// Warp-wide merge; every lane returns lane 0's result.
__device__ __forceinline__ Lse lse_warp(Lse a) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        Lse b;
        b.m = __shfl_xor_sync(0xffffffffu, a.m, o);
        b.s = __shfl_xor_sync(0xffffffffu, a.s, o);
        a = lse_merge(a, b);
    }
    a.m = __shfl_sync(0xffffffffu, a.m, 0);
    a.s = __shfl_sync(0xffffffffu, a.s, 0);
    return a;
}

extern "C" __global__ void cross_entropy(float* losses, bf16* logits, const int* targets, int n, int V,
                                         int grad, float grad_scale) {
    __shared__ float sm[32], ss[32];
    const int row = blockIdx.x;
    if (row >= n) return;  // block-uniform
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int nwarps = blockDim.x >> 5;
    bf16* x = logits + (long)row * V;
    const int y = targets[row];

    if (y < 0) {  // block-uniform branch (y is the same for the whole block)
        if (threadIdx.x == 0) losses[row] = 0.0f;
        if (grad) {
            for (int j = threadIdx.x; j < V; j += blockDim.x) x[j] = __float2bfloat16_rn(0.0f);
        }
        return;
    }

    const bool vec = ((V & 7) == 0) && aligned16(x);
    Lse a;
    a.m = NEG_BIG;
    a.s = 0.0f;
    if (vec) {
        for (int j = threadIdx.x * 8; j < V; j += blockDim.x * 8) {
            float f[8];
            load8(x, j, f);
#pragma unroll
            for (int k = 0; k < 8; ++k) lse_add(a, f[k]);
        }
    } else {
        for (int j = threadIdx.x; j < V; j += blockDim.x) lse_add(a, __bfloat162float(x[j]));
    }
    a = lse_warp(a);
    if (lane == 0) {
        sm[warp] = a.m;
        ss[warp] = a.s;
    }
    __syncthreads();
    // Every thread combines the warp results in the same fixed order.
    Lse t;
    t.m = sm[0];
    t.s = ss[0];
    for (int w = 1; w < nwarps; ++w) {
        Lse b;
        b.m = sm[w];
        b.s = ss[w];
        t = lse_merge(t, b);
    }
    const float lse = t.m + logf(t.s);

    if (threadIdx.x == 0) {
        losses[row] = (y < V) ? lse - __bfloat162float(x[y]) : __int_as_float(0x7fffffff);
    }
    if (!grad) return;
    // Thread 0's read of x[y] above must happen before any thread rewrites
    // the row below.
    __syncthreads();
    if (vec) {
        for (int j = threadIdx.x * 8; j < V; j += blockDim.x * 8) {
            float f[8];
            load8(x, j, f);
#pragma unroll
            for (int k = 0; k < 8; ++k) {
                float p = expf(f[k] - lse);
                if (j + k == y) p -= 1.0f;
                f[k] = grad_scale * p;
            }
            store8(x, j, f);
        }
    } else {
        for (int j = threadIdx.x; j < V; j += blockDim.x) {
            float p = expf(__bfloat162float(x[j]) - lse);
            if (j == y) p -= 1.0f;
            x[j] = __float2bfloat16_rn(grad_scale * p);
        }
    }
}
