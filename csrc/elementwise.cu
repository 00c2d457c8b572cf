// elementwise.cu: precision conversions and the simple vector ops of the
// Backend (Copy between precisions, Add, Axpy, Scale).
//
// Math (i in [0, n), all arithmetic in fp32, bf16 rounded to nearest even on
// store with __float2bfloat16_rn):
//   convert_f32_to_bf16  dst[i] = bf16(src[i])
//   convert_bf16_to_f32  dst[i] = float(src[i])            (exact)
//   add_{bf16,f32}       out[i] = a[i] + b[i]     out may alias a or b
//   axpy_{bf16,f32}      y[i]   = y[i] + alpha * x[i]
//   scale_{bf16,f32}     x[i]   = alpha * x[i]
// Mixed-precision extras (same math, y and x of different precisions):
//   axpy_f32_bf16(float* y, const bf16* x, float alpha, long n)   y Full, x Low
//   axpy_bf16_f32(bf16* y, const float* x, float alpha, long n)   y Low, x Full
//   add_f32_bf16(float* out, const float* a, const bf16* b, long n)
//
// Shapes: flat vectors of n elements (n is 64-bit). No alignment is required:
// when every pointer of a call is 16-byte aligned the bulk runs on 16-byte
// vectors of 8 elements and the tail (n % 8) element by element; otherwise
// everything runs element by element.
//
// Launch (every kernel here): block 256 threads (any multiple of 32 works),
// grid = min(ceil_div(n, 256*8), 132*16) (any grid >= 1 is correct: grid-
// stride loops). No shared memory. No scratch.
//
// Determinism: each element is computed by exactly one thread from its own
// inputs; results do not depend on the launch configuration.
#include "common.cuh"

// out = op(a, b) over n elements, vectorized when all three are aligned.
template <typename TO, typename TA, typename TB, typename Op>
__device__ __forceinline__ void ew_binary(TO* out, const TA* a, const TB* b, long n, Op op) {
    const long tid = gtid(), stride = gstride();
    const bool vec = aligned16(out) && aligned16(a) && aligned16(b);
    const long nvec = vec ? n / 8 : 0;
    for (long v = tid; v < nvec; v += stride) {
        float fa[8], fb[8], fo[8];
        load8(a, v * 8, fa);
        load8(b, v * 8, fb);
#pragma unroll
        for (int j = 0; j < 8; ++j) fo[j] = op(fa[j], fb[j]);
        store8(out, v * 8, fo);
    }
    for (long i = nvec * 8 + tid; i < n; i += stride) {
        store_f(out, i, op(load_f(a, i), load_f(b, i)));
    }
}

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
struct OpAdd {
    __device__ __forceinline__ float operator()(float x, float y) const { return x + y; }
};
struct OpAxpy {  // y + alpha * x, as op(y, x)
    float alpha;
    __device__ __forceinline__ float operator()(float y, float x) const { return y + alpha * x; }
};
struct OpScale {
    float alpha;
    __device__ __forceinline__ float operator()(float x) const { return alpha * x; }
};

extern "C" __global__ void convert_f32_to_bf16(bf16* dst, const float* src, long n) {
    ew_unary(dst, src, n, OpIdent());
}
extern "C" __global__ void convert_bf16_to_f32(float* dst, const bf16* src, long n) {
    ew_unary(dst, src, n, OpIdent());
}

extern "C" __global__ void add_bf16(bf16* out, const bf16* a, const bf16* b, long n) {
    ew_binary(out, a, b, n, OpAdd());
}
extern "C" __global__ void add_f32(float* out, const float* a, const float* b, long n) {
    ew_binary(out, a, b, n, OpAdd());
}
extern "C" __global__ void add_f32_bf16(float* out, const float* a, const bf16* b, long n) {
    ew_binary(out, a, b, n, OpAdd());
}

extern "C" __global__ void axpy_bf16(bf16* y, const bf16* x, float alpha, long n) {
    OpAxpy op; op.alpha = alpha;
    ew_binary(y, (const bf16*)y, x, n, op);
}
extern "C" __global__ void axpy_f32(float* y, const float* x, float alpha, long n) {
    OpAxpy op; op.alpha = alpha;
    ew_binary(y, (const float*)y, x, n, op);
}
extern "C" __global__ void axpy_f32_bf16(float* y, const bf16* x, float alpha, long n) {
    OpAxpy op; op.alpha = alpha;
    ew_binary(y, (const float*)y, x, n, op);
}
extern "C" __global__ void axpy_bf16_f32(bf16* y, const float* x, float alpha, long n) {
    OpAxpy op; op.alpha = alpha;
    ew_binary(y, (const bf16*)y, x, n, op);
}

extern "C" __global__ void scale_bf16(bf16* x, float alpha, long n) {
    OpScale op; op.alpha = alpha;
    ew_unary(x, (const bf16*)x, n, op);
}
extern "C" __global__ void scale_f32(float* x, float alpha, long n) {
    OpScale op; op.alpha = alpha;
    ew_unary(x, (const float*)x, n, op);
}
