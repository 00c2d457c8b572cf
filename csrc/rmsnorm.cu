// rmsnorm.cu: RMSNorm forward and backward.
//
// Shapes: x, out, dout, dx (N, C) bf16 row-major; w (C) bf16; rstd (N) fp32;
// dw (C) fp32. All arithmetic fp32 except the dw column sums (fp64).
//
// rmsnorm_fwd(bf16* out, float* rstd /*nullable*/, const bf16* x, const bf16* w,
//             int N, int C, float eps)
//   r[n] = 1 / sqrtf(sum_c x[n,c]^2 / C + eps)   (correctly rounded sqrtf and
//   division); out[n,c] = bf16((x[n,c] * r) * w[c]); rstd[n] = r if rstd != 0.
//   Launch: one warp per row: block 256 (8 rows), grid ceil_div(N, 8).
//   Any block that is a multiple of 32 works: rows per block = blockDim.x/32,
//   grid = ceil_div(N, blockDim.x/32). No shared memory.
//
// rmsnorm_bwd_dx(bf16* dx /*+=*/, const bf16* dout, const bf16* x, const bf16* w,
//                const float* rstd, int N, int C)
//   With d = dout, r = rstd[n]:  dot = sum_c d[c] w[c] x[c],  k = r^3 dot / C,
//   dx[n,c] = bf16(float(dx[n,c]) + (r d[c] w[c] - x[c] k))   (accumulates).
//   Launch: as rmsnorm_fwd (one warp per row).
//
// rmsnorm_bwd_dw_partial(float* partial, const bf16* dout, const bf16* x,
//                        const float* rstd, int N, int C)
//   Pass 1 of the weight gradient. With P = gridDim.y row parts of
//   R = ceil_div(N, P) rows each, partial[p*C + c] = sum over rows
//   [p*R, min(N, (p+1)*R)) of dout x rstd, in fp64 (lane (tx, ty) sums
//   its rows ty, ty+8, ... in increasing order, the 8 row lanes then
//   combined by a fixed tree in shared memory; overwrites partial). Launch: block 256, grid (ceil_div(C, 32), P),
//   scratch `partial` of P*C floats. P is chosen by the host and must depend
//   only on the problem size (e.g. P = min(64, ceil_div(N, 256))) so that the
//   result is reproducible.
// rmsnorm_bwd_dw_finish(float* dw /*+=*/, const float* partial, int P, int C)
//   dw[c] += float(sum_{p=0..P-1} partial[p*C + c]) (fp64, increasing p).
//   Launch: block 256, grid ceil_div(C, 256).
//
// Determinism: every output is produced by one thread or by a fixed-order
// tree; no atomics. Vectorized 16-byte loads are used when C % 8 == 0 and the
// row pointers are 16-byte aligned; other shapes take the scalar path (same
// math, different summation order inside a row, still deterministic).
#include "common.cuh"

