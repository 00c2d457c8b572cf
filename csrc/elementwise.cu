// elementwise.cu: precision conversions (the Backend's Copy between
// precisions) and the gpu.MapOp family (the Backend's Map).
//
// Math (i in [0, n), all arithmetic in fp32, bf16 rounded to nearest even on
// store with __float2bfloat16_rn):
//   convert_f32_to_bf16  dst[i] = bf16(src[i])
//   convert_bf16_to_f32  dst[i] = float(src[i])            (exact)
//   <op>_{bf16,f32}      x[i]   = op(x[i], alpha), in place, one pair per
//                        gpu.MapOp (internal/gpu/mapop.go), named after it:
//     scale              alpha * x[i]
// Every <op> kernel has the signature (T* x, float alpha, long n), T bf16 or
// float: the Go side binds the pair by the op's name and launches it with one
// shared launcher (TestEveryKernelHasALauncher and TestMapKernelSignatures
// check both without a GPU).
// Shapes: flat vectors of n elements (n is 64-bit). No alignment is required:
// when every pointer of a call is 16-byte aligned the bulk runs on 16-byte
// vectors of 8 elements and the tail (n % 8) element by element; otherwise
// everything runs element by element.
//
// Launch (every kernel here): block 256 threads (any multiple of 32 works),
// grid = min(ceil_div(n, 256*8), 16*SMs) (any grid >= 1 is correct: grid-
// stride loops). No shared memory. No scratch.
//
// Determinism: each element is computed by exactly one thread from its own
// inputs; results do not depend on the launch configuration.
#include "common.cuh"

// out = op(src) over n elements.
template <typename TO, typename TI, typename Op>
__device__ __forceinline__ void ew_unary(TO* out, const TI* src, long n, Op op) {
    const long tid = gtid(), stride = gstride();
    const bool vec = aligned16(out) && aligned16(src);
    const long nvec = vec ? n / 8 : 0;
    for (long v = tid; v < nvec; v += stride) {
        float fi[8], fo[8];
        load8(src, v * 8, fi);
#pragma unroll
        for (int j = 0; j < 8; ++j) fo[j] = op(fi[j]);
        store8(out, v * 8, fo);
    }
    for (long i = nvec * 8 + tid; i < n; i += stride) {
        store_f(out, i, op(load_f(src, i)));
    }
}

struct OpIdent {
    __device__ __forceinline__ float operator()(float x) const { return x; }
};

extern "C" __global__ void convert_f32_to_bf16(bf16* dst, const float* src, long n) {
    ew_unary(dst, src, n, OpIdent());
}
extern "C" __global__ void convert_bf16_to_f32(float* dst, const bf16* src, long n) {
    ew_unary(dst, src, n, OpIdent());
}

// ---- gpu.MapOp kernels: a functor of x given alpha, and its pair ----

struct OpScale {
    float alpha;
    __device__ __forceinline__ float operator()(float x) const { return alpha * x; }
};
extern "C" __global__ void scale_bf16(bf16* x, float alpha, long n) {
    ew_unary(x, (const bf16*)x, n, OpScale{alpha});
}
extern "C" __global__ void scale_f32(float* x, float alpha, long n) {
    ew_unary(x, (const float*)x, n, OpScale{alpha});
}
