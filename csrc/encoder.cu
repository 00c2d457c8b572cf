// encoder.cu: token embedding, forward and backward.
//
// embedding_fwd(bf16* out, const bf16* wte, const int* tokens, int N, int C)
//   out[n, c] = wte[tokens[n], c];  out (N, C) bf16, wte (V, C) bf16 row-major,
//   tokens (N) int32. Tokens must lie in [0, V) (V is not passed; the CPU
//   backend checks this, the kernel does not).
//   Launch: block 256, grid = min(ceil_div(N*C, 256*8), 16*SMs) (any grid >= 1:
//   grid-stride). No shared memory. Copies 16-byte vectors when C % 8 == 0 and
//   out, wte are 16-byte aligned, else element by element.
//
// embedding_bwd(float* dwte, const bf16* dout, const int* tokens, int N, int C)
//   dwte[tokens[n], c] += dout[n, c] for n = 0..N-1;  dwte (V, C) fp32,
//   dout (N, C) bf16. Accumulates; rows of dwte whose token does not occur are
//   untouched.
//   Scheme ("leader rows", deterministic, no atomics, no scratch): block n
//   looks at token v = tokens[n]. If v occurs at an earlier position m < n the
//   block exits. Otherwise (n is the first occurrence of v) the block owns row
//   v of dwte: for each column c it computes
//       acc = dwte[v, c];  for m = n..N-1 in increasing order with
//       tokens[m] == v: acc += float(dout[m, c]);  dwte[v, c] = acc
//   which is the CPU backend's sequential float32 order, so the result is
//   bit-identical to it. The occurrences are listed in shared memory (up to
//   2048 of them; a token seen more often takes a slower ballot walk with the
//   same order and result).
//   Launch: grid N blocks (one per token position), block 256 threads (any
//   multiple of 32 up to 1024). Static shared memory about 8.4 KiB. Tokens must
//   lie in [0, V).
#include "common.cuh"

extern "C" __global__ void embedding_fwd(bf16* out, const bf16* wte, const int* tokens, int N, int C) {
    const long tid = gtid(), stride = gstride();
    const long total = (long)N * C;
    if ((C & 7) == 0 && aligned16(out) && aligned16(wte)) {
        const long cv = C / 8;  // vectors per row
        const long nvec = (long)N * cv;
        const uint4* w4 = reinterpret_cast<const uint4*>(wte);
        uint4* o4 = reinterpret_cast<uint4*>(out);
        for (long v = tid; v < nvec; v += stride) {
            const long n = v / cv, j = v - n * cv;
            const long tok = tokens[n];
            o4[v] = w4[tok * cv + j];
        }
    } else {
        for (long e = tid; e < total; e += stride) {
            const long n = e / C, c = e - n * C;
            const long tok = tokens[n];
            out[e] = wte[tok * C + c];
        }
    }
}

#define EMB_MAXL 2048  // occurrences of one token listed in shared memory

extern "C" __global__ void embedding_bwd(float* dwte, const bf16* dout, const int* tokens, int N, int C) {
    __shared__ int pos[EMB_MAXL];
    __shared__ int wsum[32];
    __shared__ unsigned int ballots[32];
    const int n = blockIdx.x;
    if (n >= N) return;  // block-uniform
    const int v = tokens[n];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int nthreads = blockDim.x, nwarps = nthreads >> 5;

    // 1) Is there an earlier occurrence of v? Then another block owns row v.
    int found = 0;
    for (int m = tid; m < n; m += 4 * nthreads) {
        const int m1 = m + nthreads, m2 = m + 2 * nthreads, m3 = m + 3 * nthreads;
        found |= (tokens[m] == v);
        found |= (m1 < n) && (tokens[m1] == v);
        found |= (m2 < n) && (tokens[m2] == v);
        found |= (m3 < n) && (tokens[m3] == v);
        if (found) break;
    }
    if (__syncthreads_or(found)) return;  // block-uniform exit

    // 2) Leader: list the occurrences m >= n in increasing order. Thread t
    // scans the contiguous segment [n + t*S, n + (t+1)*S); an exclusive block
    // scan of the per-thread counts gives each its output offset.
    const int S = (N - n + nthreads - 1) / nthreads;
    const int lo = min(N, n + tid * S), hi = min(N, lo + S);
    int cnt = 0;
    for (int m = lo; m < hi; ++m) cnt += (tokens[m] == v);
    int incl = cnt;  // inclusive warp scan
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const int y = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += y;
    }
    if (lane == 31) wsum[warp] = incl;
    __syncthreads();
    int before = 0, total = 0;
    for (int w = 0; w < nwarps; ++w) {
        const int x = wsum[w];
        if (w < warp) before += x;
        total += x;
    }
    float* dst = dwte + (long)v * C;
    if (total <= EMB_MAXL) {  // block-uniform
        int off = before + incl - cnt;
        for (int m = lo; m < hi && off < before + incl; ++m) {
            if (tokens[m] == v) pos[off++] = m;
        }
        __syncthreads();
        for (int c = tid; c < C; c += nthreads) {
            float acc = dst[c];
#pragma unroll 8
            for (int i = 0; i < total; ++i) acc += __bfloat162float(dout[(long)pos[i] * C + c]);
            dst[c] = acc;
        }
        return;
    }

    // Very frequent token: walk the positions 32*nwarps at a time with warp
    // ballots, one group of blockDim.x columns at a time.
    for (int c0 = 0; c0 < C; c0 += nthreads) {
        const int c = c0 + tid;
        float acc = (c < C) ? dst[c] : 0.0f;
        for (int base = n; base < N; base += nthreads) {
            const int m = base + tid;
            const bool match = (m < N) && (tokens[m] == v);
            const unsigned int bal = __ballot_sync(0xffffffffu, match);
            if (lane == 0) ballots[warp] = bal;
            __syncthreads();
            if (c < C) {
                for (int w = 0; w < nwarps; ++w) {
                    unsigned int b = ballots[w];
                    while (b) {
                        const int bit = __ffs(b) - 1;
                        b &= b - 1;
                        const long mm = (long)base + w * 32 + bit;
                        acc += __bfloat162float(dout[mm * C + c]);
                    }
                }
            }
            __syncthreads();  // ballots is rewritten by the next chunk
        }
        if (c < C) dst[c] = acc;
    }
}
