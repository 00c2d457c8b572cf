// reduce.cu: global gradient norm (sum of squares) and the clip factor.
//
// sum_squares(float* partial, const float* x, long n)
// sum_squares_bf16(float* partial, const bf16* x, long n)
//   partial[blockIdx.x] = sum of x[i]^2 over the block's grid-stride share of
//   [0, n) (thread t of block b takes i = b*blockDim + t + k*gridDim*blockDim,
//   k = 0, 1, ...), accumulated in fp64 per thread, combined across the block
//   by warp butterflies and a fixed combination of warp sums, rounded to fp32
//   once. Overwrites partial[0 .. gridDim.x).
//   Launch: block 256 (any multiple of 32 up to 1024), grid G fixed by the host
//   independent of the GPU (e.g. G = 256; G = min(256, ceil_div(n, 256)) is fine
//   too since it depends only on n). Scratch: `partial` of G floats. Static
//   shared memory 256 bytes.
//
// sum_squares_finish(float* acc, const float* partial, int nparts)
//   acc[0] += float(sum_{p < nparts} partial[p]); the sum is taken in fp64:
//   thread t adds partial[t], partial[t+blockDim], ... in increasing order, then
//   a fixed block reduction. Launch: grid 1, block 256 (any multiple of 32 up
//   to 1024). Static shared memory 256 bytes.
//   For SumSquares over several tensors, run sum_squares + sum_squares_finish
//   per tensor (acc accumulates), or give each tensor its own slice of the
//   partial buffer and finish once over all slices.
//
// clip_scale(float* clip, const float* sumsq, float max_norm)
//   clip[0] = max_norm <= 0 ? 1 : min(1, max_norm / (sqrt(sumsq[0]) + 1e-6)),
//   computed in fp64 (as the CPU backend) and rounded to fp32.
//   Launch: grid 1, block 1 (extra threads do nothing).
//
// Determinism: fixed assignment of elements to threads for a fixed launch
// configuration, fixed reduction trees, no atomics.
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void sum_squares_impl(float* partial, const T* x, long n) {
    __shared__ double red[32];
    double acc = 0.0;
    for (long i = gtid(); i < n; i += gstride()) {
        const double f = (double)load_f(x, i);
        acc += f * f;
    }
    acc = block_sum_d(acc, red);
    if (threadIdx.x == 0) partial[blockIdx.x] = (float)acc;
}

extern "C" __global__ void sum_squares(float* partial, const float* x, long n) {
    sum_squares_impl(partial, x, n);
}
extern "C" __global__ void sum_squares_bf16(float* partial, const bf16* x, long n) {
    sum_squares_impl(partial, x, n);
}

extern "C" __global__ void sum_squares_finish(float* acc, const float* partial, int nparts) {
    __shared__ double red[32];
    double s = 0.0;
    for (int p = threadIdx.x; p < nparts; p += blockDim.x) s += (double)partial[p];
    s = block_sum_d(s, red);
    if (threadIdx.x == 0) acc[0] = (float)((double)acc[0] + s);
}

extern "C" __global__ void clip_scale(float* clip, const float* sumsq, float max_norm) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double s = 1.0;
    if (max_norm > 0.0f) {
        s = (double)max_norm / (sqrt((double)sumsq[0]) + 1e-6);
        if (s > 1.0) s = 1.0;
    }
    clip[0] = (float)s;
}
