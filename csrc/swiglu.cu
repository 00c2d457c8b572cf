// swiglu.cu: SwiGLU activation of the LLaMA MLP, forward and backward.
//
// All tensors (N, F) bf16, flattened to n = N*F elements (64-bit count).
// fp32 arithmetic; s = sigmoid(g) = rcp_rn(1 + __expf(-g)): the hardware
// exp2 (2 ulp) and a correctly rounded reciprocal, since the accurate expf
// and an IEEE division made these kernels instruction-bound at ~40% of the
// memory bandwidth, for results that are rounded to bf16 (2^-9) anyway. For
// g < -88 the exponential overflows to inf and s becomes 0, the right limit.
//
// swiglu_fwd(bf16* out, const bf16* gate, const bf16* up, long n)
//   out[i] = (g * s) * u,  g = gate[i], u = up[i].
// swiglu_bwd(bf16* dgate, bf16* dup, const bf16* dout, const bf16* gate,
//            const bf16* up, long n)
//   dgate[i] = d * u * s * (1 + g * (1 - s)),  dup[i] = d * g * s  (overwrite),
//   d = dout[i]. dgate/dup may alias gate/up (in-place backward): every
//   element's three inputs are loaded into registers before its two outputs
//   are stored, and each element is owned by one thread.
//
// Launch (both): block 256, grid = min(ceil_div(n, 256*8), 16*SMs) (any grid
// >= 1: grid-stride). No shared memory. 16-byte vectors of 8 when every
// pointer is 16-byte aligned, elementwise otherwise (n need not be a multiple
// of anything).
//
// Determinism: elementwise, one thread per element.
#include "common.cuh"

__device__ __forceinline__ float sigmoidf_(float g) { return __frcp_rn(1.0f + __expf(-g)); }

extern "C" __global__ void swiglu_fwd(bf16* out, const bf16* gate, const bf16* up, long n) {
    const long tid = gtid(), stride = gstride();
    const bool vec = aligned16(out) && aligned16(gate) && aligned16(up);
    const long nvec = vec ? n / 8 : 0;
    for (long v = tid; v < nvec; v += stride) {
        float g[8], u[8], o[8];
        load8(gate, v * 8, g);
        load8(up, v * 8, u);
#pragma unroll
        for (int j = 0; j < 8; ++j) o[j] = (g[j] * sigmoidf_(g[j])) * u[j];
        store8(out, v * 8, o);
    }
    for (long i = nvec * 8 + tid; i < n; i += stride) {
        const float g = __bfloat162float(gate[i]), u = __bfloat162float(up[i]);
        out[i] = __float2bfloat16_rn((g * sigmoidf_(g)) * u);
    }
}

extern "C" __global__ void swiglu_bwd(bf16* dgate, bf16* dup, const bf16* dout, const bf16* gate,
                                      const bf16* up, long n) {
    const long tid = gtid(), stride = gstride();
    const bool vec = aligned16(dgate) && aligned16(dup) && aligned16(dout) && aligned16(gate) && aligned16(up);
    const long nvec = vec ? n / 8 : 0;
    for (long v = tid; v < nvec; v += stride) {
        float g[8], u[8], d[8], dg[8], du[8];
        load8(gate, v * 8, g);
        load8(up, v * 8, u);
        load8(dout, v * 8, d);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const float s = sigmoidf_(g[j]);
            dg[j] = d[j] * u[j] * s * (1.0f + g[j] * (1.0f - s));
            du[j] = d[j] * g[j] * s;
        }
        store8(dgate, v * 8, dg);
        store8(dup, v * 8, du);
    }
    for (long i = nvec * 8 + tid; i < n; i += stride) {
        const float g = __bfloat162float(gate[i]);
        const float u = __bfloat162float(up[i]);
        const float d = __bfloat162float(dout[i]);
        const float s = sigmoidf_(g);
        const float dg = d * u * s * (1.0f + g * (1.0f - s));
        const float du = d * g * s;
        dgate[i] = __float2bfloat16_rn(dg);
        dup[i] = __float2bfloat16_rn(du);
    }
}