extern "C" __global__ void rmsnorm_fwd(bf16* out, float* rstd, const bf16* x, const bf16* w,
                                       int N, int C, float eps) {
    const int lane = threadIdx.x & 31;
    const long n = (long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (n >= N) return;  // warp-uniform; no block barriers below
    const bf16* xr = x + n * C;
    bf16* orow = out + n * C;
    const bool vec = ((C & 7) == 0) && aligned16(xr) && aligned16(orow) && aligned16(w);
    float ss = 0.0f;
    if (vec) {
        for (int c = lane * 8; c < C; c += 256) {
            float f[8];
            load8(xr, c, f);
#pragma unroll
            for (int j = 0; j < 8; ++j) ss += f[j] * f[j];
        }
    } else {
        for (int c = lane; c < C; c += 32) {
            const float f = __bfloat162float(xr[c]);
            ss += f * f;
        }
    }
    ss = warp_sum(ss);
    const float r = 1.0f / sqrtf(ss / (float)C + eps);
    if (vec) {
        for (int c = lane * 8; c < C; c += 256) {
            float f[8], g[8];
            load8(xr, c, f);
            load8(w, c, g);
#pragma unroll
            for (int j = 0; j < 8; ++j) f[j] = (f[j] * r) * g[j];
            store8(orow, c, f);
        }
    } else {
        for (int c = lane; c < C; c += 32) {
            orow[c] = __float2bfloat16_rn((__bfloat162float(xr[c]) * r) * __bfloat162float(w[c]));
        }
    }
    if (rstd != nullptr && lane == 0) rstd[n] = r;
}

extern "C" __global__ void rmsnorm_bwd_dx(bf16* dx, const bf16* dout, const bf16* x, const bf16* w,
                                          const float* rstd, int N, int C) {
    const int lane = threadIdx.x & 31;
    const long n = (long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (n >= N) return;  // warp-uniform
    const bf16* xr = x + n * C;
    const bf16* dr = dout + n * C;
    bf16* gr = dx + n * C;
    const bool vec = ((C & 7) == 0) && aligned16(xr) && aligned16(dr) && aligned16(gr) && aligned16(w);
    const float r = rstd[n];
    float dot = 0.0f;
    if (vec) {
        for (int c = lane * 8; c < C; c += 256) {
            float fx[8], fd[8], fw[8];
            load8(xr, c, fx);
            load8(dr, c, fd);
            load8(w, c, fw);
#pragma unroll
            for (int j = 0; j < 8; ++j) dot += fd[j] * fw[j] * fx[j];
        }
    } else {
        for (int c = lane; c < C; c += 32) {
            dot += __bfloat162float(dr[c]) * __bfloat162float(w[c]) * __bfloat162float(xr[c]);
        }
    }
    dot = warp_sum(dot);
    const float k = r * r * r * dot / (float)C;
    if (vec) {
        for (int c = lane * 8; c < C; c += 256) {
            float fx[8], fd[8], fw[8], fg[8];
            load8(xr, c, fx);
            load8(dr, c, fd);
            load8(w, c, fw);
            load8(gr, c, fg);
#pragma unroll
            for (int j = 0; j < 8; ++j) fg[j] = fg[j] + (r * fd[j] * fw[j] - fx[j] * k);
            store8(gr, c, fg);
        }
    } else {
        for (int c = lane; c < C; c += 32) {
            const float t = r * __bfloat162float(dr[c]) * __bfloat162float(w[c]) - __bfloat162float(xr[c]) * k;
            gr[c] = __float2bfloat16_rn(__bfloat162float(gr[c]) + t);
        }
    }
}

// Column sums of dout*x*rstd over rows [lo, hi) for the block's 32 columns.
// Requires blockDim.x == 256. Returns the total in threads with ty == 0
// (threadIdx.x < 32); other threads return 0. Contains __syncthreads().
__device__ __forceinline__ double dw_colsum(const bf16* dout, const bf16* x, const float* rstd,
                                            int lo, int hi, int C, int c) {
    __shared__ double red[8][32];
    const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
    double acc = 0.0;
    if (c < C) {
        for (int n = lo + ty; n < hi; n += 8) {
            const long o = (long)n * C + c;
            acc += (double)(__bfloat162float(dout[o]) * __bfloat162float(x[o])) * (double)rstd[n];
        }
    }
    red[ty][tx] = acc;
    __syncthreads();
    if (ty < 4) red[ty][tx] += red[ty + 4][tx];
    __syncthreads();
    if (ty < 2) red[ty][tx] += red[ty + 2][tx];
    __syncthreads();
    double total = 0.0;
    if (ty == 0) total = red[0][tx] + red[1][tx];
    return total;
}

extern "C" __global__ void rmsnorm_bwd_dw_partial(float* partial, const bf16* dout, const bf16* x,
                                                  const float* rstd, int N, int C) {
    const int c = blockIdx.x * 32 + (threadIdx.x & 31);
    const int P = gridDim.y, p = blockIdx.y;
    const int R = (N + P - 1) / P;
    const int lo = min(N, p * R), hi = min(N, lo + R);
    const double total = dw_colsum(dout, x, rstd, lo, hi, C, c);
    if (threadIdx.x < 32 && c < C) partial[(long)p * C + c] = (float)total;
}

extern "C" __global__ void rmsnorm_bwd_dw_finish(float* dw, const float* partial, int P, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double acc = 0.0;
    for (int p = 0; p < P; ++p) acc += (double)partial[(long)p * C + c];
    dw[c] += (float)acc;
}
