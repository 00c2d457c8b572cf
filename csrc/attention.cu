// attention.cu: causal grouped-query attention, flash-attention style: no
// T x T matrix ever lives in global memory, softmax statistics are kept per
// query row (log-sum-exp), the backward recomputes probabilities from them.
//
// Shapes (row n = b*T + t, all row-major):
//   q, out, dout, dq : (N, H*D)  bf16     query head h at columns [h*D, h*D+D)
//   k, v, dk, dv     : (N, KV*D) bf16     kv head j at columns [j*D, j*D+D)
//   lse, delta       : (B*H*T)   fp32     index (b*H + h)*T + t
// Query head h reads kv head h / (H/KV) (H % KV == 0). scale = 1/sqrt(D)
// (fp64 then rounded to fp32). Key j is visible to query t iff j <= t.
//
// Math. Forward, per (b, h, t):
//   s_j = scale * q_t . k_j (j <= t),  lse_t = log sum_j exp(s_j),
//   out_t = sum_j exp(s_j - lse_t) v_j.
// Backward (FlashAttention-2):
//   Delta_t = dout_t . out_t                           (attention_bwd_delta)
//   p_tj = exp(s_tj - lse_t),  ds_tj = scale * p_tj (dout_t . v_j - Delta_t)
//   dq_t = sum_j ds_tj k_j,  dk_j = sum_{h in group, t >= j} ds_tj q_t,
//   dv_j = sum_{h in group, t >= j} p_tj dout_t.
// Internally scores live in the log2 domain: x = s * log2(e), exp(.) = exp2f(.),
// lse = ln2 * (max_x + log2(sum 2^(x - max_x))). Accumulation is fp32
// throughout; the tensor-core kernels round the probabilities P and dS to bf16
// before their products with V, dout, K, Q (as FlashAttention does).
//
// ---------------------------------------------------------------------------
// Entry points (all pointers are device pointers; B, T, H, KV, D are int32)
// ---------------------------------------------------------------------------
// attention_fwd_d64_w<W>s<S>m<M> / attention_fwd_d64_v1 /
// attention_fwd_d128 / attention_fwd (generic)
//   (bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
//    int B, int T, int H, int KV, int D)
//   Overwrites out and lse. Every variant gives each warp 16 query rows.
//   Launch: _d64_w<W>s<S>m<M> (pipelined; W, S, M in {8,2,2} {8,3,2} {4,2,4}
//     {4,2,5} {4,3,4} {4,4,3}): block 32*W threads, grid
//     B * H * ceil_div(T, 16*W) blocks (1-D), dynamic shared memory exactly
//     S * 18432 B (above 48 KiB the host opts in with cuFuncSetAttribute);
//     the others: block 128 (4 warps), grid B * H * ceil_div(T, 64), no
//     dynamic shared memory.
//   Static shared memory: d64_v1 18432 B, d128 34816 B, generic and the
//   pipelined d64 none.
//   The d64 kernels and _d128 use bf16 tensor cores (mma.sync m16n8k16) and
//   require D == 64 / 128 (they return without writing anything otherwise).
//   The pipelined d64 (cp.async) also require 16-byte aligned q, k, v, out
//   and return without writing when given less dynamic shared memory than
//   stated; _d64_v1 is the same math without the pipeline and with any
//   alignment. attention_fwd (generic, CUDA cores, slow) takes any D <= 256.
//
// attention_bwd_delta(float* delta, const bf16* dout, const bf16* out,
//                     int B, int T, int H, int D, int rpw)
//   delta[(b*H + h)*T + t] = sum_d dout[n, h*D + d] * out[n, h*D + d] (fp32),
//   n = b*T + t. Any D with rpw = 1 (one warp per row); rpw = 256 / D rows
//   per warp when D is a multiple of 8 dividing 256 and dout, out are 16-byte
//   aligned. Launch: block 256, grid ceil_div(B*H*T, 8 * rpw). No shared
//   memory.
//
// attention_bwd_d64_w<W>s<S>m<M> / attention_bwd_d64_v1 /
// attention_bwd_d128 / attention_bwd (generic)
//   (bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* q,
//    const bf16* k, const bf16* v, const bf16* out, const float* lse,
//    float* scratch, int B, int T, int H, int KV, int D)
//   Overwrites dq, dk, dv. `scratch` must hold the B*H*T floats written by
//   attention_bwd_delta(scratch, dout, out, ...) launched just before on the
//   same stream; it is only read here (`out` is not read by these kernels).
//   Launch: block 32*W threads for the pipelined d64 (W, S, M, Q in
//     {4,2,4,32} {4,2,3,32} {4,3,4,32} {4,3,3,32} {8,2,2,32} {8,3,2,32}
//     {4,2,3,64} {4,3,3,64}), 128 (W = 4) for the others; 1-D grid of
//     B*KV*nb + B*H*nb blocks, nb = ceil_div(T, 16*W).
//   Blocks [0, B*KV*nb) compute dk, dv: block (b, kv head, 16W-key block)
//   loops over the H/KV query heads of its kv head and over all query tiles
//   at or after its keys, accumulating dk, dv in fp32 registers, and writes
//   them once. Blocks [B*KV*nb, end) compute dq: block (b, h, 16W-query
//   block) loops over the key tiles at or before its queries. No atomics,
//   fixed loop order: deterministic (per variant). The pipelined d64
//   (cp.async, 16-byte aligned dq, dk, dv, dout, q, k, v required) order each
//   role's blocks heaviest first; the mapping of blocks to tiles differs from
//   the others, the results do not.
//   Shared memory: the pipelined d64 take dynamic shared memory only, exactly
//   max(2*(2*16W*72 + S*2Q*72) + S*8Q, 2*max(S*9216, (S-1)*9216 + 32W*72))
//   bytes (w4s2q32 37376, w4s3q32 55296, w8s2q32 55808, w8s3q32 73728,
//   w4s2q64 56320, w4s3q64 75264; the host opts in above 48 KiB) and return
//   without writing when given less. Static: d64_v1 27904 B, d128 43648 B,
//   generic none.
//   Total scratch for a backward pass: B*H*T floats (delta).
//
// Requirements and edge cases: T, B, H, KV >= 1, any T (partial tiles are
// zero-filled and masked), H % KV == 0. Except for the pipelined _d64
// kernels, no alignment requirement: tiles are copied with 16-byte loads when
// the tensor's base is 16-byte aligned, 2-byte loads otherwise. Masked scores
// are a finite -1e30 (or p is set to 0 explicitly), so exp never sees
// inf - inf; every processed query row has at least one visible key (key 0),
// so no row divides by zero.
#include "common.cuh"

// Compile-time tuning knobs (the host passes none; the defaults were chosen by
// measurement on an H200, B=64 T=256 H=12 D=64 and B=32 T=256 H=16 D=128):
// minimum resident blocks per SM asked of the register allocator (a few tens
// of bytes spill, still faster than fewer resident blocks), and the query-tile
// height of the d64 dk/dv role. Measured there: fwd d64 (now _v1) 0.15 ms,
// bwd d64 (delta + main) 0.42 ms; fwd d128 0.22 ms, bwd d128 0.57 ms.
// The pipelined d64 kernels state theirs per variant (see the entry points).
#ifndef ATTN_MINB_FWD64
#define ATTN_MINB_FWD64 5
#endif
#ifndef ATTN_MINB_FWD128
#define ATTN_MINB_FWD128 3
#endif
#ifndef ATTN_MINB_BWD64
#define ATTN_MINB_BWD64 4
#endif
#ifndef ATTN_MINB_BWD128
#define ATTN_MINB_BWD128 3
#endif
#ifndef ATTN_D64_BQ
#define ATTN_D64_BQ 32
#endif

// ---------------------------------------------------------------------------
// Tensor-core helpers (mma.sync.m16n8k16, bf16 in, fp32 accumulate).
// Fragment layout (PTX ISA), lane = 4*g + tg:
//   A 16x16 row-major: a0 = (g, 2tg..2tg+1), a1 = (g+8, 2tg..), a2 = (g, 2tg+8..),
//                      a3 = (g+8, 2tg+8..)
//   B 16x8  (k, n):    b0 = (k = 2tg..2tg+1, n = g), b1 = (k = 2tg+8.., n = g)
//   C 16x8 fp32:       c0,c1 = (g, 2tg..2tg+1), c2,c3 = (g+8, 2tg..2tg+1)
// In each 32-bit register the lower column / k index sits in the low half.
// ---------------------------------------------------------------------------

__device__ __forceinline__ void mma16816(float c[4], const unsigned int a[4], const unsigned int b[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// ldmatrix: four 8x8 bf16 matrices from shared memory. Lane l supplies the
// address of row (l & 7) of matrix (l >> 3) (16-byte aligned rows); register i
// receives matrix i in the mma fragment layout: (row g, cols 2tg..2tg+1), or
// with .trans (rows 2tg..2tg+1, col g).
__device__ __forceinline__ unsigned int smem_addr(const void* p) {
    return (unsigned int)__cvta_generic_to_shared(p);
}
__device__ __forceinline__ void ldsm_x4(unsigned int r[4], const unsigned short* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
}
__device__ __forceinline__ void ldsm_x4_t(unsigned int r[4], const unsigned short* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
}
// A fragment (16 x 16) of a row-major shared tile s[row][col] (row stride SR
// halves): rows r0..r0+15, cols c0..c0+15.
template <int SR>
__device__ __forceinline__ void lds_a(unsigned int a[4], const unsigned short* s, int r0, int c0) {
    const int l = threadIdx.x & 31, mat = l >> 3, rr = l & 7;
    ldsm_x4(a, s + (r0 + rr + (mat & 1) * 8) * SR + c0 + (mat >> 1) * 8);
}
// B fragments of two n-tiles (n0..n0+7 and n0+8..n0+15), k = k0..k0+15, from
// a shared tile stored [n][k] (e.g. K[key][d] for S = Q K^T):
// b[0..1] = n-tile n0, b[2..3] = n-tile n0+8.
template <int SR>
__device__ __forceinline__ void lds_b_nk(unsigned int b[4], const unsigned short* s, int n0, int k0) {
    const int l = threadIdx.x & 31, mat = l >> 3, rr = l & 7;
    ldsm_x4(b, s + (n0 + rr + (mat >> 1) * 8) * SR + k0 + (mat & 1) * 8);
}
// Same from a shared tile stored [k][n] (e.g. V[key][d] for O = P V).
template <int SR>
__device__ __forceinline__ void lds_b_kn(unsigned int b[4], const unsigned short* s, int k0, int n0) {
    const int l = threadIdx.x & 31, mat = l >> 3, rr = l & 7;
    ldsm_x4_t(b, s + (k0 + rr + (mat & 1) * 8) * SR + n0 + (mat >> 1) * 8);
}

// Convert two accumulator n-tiles (16 x 8 each, fp32) into one A fragment
// (16 x 16 bf16): columns of tile t0 are k 0..7, of tile t1 k 8..15.
__device__ __forceinline__ void acc_to_a(unsigned int a[4], const float t0[4], const float t1[4]) {
    a[0] = pack_float2(t0[0], t0[1]);
    a[1] = pack_float2(t0[2], t0[3]);
    a[2] = pack_float2(t1[0], t1[1]);
    a[3] = pack_float2(t1[2], t1[3]);
}

// Scores of one warp's 16 rows against 8*NK keys: s += Q K^T with Q in
// registers (qa) and K[key][d] in shared memory.
template <int D, int NK>
__device__ __forceinline__ void warp_qkt(float s[NK][4], const unsigned int qa[D / 16][4], const unsigned short* sK) {
    constexpr int SR = D + 8;
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
#pragma unroll
        for (int nt = 0; nt < NK; nt += 2) {
            unsigned int bb[4];
            lds_b_nk<SR>(bb, sK, nt * 8, ks * 16);
            mma16816(s[nt], qa[ks], bb);
            mma16816(s[nt + 1], qa[ks], bb + 2);
        }
    }
}

// acc (16 x D) += A (16 x 8*NK, fp32 accumulators rounded to bf16) times
// M[k][d] (8*NK rows of shared memory starting at row k0).
template <int D, int NK>
__device__ __forceinline__ void warp_acc_mul(float acc[D / 8][4], const float a[NK][4], const unsigned short* sM) {
    constexpr int SR = D + 8;
#pragma unroll
    for (int kk = 0; kk < NK / 2; ++kk) {
        unsigned int fa[4];
        acc_to_a(fa, a[2 * kk], a[2 * kk + 1]);
#pragma unroll
        for (int nd = 0; nd < D / 8; nd += 2) {
            unsigned int bb[4];
            lds_b_kn<SR>(bb, sM, kk * 16, nd * 8);
            mma16816(acc[nd], fa, bb);
            mma16816(acc[nd + 1], fa, bb + 2);
        }
    }
}

// Transposed scores and dP of one warp's 16 keys (rows wr..wr+15 of sK and
// sV) against 8*NQ queries: st += K Q^T, dpt += V dO^T.
template <int D, int NQ>
__device__ __forceinline__ void warp_kqt(float st[NQ][4], float dpt[NQ][4], const unsigned short* sK,
                                         const unsigned short* sV, int wr, const unsigned short* sQ,
                                         const unsigned short* sO) {
    constexpr int SR = D + 8;
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
        unsigned int ak[4], av[4];
        lds_a<SR>(ak, sK, wr, ks * 16);
        lds_a<SR>(av, sV, wr, ks * 16);
#pragma unroll
        for (int nt = 0; nt < NQ; nt += 2) {
            unsigned int bq[4], bo[4];
            lds_b_nk<SR>(bq, sQ, nt * 8, ks * 16);
            mma16816(st[nt], ak, bq);
            mma16816(st[nt + 1], ak, bq + 2);
            lds_b_nk<SR>(bo, sO, nt * 8, ks * 16);
            mma16816(dpt[nt], av, bo);
            mma16816(dpt[nt + 1], av, bo + 2);
        }
    }
}

// Online softmax bookkeeping of a warp's two rows per thread (g and g + 8):
// the running sums and the output accumulator scale by alpha when the row
// maximum grows, then the tile's partial sums add in.
template <int ND>
__device__ __forceinline__ void online_rescale(float o[ND][4], float lrow[2], const float alpha[2],
                                               const float psum[2]) {
#pragma unroll
    for (int i = 0; i < 2; ++i) lrow[i] = lrow[i] * alpha[i] + psum[i];
#pragma unroll
    for (int nd = 0; nd < ND; ++nd) {
        o[nd][0] *= alpha[0];
        o[nd][1] *= alpha[0];
        o[nd][2] *= alpha[1];
        o[nd][3] *= alpha[1];
    }
}

// Full row sums over the quad that shares the rows, and their inverses (0
// for an empty row).
__device__ __forceinline__ void quad_row_sums(float lrow[2], float inv[2]) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        lrow[i] += __shfl_xor_sync(0xffffffffu, lrow[i], 1);
        lrow[i] += __shfl_xor_sync(0xffffffffu, lrow[i], 2);
        inv[i] = lrow[i] > 0.0f ? 1.0f / lrow[i] : 0.0f;
    }
}

template <int N>
__device__ __forceinline__ void zero_acc(float a[N][4]) {
#pragma unroll
    for (int i = 0; i < N; ++i) a[i][0] = a[i][1] = a[i][2] = a[i][3] = 0.0f;
}

// Block-cooperative copy of a tile of `rows` rows x D bf16 from global memory
// (row stride gs elements, first row at g) into shared memory (row stride
// D + 8 halves). Rows >= valid are zero-filled (and not read).
template <int D>
__device__ __forceinline__ void load_tile(unsigned short* s, const bf16* g, long gs, int rows, int valid) {
    constexpr int SR = D + 8;
    const unsigned short* gp = reinterpret_cast<const unsigned short*>(g);
    if ((D % 8) == 0 && aligned16(g) && (gs % 8) == 0) {
        constexpr int VPR = D / 8;
        for (int idx = threadIdx.x; idx < rows * VPR; idx += blockDim.x) {
            const int r = idx / VPR, c = (idx - r * VPR) * 8;
            uint4 val = make_uint4(0u, 0u, 0u, 0u);
            if (r < valid) val = *reinterpret_cast<const uint4*>(gp + (long)r * gs + c);
            *reinterpret_cast<uint4*>(s + r * SR + c) = val;
        }
    } else {
        for (int idx = threadIdx.x; idx < rows * D; idx += blockDim.x) {
            const int r = idx / D, c = idx - r * D;
            s[r * SR + c] = (r < valid) ? gp[(long)r * gs + c] : (unsigned short)0;
        }
    }
}

__device__ __forceinline__ float attn_scale(int D) { return (float)(1.0 / sqrt((double)D)); }

// ---------------------------------------------------------------------------
// Forward, tensor cores. Block: 64 queries of one (b, h), 4 warps x 16 rows.
// Key tiles of 64, K and V staged in shared memory; Q fragments in registers.
// ---------------------------------------------------------------------------
template <int D>
__device__ __forceinline__ void attn_fwd_mma(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                                             int B, int T, int H, int KV) {
    constexpr int BQ = 64, BK = 64, SR = D + 8, KS = D / 16, ND = D / 8, NK = BK / 8;
    __shared__ __align__(16) unsigned short sK[BK * SR];
    __shared__ __align__(16) unsigned short sV[BK * SR];

    const int nqb = (T + BQ - 1) / BQ;
    const int bh = blockIdx.x / nqb;
    const int qb = nqb - 1 - (int)(blockIdx.x - bh * nqb);  // heavy (late) query blocks first
    const int b = bh / H, h = bh - b * H;
    const int kvh = h / (H / KV);
    const int q0 = qb * BQ;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tg = lane & 3;
    const long qrs = (long)H * D, krs = (long)KV * D;
    const float sl2 = attn_scale(D) * LOG2E_F;

    // Rows of this thread (relative to the (b) sequence start).
    const int r0 = q0 + warp * 16 + g, r1 = r0 + 8;
    // Q fragments: stage the 64 x D tile through sK (coalesced), then ldmatrix.
    load_tile<D>(sK, q + ((long)b * T + q0) * qrs + (long)h * D, qrs, BQ, min(BQ, T - q0));
    __syncthreads();
    unsigned int qa[KS][4];
#pragma unroll
    for (int ks = 0; ks < KS; ++ks) lds_a<SR>(qa[ks], sK, warp * 16, ks * 16);

    float o[ND][4];
    zero_acc<ND>(o);
    float mrow[2] = {NEG_BIG, NEG_BIG};
    float lrow[2] = {0.0f, 0.0f};  // per-thread partial sums (reduced over the quad at the end)

    const int kend = min(T, q0 + BQ);
    const int nkt = (kend + BK - 1) / BK;
    const bf16* kbase = k + (long)b * T * krs + (long)kvh * D;
    const bf16* vbase = v + (long)b * T * krs + (long)kvh * D;
    for (int kt = 0; kt < nkt; ++kt) {
        const int k0 = kt * BK;
        __syncthreads();  // the previous tile is no longer read
        load_tile<D>(sK, kbase + (long)k0 * krs, krs, BK, min(BK, T - k0));
        load_tile<D>(sV, vbase + (long)k0 * krs, krs, BK, min(BK, T - k0));
        __syncthreads();
        if (k0 > q0 + warp * 16 + 15) continue;  // warp-uniform: tile entirely in the future

        float s[NK][4];
        zero_acc<NK>(s);
        warp_qkt<D, NK>(s, qa, sK);
        // Scale to the log2 domain, mask, row maxima.
        float tmax[2] = {NEG_BIG, NEG_BIG};
#pragma unroll
        for (int nt = 0; nt < NK; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int row = (e < 2) ? r0 : r1;
                const int key = k0 + nt * 8 + 2 * tg + (e & 1);
                float x = s[nt][e] * sl2;
                if (key > row || key >= T) x = NEG_BIG;
                s[nt][e] = x;
                tmax[e >> 1] = fmaxf(tmax[e >> 1], x);
            }
        }
        float alpha[2], mnew[2];
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            tmax[i] = fmaxf(tmax[i], __shfl_xor_sync(0xffffffffu, tmax[i], 1));
            tmax[i] = fmaxf(tmax[i], __shfl_xor_sync(0xffffffffu, tmax[i], 2));
            mnew[i] = fmaxf(mrow[i], tmax[i]);
            alpha[i] = exp2f(mrow[i] - mnew[i]);
            mrow[i] = mnew[i];
        }
        float psum[2] = {0.0f, 0.0f};
#pragma unroll
        for (int nt = 0; nt < NK; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const float x = s[nt][e];
                const float p = (x <= 0.5f * NEG_BIG) ? 0.0f : exp2f(x - mnew[e >> 1]);
                s[nt][e] = p;
                psum[e >> 1] += p;
            }
        }
        online_rescale<ND>(o, lrow, alpha, psum);
        warp_acc_mul<D, NK>(o, s, sV);  // O += P V  (P: 16 x BK from registers; V: BK x D in shared memory)
    }

    // Finish: full row sums over the quad, normalize, store.
    float inv[2];
    quad_row_sums(lrow, inv);
    const float inv0 = inv[0], inv1 = inv[1];
    bf16* ob = out + (long)b * T * qrs + (long)h * D;
#pragma unroll
    for (int nd = 0; nd < ND; ++nd) {
        const int col = nd * 8 + 2 * tg;
        if (r0 < T) {
            bf16* p = ob + (long)r0 * qrs + col;
            p[0] = __float2bfloat16_rn(o[nd][0] * inv0);
            p[1] = __float2bfloat16_rn(o[nd][1] * inv0);
        }
        if (r1 < T) {
            bf16* p = ob + (long)r1 * qrs + col;
            p[0] = __float2bfloat16_rn(o[nd][2] * inv1);
            p[1] = __float2bfloat16_rn(o[nd][3] * inv1);
        }
    }
    if (tg == 0) {
        float* lb = lse + (long)(b * H + h) * T;
        if (r0 < T) lb[r0] = (mrow[0] + log2f(lrow[0])) * LN2_F;
        if (r1 < T) lb[r1] = (mrow[1] + log2f(lrow[1])) * LN2_F;
    }
}

// ---------------------------------------------------------------------------
// Backward, tensor cores: one launch, two block roles (see the header).
// ---------------------------------------------------------------------------

// Role 1: dk, dv for 64 keys of one (b, kv head). Warp w owns keys
// k0 + 16w .. k0 + 16w + 15 and computes transposed tiles (keys x queries).
template <int D, int BQ>
__device__ __forceinline__ void attn_bwd_dkdv_mma(unsigned short* smem, float* sL, float* sDl, bf16* dk, bf16* dv,
                                                  const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                                                  const float* lse, const float* delta, int T, int H, int KV,
                                                  int b, int kvh, int kb) {
    constexpr int SR = D + 8, ND = D / 8, NQ = BQ / 8;
    unsigned short* sK = smem;
    unsigned short* sV = smem + 64 * SR;
    unsigned short* sQ = smem + 128 * SR;
    unsigned short* sO = smem + (128 + BQ) * SR;  // dout tile
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tg = lane & 3;
    const int G = H / KV;
    const long qrs = (long)H * D, krs = (long)KV * D;
    const float scale = attn_scale(D), sl2 = scale * LOG2E_F;
    const int k0 = kb * 64;
    const int kr0 = k0 + warp * 16 + g, kr1 = kr0 + 8;  // this thread's key rows
    const int wr = warp * 16;                            // warp's first row in sK/sV

    load_tile<D>(sK, k + ((long)b * T + k0) * krs + (long)kvh * D, krs, 64, min(64, T - k0));
    load_tile<D>(sV, v + ((long)b * T + k0) * krs + (long)kvh * D, krs, 64, min(64, T - k0));

    float dkacc[ND][4], dvacc[ND][4];
    zero_acc<ND>(dkacc);
    zero_acc<ND>(dvacc);

    for (int hh = 0; hh < G; ++hh) {
        const int h = kvh * G + hh;
        const bf16* qbase = q + (long)b * T * qrs + (long)h * D;
        const bf16* obase = dout + (long)b * T * qrs + (long)h * D;
        const float* lrow = lse + (long)(b * H + h) * T;
        const float* drow = delta + (long)(b * H + h) * T;
        for (int i0 = k0; i0 < T; i0 += BQ) {  // k0 is a multiple of BQ
            __syncthreads();  // previous Q/dO tile no longer read (and K/V stores ordered)
            load_tile<D>(sQ, qbase + (long)i0 * qrs, qrs, BQ, min(BQ, T - i0));
            load_tile<D>(sO, obase + (long)i0 * qrs, qrs, BQ, min(BQ, T - i0));
            for (int idx = threadIdx.x; idx < BQ; idx += blockDim.x) {
                const int i = i0 + idx;
                sL[idx] = (i < T) ? lrow[i] * LOG2E_F : 0.0f;
                sDl[idx] = (i < T) ? drow[i] : 0.0f;
            }
            __syncthreads();
            if (k0 + wr > i0 + BQ - 1) continue;  // warp-uniform: all its keys after all queries

            float st[NQ][4], dpt[NQ][4];
            zero_acc<NQ>(st);
            zero_acc<NQ>(dpt);
            warp_kqt<D, NQ>(st, dpt, sK, sV, wr, sQ, sO);  // S^T = K Q^T, dP^T = V dO^T
#pragma unroll
            for (int nt = 0; nt < NQ; ++nt) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int key = (e < 2) ? kr0 : kr1;
                    const int qi = nt * 8 + 2 * tg + (e & 1);
                    const int qg = i0 + qi;
                    const bool ok = (key <= qg) && (qg < T) && (key < T);
                    const float p = ok ? exp2f(st[nt][e] * sl2 - sL[qi]) : 0.0f;
                    const float ds = p * (dpt[nt][e] - sDl[qi]) * scale;
                    st[nt][e] = p;
                    dpt[nt][e] = ds;
                }
            }
            // dV += P^T dO,  dK += dS^T Q   (k = queries, n = head dims)
            warp_acc_mul<D, NQ>(dvacc, st, sO);
            warp_acc_mul<D, NQ>(dkacc, dpt, sQ);
        }
    }

    bf16* dkb = dk + (long)b * T * krs + (long)kvh * D;
    bf16* dvb = dv + (long)b * T * krs + (long)kvh * D;
#pragma unroll
    for (int nd = 0; nd < ND; ++nd) {
        const int col = nd * 8 + 2 * tg;
        if (kr0 < T) {
            dkb[(long)kr0 * krs + col] = __float2bfloat16_rn(dkacc[nd][0]);
            dkb[(long)kr0 * krs + col + 1] = __float2bfloat16_rn(dkacc[nd][1]);
            dvb[(long)kr0 * krs + col] = __float2bfloat16_rn(dvacc[nd][0]);
            dvb[(long)kr0 * krs + col + 1] = __float2bfloat16_rn(dvacc[nd][1]);
        }
        if (kr1 < T) {
            dkb[(long)kr1 * krs + col] = __float2bfloat16_rn(dkacc[nd][2]);
            dkb[(long)kr1 * krs + col + 1] = __float2bfloat16_rn(dkacc[nd][3]);
            dvb[(long)kr1 * krs + col] = __float2bfloat16_rn(dvacc[nd][2]);
            dvb[(long)kr1 * krs + col + 1] = __float2bfloat16_rn(dvacc[nd][3]);
        }
    }
}

// Role 2: dq for 64 queries of one (b, h); warp w owns 16 query rows. Key
// tiles of BK rows of K and V are staged in shared memory.
template <int D, int BK>
__device__ __forceinline__ void attn_bwd_dq_mma(unsigned short* smem, bf16* dq, const bf16* dout, const bf16* q,
                                                const bf16* k, const bf16* v, const float* lse, const float* delta,
                                                int T, int H, int KV, int b, int h, int qb) {
    constexpr int SR = D + 8, KS = D / 16, ND = D / 8, NK = BK / 8;
    unsigned short* sK = smem;
    unsigned short* sV = smem + BK * SR;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tg = lane & 3;
    const int kvh = h / (H / KV);
    const long qrs = (long)H * D, krs = (long)KV * D;
    const float scale = attn_scale(D), sl2 = scale * LOG2E_F;
    const int q0 = qb * 64;
    const int r0 = q0 + warp * 16 + g, r1 = r0 + 8;

    // Q and dO fragments: stage each 64 x D tile through the shared buffer
    // (it holds at least 64 rows), then ldmatrix.
    unsigned int qa[KS][4], da[KS][4];
    const long qoff = ((long)b * T + q0) * qrs + (long)h * D;
    load_tile<D>(smem, q + qoff, qrs, 64, min(64, T - q0));
    __syncthreads();
#pragma unroll
    for (int ks = 0; ks < KS; ++ks) lds_a<SR>(qa[ks], smem, warp * 16, ks * 16);
    __syncthreads();
    load_tile<D>(smem, dout + qoff, qrs, 64, min(64, T - q0));
    __syncthreads();
#pragma unroll
    for (int ks = 0; ks < KS; ++ks) lds_a<SR>(da[ks], smem, warp * 16, ks * 16);
    const float* lrow = lse + (long)(b * H + h) * T;
    const float* drow = delta + (long)(b * H + h) * T;
    const float l20 = (r0 < T) ? lrow[r0] * LOG2E_F : 0.0f;
    const float l21 = (r1 < T) ? lrow[r1] * LOG2E_F : 0.0f;
    const float d0 = (r0 < T) ? drow[r0] : 0.0f;
    const float d1 = (r1 < T) ? drow[r1] : 0.0f;

    float dqacc[ND][4];
    zero_acc<ND>(dqacc);

    const int kend = min(T, q0 + 64);
    const int nkt = (kend + BK - 1) / BK;
    const bf16* kbase = k + (long)b * T * krs + (long)kvh * D;
    const bf16* vbase = v + (long)b * T * krs + (long)kvh * D;
    for (int kt = 0; kt < nkt; ++kt) {
        const int k0 = kt * BK;
        __syncthreads();
        load_tile<D>(sK, kbase + (long)k0 * krs, krs, BK, min(BK, T - k0));
        load_tile<D>(sV, vbase + (long)k0 * krs, krs, BK, min(BK, T - k0));
        __syncthreads();
        if (k0 > q0 + warp * 16 + 15) continue;  // warp-uniform: tile entirely in the future

        float s[NK][4], dp[NK][4];
        zero_acc<NK>(s);
        zero_acc<NK>(dp);
        warp_qkt<D, NK>(s, qa, sK);   // S = Q K^T
        warp_qkt<D, NK>(dp, da, sV);  // dP = dO V^T
#pragma unroll
        for (int nt = 0; nt < NK; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int row = (e < 2) ? r0 : r1;
                const int key = k0 + nt * 8 + 2 * tg + (e & 1);
                const bool ok = (key <= row) && (key < T) && (row < T);
                const float p = ok ? exp2f(s[nt][e] * sl2 - ((e < 2) ? l20 : l21)) : 0.0f;
                s[nt][e] = p * (dp[nt][e] - ((e < 2) ? d0 : d1)) * scale;  // dS
            }
        }
        warp_acc_mul<D, NK>(dqacc, s, sK);  // dQ += dS K  (k = keys, n = head dims)
    }

    bf16* qd = dq + (long)b * T * qrs + (long)h * D;
#pragma unroll
    for (int nd = 0; nd < ND; ++nd) {
        const int col = nd * 8 + 2 * tg;
        if (r0 < T) {
            qd[(long)r0 * qrs + col] = __float2bfloat16_rn(dqacc[nd][0]);
            qd[(long)r0 * qrs + col + 1] = __float2bfloat16_rn(dqacc[nd][1]);
        }
        if (r1 < T) {
            qd[(long)r1 * qrs + col] = __float2bfloat16_rn(dqacc[nd][2]);
            qd[(long)r1 * qrs + col + 1] = __float2bfloat16_rn(dqacc[nd][3]);
        }
    }
}

// Tile sizes of the backward: the dk/dv role walks query tiles of BQ rows,
// the dq role key tiles of BK rows (smaller for D = 128 to bound registers and
// shared memory).
template <int D> struct BwdTiles;
template <> struct BwdTiles<64> { static constexpr int BQ = ATTN_D64_BQ, BK = 64; };
template <> struct BwdTiles<128> { static constexpr int BQ = 16, BK = 32; };

template <int D>
__device__ __forceinline__ void attn_bwd_mma(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* q,
                                             const bf16* k, const bf16* v, const float* lse, const float* delta,
                                             int B, int T, int H, int KV) {
    constexpr int SR = D + 8;
    constexpr int BQ = BwdTiles<D>::BQ, BK = BwdTiles<D>::BK;
    // dk/dv role: K, V (64 rows each) + Q, dO (BQ rows each); dq role: K, V (BK rows each).
    constexpr int HALVES = (128 + 2 * BQ) * SR > 2 * BK * SR ? (128 + 2 * BQ) * SR : 2 * BK * SR;
    __shared__ __align__(16) unsigned short smem[HALVES];
    __shared__ float sL[BQ], sDl[BQ];
    const int nb = (T + 63) / 64;
    const long nkv = (long)B * KV * nb;
    const long bid = blockIdx.x;
    if (bid < nkv) {
        const int bkv = (int)(bid / nb), kb = (int)(bid - (long)bkv * nb);
        attn_bwd_dkdv_mma<D, BQ>(smem, sL, sDl, dk, dv, dout, q, k, v, lse, delta, T, H, KV, bkv / KV, bkv % KV, kb);
    } else {
        const long r = bid - nkv;
        const int bh = (int)(r / nb);
        const int qb = nb - 1 - (int)(r - (long)bh * nb);
        attn_bwd_dq_mma<D, BK>(smem, dq, dout, q, k, v, lse, delta, T, H, KV, bh / H, bh % H, qb);
    }
}

// ---------------------------------------------------------------------------
// Pipelined D = 64 kernels (FlashAttention-2 structure on mma.sync): the
// streamed tiles are copied with cp.async into a second shared-memory stage
// while the tensor cores work on the first, so global latency hides behind
// math instead of stalling every tile; the causal mask is applied only on
// tiles that cross the diagonal or the end of the sequence; the grid starts
// the heaviest tiles of every (b, h) first. They need 16-byte aligned bases of
// q, k, v, out, dout, dq, dk, dv (the host falls back to the _v1 kernels
// otherwise) and D == 64 (H*D and KV*D are then multiples of 8 elements).
// ---------------------------------------------------------------------------

// cp.async of 16 bytes global -> shared, L2 only (.cg); valid == false
// writes 16 zero bytes and reads nothing (src-size 0).
__device__ __forceinline__ void cp_async16(unsigned short* s, const void* g, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(s)), "l"(g),
                 "r"(valid ? 16 : 0)
                 : "memory");
}
// cp.async of one float (4 bytes, .ca is the only mode for 4); zero when !valid.
__device__ __forceinline__ void cp_async4(float* s, const float* g, bool valid) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(s)), "l"(g),
                 "r"(valid ? 4 : 0)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until all of this thread's committed groups are complete; the
// __syncthreads that follows it publishes every thread's copies.
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// Block-cooperative async copy of `rows` rows x D bf16 (global row stride gs
// elements, 16-byte aligned rows) into shared memory with row stride D + 8
// halves (the pad keeps ldmatrix free of bank conflicts). Rows >= valid are
// zero-filled, so padded keys and values can never inject NaN into products.
template <int D, int NT>
__device__ __forceinline__ void async_tile(unsigned short* s, const bf16* g, long gs, int rows, int valid) {
    constexpr int SR = D + 8, VPR = D / 8;
    for (int idx = threadIdx.x; idx < rows * VPR; idx += NT) {
        const int r = idx / VPR, c = (idx - r * VPR) * 8;
        const bool ok = r < valid;
        cp_async16(s + r * SR + c, g + (ok ? (long)r * gs + c : 0), ok);
    }
}

// Waits until at most N of this thread's committed groups are pending (N is
// an immediate of the instruction, hence the template).
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Bytes of dynamic shared memory this launch got (%dynamic_smem_size): the
// pipelined kernels return without writing when the host passed less than
// they lay out, so a launcher mismatch fails the CPU comparison loudly
// instead of corrupting shared memory.
__device__ __forceinline__ unsigned int dynamic_smem_bytes() {
    unsigned int r;
    asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(r));
    return r;
}

// The pipelined kernels' shared memory is dynamic: its size depends on the
// variant, and past 48 KiB only dynamic memory can be opted into.
extern __shared__ __align__(16) unsigned char attn_dsmem[];

// Variants of the pipelined kernels, chosen by the host per sequence length
// and selectable by tests: WARPS warps per block (16 rows each), STAGES
// shared-memory stages of the streamed tiles (the copy of tile t + STAGES - 1
// is in flight while tile t is computed). The host mirrors the byte counts
// below (internal/gpu/cuda/attention.go, d64Variant).

// Async copy of key tile kt (64 rows of K, then of V, global row stride gs)
// into stage kt % STAGES of a ring of [K tile | V tile] stages.
template <int D, int NT, int STAGES>
__device__ __forceinline__ void async_kv_tile(unsigned short* smem, const bf16* kbase, const bf16* vbase, long gs,
                                              int T, int kt) {
    constexpr int BK = 64, TILE = BK * (D + 8);
    unsigned short* s = smem + (kt % STAGES) * 2 * TILE;
    const int k1 = kt * BK;
    async_tile<D, NT>(s, kbase + (long)k1 * gs, gs, BK, min(BK, T - k1));
    async_tile<D, NT>(s + TILE, vbase + (long)k1 * gs, gs, BK, min(BK, T - k1));
}

// Forward: block of WARPS warps = 16*WARPS query rows of one (b, h), warp w
// rows 16w..16w+15; key tiles of 64 in STAGES stages of [K tile | V tile].
// The Q tile is staged through the last stage before the loop (its tile is
// issued only once Q sits in registers) and the output through stage 0
// after it.
template <int D, int WARPS, int STAGES>
struct Fwd3Layout {
    static constexpr int BQ = 16 * WARPS, BK = 64, SR = D + 8, TILE = BK * SR, STAGE = 2 * TILE;
    static constexpr unsigned int BYTES = STAGES * STAGE * 2;
    static_assert(BQ * SR <= STAGE, "the Q and output tiles fit in one stage");
    static_assert(STAGES >= 2, "at least double buffering");
};

template <int D, int WARPS, int STAGES>
__device__ __forceinline__ void attn_fwd3(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int B,
                                          int T, int H, int KV) {
    using L = Fwd3Layout<D, WARPS, STAGES>;
    constexpr int NT = 32 * WARPS, BQ = L::BQ, BK = L::BK, SR = L::SR, KS = D / 16, ND = D / 8, NK = BK / 8;
    constexpr int TILE = L::TILE, STAGE = L::STAGE;
    if (dynamic_smem_bytes() < L::BYTES) return;
    unsigned short* smem = reinterpret_cast<unsigned short*>(attn_dsmem);

    const int nqb = (T + BQ - 1) / BQ;
    const int BH = B * H;
    const int qb = nqb - 1 - (int)(blockIdx.x / BH);  // all heavy (late) tiles of the grid first
    const int bh = (int)(blockIdx.x % BH);
    const int b = bh / H, h = bh - b * H;
    const int kvh = h / (H / KV);
    const int q0 = qb * BQ;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tg = lane & 3;
    const long qrs = (long)H * D, krs = (long)KV * D;
    const float sl2 = attn_scale(D) * LOG2E_F;
    const int w0 = q0 + warp * 16;  // this warp's first query row
    const int r0 = w0 + g, r1 = r0 + 8;

    const bf16* kbase = k + (long)b * T * krs + (long)kvh * D;
    const bf16* vbase = v + (long)b * T * krs + (long)kvh * D;
    const int nkt = (min(T, q0 + BQ) + BK - 1) / BK;
    auto issue = [&](int kt) { async_kv_tile<D, NT, STAGES>(smem, kbase, vbase, krs, T, kt); };

    // Prologue: group 0 = Q (into the last stage) and key tile 0; groups
    // 1..STAGES-2 = key tiles 1..STAGES-2 (empty past the end: every
    // iteration commits one group so that the wait counts stay fixed).
    unsigned short* sQ = smem + (STAGES - 1) * STAGE;
    async_tile<D, NT>(sQ, q + ((long)b * T + q0) * qrs + (long)h * D, qrs, BQ, min(BQ, T - q0));
    issue(0);
    cp_async_commit();
#pragma unroll
    for (int s = 1; s < STAGES - 1; ++s) {
        if (s < nkt) issue(s);
        cp_async_commit();
    }
    cp_async_wait<STAGES - 2>();
    __syncthreads();
    unsigned int qa[KS][4];
#pragma unroll
    for (int ks = 0; ks < KS; ++ks) lds_a<SR>(qa[ks], sQ, warp * 16, ks * 16);
    __syncthreads();  // the last stage is free for key tile STAGES - 1

    float o[ND][4];
    zero_acc<ND>(o);
    float mrow[2] = {NEG_BIG, NEG_BIG};  // running row maxima of the raw scores
    float lrow[2] = {0.0f, 0.0f};        // per-thread partial sums (quad-reduced at the end)

    for (int kt = 0; kt < nkt; ++kt) {
        const int k0 = kt * BK;
        const unsigned short* sK = smem + (kt % STAGES) * STAGE;
        const unsigned short* sV = sK + TILE;
        // The stage of tile kt + STAGES - 1 held tile kt - 1, freed by the last barrier.
        if (kt + STAGES - 1 < nkt) issue(kt + STAGES - 1);
        cp_async_commit();
        // Warp-uniform. k0 and w0 are multiples of 16, so k0 <= w0 means key k0
        // is visible to every row of the warp: each processed row has a finite
        // maximum in every tile it sees.
        if (k0 <= w0 && w0 < T) {
            float s[NK][4];
            zero_acc<NK>(s);
            warp_qkt<D, NK>(s, qa, sK);
            if (k0 + BK - 1 > w0 || k0 + BK > T) {  // the tile crosses the diagonal or the end
#pragma unroll
                for (int nt = 0; nt < NK; ++nt) {
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        const int row = (e < 2) ? r0 : r1;
                        const int key = k0 + nt * 8 + 2 * tg + (e & 1);
                        if (key > row || key >= T) s[nt][e] = NEG_BIG;
                    }
                }
            }
            float mx[2] = {mrow[0], mrow[1]};
#pragma unroll
            for (int nt = 0; nt < NK; ++nt) {
                mx[0] = fmaxf(mx[0], fmaxf(s[nt][0], s[nt][1]));
                mx[1] = fmaxf(mx[1], fmaxf(s[nt][2], s[nt][3]));
            }
            float ms[2], alpha[2];
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
                mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
                alpha[i] = exp2f((mrow[i] - mx[i]) * sl2);  // 0 on the first tile (mrow = NEG_BIG)
                mrow[i] = mx[i];
                ms[i] = mx[i] * sl2;
            }
            // p = 2^(s*scale*log2e - max*scale*log2e): one FMA and one exp2
            // per score; masked scores (NEG_BIG) give exactly 0.
            float psum[2] = {0.0f, 0.0f};
#pragma unroll
            for (int nt = 0; nt < NK; ++nt) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const float p = exp2f(fmaf(s[nt][e], sl2, -ms[e >> 1]));
                    s[nt][e] = p;
                    psum[e >> 1] += p;
                }
            }
            online_rescale<ND>(o, lrow, alpha, psum);
            warp_acc_mul<D, NK>(o, s, sV);  // O += P V (P from registers: the FA2 A operand)
        }
        cp_async_wait<STAGES - 2>();
        __syncthreads();  // tile kt + 1 visible to all; this stage free for tile kt + STAGES
    }
    cp_async_wait<0>();  // only empty groups can be pending; make stage 0 provably idle

    float inv[2];
    quad_row_sums(lrow, inv);
    const float inv0 = inv[0], inv1 = inv[1];
    // Output tile through stage 0, then 16-byte coalesced stores.
    unsigned short* so = smem;
    const int lr0 = warp * 16 + g;
#pragma unroll
    for (int nd = 0; nd < ND; ++nd) {
        const int col = nd * 8 + 2 * tg;
        *reinterpret_cast<unsigned int*>(so + lr0 * SR + col) = pack_float2(o[nd][0] * inv0, o[nd][1] * inv0);
        *reinterpret_cast<unsigned int*>(so + (lr0 + 8) * SR + col) = pack_float2(o[nd][2] * inv1, o[nd][3] * inv1);
    }
    if (tg == 0) {
        float* lb = lse + (long)(b * H + h) * T;
        if (r0 < T) lb[r0] = (mrow[0] * sl2 + log2f(lrow[0])) * LN2_F;
        if (r1 < T) lb[r1] = (mrow[1] * sl2 + log2f(lrow[1])) * LN2_F;
    }
    __syncthreads();
    bf16* ob = out + ((long)b * T + q0) * qrs + (long)h * D;
    const int valid = min(BQ, T - q0);
    for (int idx = threadIdx.x; idx < BQ * (D / 8); idx += NT) {
        const int r = idx / (D / 8), c = (idx - r * (D / 8)) * 8;
        if (r < valid) *reinterpret_cast<uint4*>(ob + (long)r * qrs + c) = *reinterpret_cast<const uint4*>(so + r * SR + c);
    }
}

// Backward, same two roles as attn_bwd_mma (dk/dv blocks, then dq blocks; no
// atomics, deterministic), with the streamed tiles in STAGES stages and each
// role's blocks ordered heaviest first. A block of WARPS warps owns 16*WARPS
// keys (dk/dv role) or queries (dq role).
template <int D, int WARPS, int STAGES, int BQ_>
struct Bwd3Layout {
    static constexpr int KB = 16 * WARPS;  // keys (dk/dv) or queries (dq) of one block
    static constexpr int BQ = BQ_;         // query rows per step of the dk/dv role
    static constexpr int BK = 64;          // key rows per step of the dq role
    static constexpr int SR = D + 8;
    // dk/dv: K, V (KB rows each), STAGES x [Q | dO] (BQ rows each), then
    // STAGES x [lse | delta] floats.
    static constexpr int KV_HALVES = 2 * KB * SR + STAGES * 2 * BQ * SR;
    static constexpr int KV_BYTES = KV_HALVES * 2 + STAGES * 2 * BQ * 4;
    // dq: STAGES x [K | V] (BK rows each); the [Q | dO] tiles (KB rows each)
    // are staged from the last stage on before the loop.
    static constexpr int STAGE = 2 * BK * SR;
    static constexpr int Q_HALVES =
        STAGES * STAGE > (STAGES - 1) * STAGE + 2 * KB * SR ? STAGES * STAGE : (STAGES - 1) * STAGE + 2 * KB * SR;
    static constexpr unsigned int BYTES = KV_BYTES > Q_HALVES * 2 ? KV_BYTES : Q_HALVES * 2;
    static_assert(KB % BQ == 0 && KB % BK == 0, "tiles nest in blocks");
    static_assert(2 * BQ <= 32 * WARPS, "one thread per lse or delta value of a step");
    static_assert(STAGES >= 2, "at least double buffering");
};

// dk, dv for KB keys of one (b, kv head): warp w owns keys k0+16w..+15 and
// works on transposed tiles (keys x queries). Steps walk (head of the group,
// query tile of BQ_ rows) pairs; step s + STAGES - 1 loads while step s runs.
template <int D, int WARPS, int STAGES, int BQ_>
__device__ __forceinline__ void attn_bwd3_dkdv(unsigned short* smem, bf16* dk, bf16* dv, const bf16* dout,
                                               const bf16* q, const bf16* k, const bf16* v, const float* lse,
                                               const float* delta, int T, int H, int KV, int b, int kvh, int kb) {
    using L = Bwd3Layout<D, WARPS, STAGES, BQ_>;
    constexpr int NT = 32 * WARPS, KB = L::KB, BQ = L::BQ, SR = L::SR, ND = D / 8, NQ = BQ / 8;
    constexpr int QT = BQ * SR;  // halves of one Q or dO tile
    unsigned short* sK = smem;
    unsigned short* sV = smem + KB * SR;
    unsigned short* st0 = smem + 2 * KB * SR;  // stage s: Q at st0 + 2*s*QT, dO after it
    float* sLD = reinterpret_cast<float*>(smem + L::KV_HALVES);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tg = lane & 3;
    const int G = H / KV;
    const long qrs = (long)H * D, krs = (long)KV * D;
    const float scale = attn_scale(D), sl2 = scale * LOG2E_F;
    const int k0 = kb * KB;
    const int wr = warp * 16, kw = k0 + wr;  // warp's first row in sK/sV, first key
    const int kr0 = kw + g, kr1 = kr0 + 8;
    const int nI = (T - k0 + BQ - 1) / BQ;  // query tiles at or after the keys (k0 % BQ == 0)
    const int steps = G * nI;

    // Issues step s's loads into stage s % STAGES (lse/delta: 2 x BQ floats).
    auto issue = [&](int s) {
        const int hh = s / nI, i0 = k0 + (s - hh * nI) * BQ, h = kvh * G + hh;
        unsigned short* sq = st0 + (s % STAGES) * 2 * QT;
        const long off = ((long)b * T + i0) * qrs + (long)h * D;
        async_tile<D, NT>(sq, q + off, qrs, BQ, min(BQ, T - i0));
        async_tile<D, NT>(sq + QT, dout + off, qrs, BQ, min(BQ, T - i0));
        if (threadIdx.x < 2 * BQ) {
            const int j = threadIdx.x & (BQ - 1), i = i0 + j;
            const float* src = (threadIdx.x < BQ ? lse : delta) + (long)(b * H + h) * T;
            cp_async4(sLD + (s % STAGES) * 2 * BQ + threadIdx.x, src + (i < T ? i : 0), i < T);
        }
    };

    async_tile<D, NT>(sK, k + ((long)b * T + k0) * krs + (long)kvh * D, krs, KB, min(KB, T - k0));
    async_tile<D, NT>(sV, v + ((long)b * T + k0) * krs + (long)kvh * D, krs, KB, min(KB, T - k0));
    issue(0);
    cp_async_commit();
#pragma unroll
    for (int s = 1; s < STAGES - 1; ++s) {
        if (s < steps) issue(s);
        cp_async_commit();
    }
    cp_async_wait<STAGES - 2>();
    __syncthreads();

    float dkacc[ND][4], dvacc[ND][4];
    zero_acc<ND>(dkacc);
    zero_acc<ND>(dvacc);

    for (int s = 0; s < steps; ++s) {
        if (s + STAGES - 1 < steps) issue(s + STAGES - 1);
        cp_async_commit();
        const int i0 = k0 + (s % nI) * BQ;
        const unsigned short* sQ = st0 + (s % STAGES) * 2 * QT;
        const unsigned short* sO = sQ + QT;
        const float* sL = sLD + (s % STAGES) * 2 * BQ;
        const float* sD = sL + BQ;
        if (kw <= i0 + BQ - 1 && kw < T) {  // warp-uniform: some key of the warp sees some query
            float st[NQ][4], dpt[NQ][4];
            zero_acc<NQ>(st);
            zero_acc<NQ>(dpt);
            warp_kqt<D, NQ>(st, dpt, sK, sV, wr, sQ, sO);  // S^T = K Q^T, dP^T = V dO^T
            const bool mask = kw + 15 > i0 || i0 + BQ > T || kw + 15 >= T;
#pragma unroll
            for (int nt = 0; nt < NQ; ++nt) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int qi = nt * 8 + 2 * tg + (e & 1);
                    float p = exp2f(fmaf(st[nt][e], sl2, -sL[qi] * LOG2E_F));
                    if (mask) {
                        const int key = (e < 2) ? kr0 : kr1, qg = i0 + qi;
                        if (key > qg || qg >= T || key >= T) p = 0.0f;
                    }
                    dpt[nt][e] = p * (dpt[nt][e] - sD[qi]) * scale;  // dS^T
                    st[nt][e] = p;                                   // P^T
                }
            }
            warp_acc_mul<D, NQ>(dvacc, st, sO);   // dV += P^T dO
            warp_acc_mul<D, NQ>(dkacc, dpt, sQ);  // dK += dS^T Q
        }
        cp_async_wait<STAGES - 2>();
        __syncthreads();
    }

    bf16* dkb = dk + (long)b * T * krs + (long)kvh * D;
    bf16* dvb = dv + (long)b * T * krs + (long)kvh * D;
#pragma unroll
    for (int nd = 0; nd < ND; ++nd) {
        const int col = nd * 8 + 2 * tg;
        if (kr0 < T) {
            *reinterpret_cast<unsigned int*>(dkb + (long)kr0 * krs + col) = pack_float2(dkacc[nd][0], dkacc[nd][1]);
            *reinterpret_cast<unsigned int*>(dvb + (long)kr0 * krs + col) = pack_float2(dvacc[nd][0], dvacc[nd][1]);
        }
        if (kr1 < T) {
            *reinterpret_cast<unsigned int*>(dkb + (long)kr1 * krs + col) = pack_float2(dkacc[nd][2], dkacc[nd][3]);
            *reinterpret_cast<unsigned int*>(dvb + (long)kr1 * krs + col) = pack_float2(dvacc[nd][2], dvacc[nd][3]);
        }
    }
}

// dq for KB queries of one (b, h): warp w owns 16 query rows; key tiles of 64
// in STAGES stages, each processed in two halves of 32 keys to bound
// registers.
template <int D, int WARPS, int STAGES, int BQ_>
__device__ __forceinline__ void attn_bwd3_dq(unsigned short* smem, bf16* dq, const bf16* dout, const bf16* q,
                                             const bf16* k, const bf16* v, const float* lse, const float* delta,
                                             int T, int H, int KV, int b, int h, int qb) {
    using L = Bwd3Layout<D, WARPS, STAGES, BQ_>;
    constexpr int NT = 32 * WARPS, QB = L::KB, BK = L::BK, HK = 32, SR = L::SR, KS = D / 16, ND = D / 8;
    constexpr int NH = HK / 8, TILE = BK * SR, STAGE = L::STAGE;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tg = lane & 3;
    const int kvh = h / (H / KV);
    const long qrs = (long)H * D, krs = (long)KV * D;
    const float scale = attn_scale(D), sl2 = scale * LOG2E_F;
    const int q0 = qb * QB;
    const int w0 = q0 + warp * 16;
    const int r0 = w0 + g, r1 = r0 + 8;
    const bf16* kbase = k + (long)b * T * krs + (long)kvh * D;
    const bf16* vbase = v + (long)b * T * krs + (long)kvh * D;
    const int nkt = (min(T, q0 + QB) + BK - 1) / BK;
    auto issue = [&](int kt) { async_kv_tile<D, NT, STAGES>(smem, kbase, vbase, krs, T, kt); };

    // Prologue: group 0 = Q, dO (QB rows each, from the last stage on) and
    // key tile 0; groups 1..STAGES-2 = key tiles 1..STAGES-2.
    unsigned short* sQ = smem + (STAGES - 1) * STAGE;
    unsigned short* sO = sQ + QB * SR;
    const long qoff = ((long)b * T + q0) * qrs + (long)h * D;
    async_tile<D, NT>(sQ, q + qoff, qrs, QB, min(QB, T - q0));
    async_tile<D, NT>(sO, dout + qoff, qrs, QB, min(QB, T - q0));
    issue(0);
    cp_async_commit();
#pragma unroll
    for (int s = 1; s < STAGES - 1; ++s) {
        if (s < nkt) issue(s);
        cp_async_commit();
    }
    const float* lrow = lse + (long)(b * H + h) * T;
    const float* drow = delta + (long)(b * H + h) * T;
    const float l20 = (r0 < T) ? lrow[r0] * LOG2E_F : 0.0f;
    const float l21 = (r1 < T) ? lrow[r1] * LOG2E_F : 0.0f;
    const float d0 = (r0 < T) ? drow[r0] : 0.0f;
    const float d1 = (r1 < T) ? drow[r1] : 0.0f;
    cp_async_wait<STAGES - 2>();
    __syncthreads();
    unsigned int qa[KS][4], da[KS][4];
#pragma unroll
    for (int ks = 0; ks < KS; ++ks) {
        lds_a<SR>(qa[ks], sQ, warp * 16, ks * 16);
        lds_a<SR>(da[ks], sO, warp * 16, ks * 16);
    }
    __syncthreads();  // the stages from STAGES - 1 on are free for key tiles

    float dqacc[ND][4];
    zero_acc<ND>(dqacc);
    for (int kt = 0; kt < nkt; ++kt) {
        const int k0 = kt * BK;
        const unsigned short* sK = smem + (kt % STAGES) * STAGE;
        const unsigned short* sV = sK + TILE;
        if (kt + STAGES - 1 < nkt) issue(kt + STAGES - 1);
        cp_async_commit();
        if (w0 < T) {
#pragma unroll
            for (int hk = 0; hk < BK / HK; ++hk) {
                const int kh = k0 + hk * HK;
                if (kh > w0) break;  // warp-uniform (multiples of 16): these keys are all in the future
                const unsigned short* sKh = sK + hk * HK * SR;
                const unsigned short* sVh = sV + hk * HK * SR;
                float s[NH][4], dp[NH][4];
                zero_acc<NH>(s);
                zero_acc<NH>(dp);
                warp_qkt<D, NH>(s, qa, sKh);   // S = Q K^T
                warp_qkt<D, NH>(dp, da, sVh);  // dP = dO V^T
                const bool mask = kh + HK - 1 > w0 || kh + HK > T || w0 + 15 >= T;
#pragma unroll
                for (int nt = 0; nt < NH; ++nt) {
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        float p = exp2f(fmaf(s[nt][e], sl2, -((e < 2) ? l20 : l21)));
                        if (mask) {
                            const int row = (e < 2) ? r0 : r1;
                            const int key = kh + nt * 8 + 2 * tg + (e & 1);
                            if (key > row || key >= T || row >= T) p = 0.0f;
                        }
                        s[nt][e] = p * (dp[nt][e] - ((e < 2) ? d0 : d1)) * scale;  // dS
                    }
                }
                warp_acc_mul<D, NH>(dqacc, s, sKh);  // dQ += dS K
            }
        }
        cp_async_wait<STAGES - 2>();
        __syncthreads();
    }

    bf16* qd = dq + (long)b * T * qrs + (long)h * D;
#pragma unroll
    for (int nd = 0; nd < ND; ++nd) {
        const int col = nd * 8 + 2 * tg;
        if (r0 < T) *reinterpret_cast<unsigned int*>(qd + (long)r0 * qrs + col) = pack_float2(dqacc[nd][0], dqacc[nd][1]);
        if (r1 < T) *reinterpret_cast<unsigned int*>(qd + (long)r1 * qrs + col) = pack_float2(dqacc[nd][2], dqacc[nd][3]);
    }
}

// Grid: B*KV*nb dk/dv blocks then B*H*nb dq blocks, nb = ceil_div(T, 16*WARPS).
template <int D, int WARPS, int STAGES, int BQ_>
__device__ __forceinline__ void attn_bwd3(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k,
                                          const bf16* v, const float* lse, const float* delta, int B, int T, int H,
                                          int KV) {
    using L = Bwd3Layout<D, WARPS, STAGES, BQ_>;
    if (dynamic_smem_bytes() < L::BYTES) return;
    unsigned short* smem = reinterpret_cast<unsigned short*>(attn_dsmem);
    const int nb = (T + L::KB - 1) / L::KB;
    const long nkv = (long)B * KV * nb;
    const long bid = blockIdx.x;
    if (bid < nkv) {
        // Key tile major, ascending: tile 0 sees every query, so it goes first.
        const int kb = (int)(bid / (B * KV)), bkv = (int)(bid % (B * KV));
        attn_bwd3_dkdv<D, WARPS, STAGES, BQ_>(smem, dk, dv, dout, q, k, v, lse, delta, T, H, KV, bkv / KV, bkv % KV, kb);
    } else {
        // Query tile major, descending: the last tile sees every key.
        const long r = bid - nkv;
        const int qb = nb - 1 - (int)(r / ((long)B * H)), bh = (int)(r % ((long)B * H));
        attn_bwd3_dq<D, WARPS, STAGES, BQ_>(smem, dq, dout, q, k, v, lse, delta, T, H, KV, bh / H, bh % H, qb);
    }
}

// ---------------------------------------------------------------------------
// Generic fallback (CUDA cores, any D <= 256, slow): same grids and block
// size as the tensor-core kernels. One warp handles one query row (forward,
// dq) or one key row (dk, dv) at a time; lane l holds head dims l, l+32, ...;
// dot products are warp butterflies (identical in every lane).
// ---------------------------------------------------------------------------
#define GEN_MAXE 8  // D <= 32 * GEN_MAXE

__device__ __forceinline__ void gen_load(float r[GEN_MAXE], const bf16* p, int D, int lane) {
#pragma unroll
    for (int e = 0; e < GEN_MAXE; ++e) {
        const int d = lane + 32 * e;
        r[e] = (d < D) ? __bfloat162float(p[d]) : 0.0f;
    }
}
__device__ __forceinline__ float gen_dot(const float a[GEN_MAXE], const bf16* p, int D, int lane) {
    float s = 0.0f;
#pragma unroll
    for (int e = 0; e < GEN_MAXE; ++e) {
        const int d = lane + 32 * e;
        if (d < D) s += a[e] * __bfloat162float(p[d]);
    }
    return warp_sum(s);
}

__device__ void attn_fwd_generic(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int B, int T,
                                 int H, int KV, int D) {
    const int nqb = (T + 63) / 64;
    const int bh = blockIdx.x / nqb;
    const int qb = nqb - 1 - (int)(blockIdx.x - bh * nqb);
    const int b = bh / H, h = bh - b * H;
    const int kvh = h / (H / KV);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const long qrs = (long)H * D, krs = (long)KV * D;
    const float sl2 = attn_scale(D) * LOG2E_F;
    for (int rr = 0; rr < 16; ++rr) {
        const int t = qb * 64 + warp * 16 + rr;
        if (t >= T) break;  // warp-uniform
        float qv[GEN_MAXE], acc[GEN_MAXE];
        gen_load(qv, q + ((long)b * T + t) * qrs + (long)h * D, D, lane);
#pragma unroll
        for (int e = 0; e < GEN_MAXE; ++e) acc[e] = 0.0f;
        float m = NEG_BIG, l = 0.0f;
        for (int j = 0; j <= t; ++j) {
            const long ko = ((long)b * T + j) * krs + (long)kvh * D;
            const float x = gen_dot(qv, k + ko, D, lane) * sl2;
            const float mn = fmaxf(m, x);
            const float alpha = exp2f(m - mn);
            const float p = exp2f(x - mn);
            l = l * alpha + p;
#pragma unroll
            for (int e = 0; e < GEN_MAXE; ++e) {
                const int d = lane + 32 * e;
                const float vv = (d < D) ? __bfloat162float(v[ko + d]) : 0.0f;
                acc[e] = acc[e] * alpha + p * vv;
            }
            m = mn;
        }
        bf16* orow = out + ((long)b * T + t) * qrs + (long)h * D;
        const float inv = 1.0f / l;
#pragma unroll
        for (int e = 0; e < GEN_MAXE; ++e) {
            const int d = lane + 32 * e;
            if (d < D) orow[d] = __float2bfloat16_rn(acc[e] * inv);
        }
        if (lane == 0) lse[(long)(b * H + h) * T + t] = (m + log2f(l)) * LN2_F;
    }
}

__device__ void attn_bwd_generic(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k,
                                 const bf16* v, const float* lse, const float* delta, int B, int T, int H, int KV,
                                 int D) {
    const int nb = (T + 63) / 64;
    const long nkv = (long)B * KV * nb;
    const long bid = blockIdx.x;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int G = H / KV;
    const long qrs = (long)H * D, krs = (long)KV * D;
    const float scale = attn_scale(D), sl2 = scale * LOG2E_F;
    if (bid < nkv) {
        const int bkv = (int)(bid / nb), kb = (int)(bid - (long)bkv * nb);
        const int b = bkv / KV, kvh = bkv % KV;
        for (int rr = 0; rr < 16; ++rr) {
            const int j = kb * 64 + warp * 16 + rr;
            if (j >= T) break;  // warp-uniform
            const long ko = ((long)b * T + j) * krs + (long)kvh * D;
            float kv_[GEN_MAXE], vv[GEN_MAXE], dka[GEN_MAXE], dva[GEN_MAXE];
            gen_load(kv_, k + ko, D, lane);
            gen_load(vv, v + ko, D, lane);
#pragma unroll
            for (int e = 0; e < GEN_MAXE; ++e) dka[e] = dva[e] = 0.0f;
            for (int hh = 0; hh < G; ++hh) {
                const int h = kvh * G + hh;
                for (int i = j; i < T; ++i) {
                    const long qo = ((long)b * T + i) * qrs + (long)h * D;
                    const long si = (long)(b * H + h) * T + i;
                    const float x = gen_dot(kv_, q + qo, D, lane) * sl2;
                    const float p = exp2f(x - lse[si] * LOG2E_F);
                    const float dpv = gen_dot(vv, dout + qo, D, lane);
                    const float ds = p * (dpv - delta[si]) * scale;
#pragma unroll
                    for (int e = 0; e < GEN_MAXE; ++e) {
                        const int d = lane + 32 * e;
                        if (d < D) {
                            dva[e] += p * __bfloat162float(dout[qo + d]);
                            dka[e] += ds * __bfloat162float(q[qo + d]);
                        }
                    }
                }
            }
#pragma unroll
            for (int e = 0; e < GEN_MAXE; ++e) {
                const int d = lane + 32 * e;
                if (d < D) {
                    dk[ko + d] = __float2bfloat16_rn(dka[e]);
                    dv[ko + d] = __float2bfloat16_rn(dva[e]);
                }
            }
        }
    } else {
        const long r = bid - nkv;
        const int bh = (int)(r / nb);
        const int qb = nb - 1 - (int)(r - (long)bh * nb);
        const int b = bh / H, h = bh % H, kvh = h / G;
        for (int rr = 0; rr < 16; ++rr) {
            const int i = qb * 64 + warp * 16 + rr;
            if (i >= T) break;  // warp-uniform
            const long qo = ((long)b * T + i) * qrs + (long)h * D;
            const long si = (long)(b * H + h) * T + i;
            float qv[GEN_MAXE], dov[GEN_MAXE], dqa[GEN_MAXE];
            gen_load(qv, q + qo, D, lane);
            gen_load(dov, dout + qo, D, lane);
#pragma unroll
            for (int e = 0; e < GEN_MAXE; ++e) dqa[e] = 0.0f;
            const float l2 = lse[si] * LOG2E_F, dl = delta[si];
            for (int j = 0; j <= i; ++j) {
                const long ko = ((long)b * T + j) * krs + (long)kvh * D;
                const float x = gen_dot(qv, k + ko, D, lane) * sl2;
                const float p = exp2f(x - l2);
                const float dpv = gen_dot(dov, v + ko, D, lane);
                const float ds = p * (dpv - dl) * scale;
#pragma unroll
                for (int e = 0; e < GEN_MAXE; ++e) {
                    const int d = lane + 32 * e;
                    if (d < D) dqa[e] += ds * __bfloat162float(k[ko + d]);
                }
            }
#pragma unroll
            for (int e = 0; e < GEN_MAXE; ++e) {
                const int d = lane + 32 * e;
                if (d < D) dq[qo + d] = __float2bfloat16_rn(dqa[e]);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Entry points.
// ---------------------------------------------------------------------------

extern "C" __global__ void __launch_bounds__(128, ATTN_MINB_FWD64)
attention_fwd_d64_v1(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int B, int T, int H,
                     int KV, int D) {
    if (D != 64) return;
    attn_fwd_mma<64>(out, lse, q, k, v, B, T, H, KV);
}

// Pipelined D = 64 variants, attention_fwd_d64_w<W>s<S>m<M>: W warps, S
// stages, M resident blocks per SM asked of the register allocator (at most
// 65536 / (32 * W * M) registers a thread). The host's tables
// (fwdD64Variants, bwdD64Variants) list the same, in the same order.
#define ATTN_FWD_ENTRY(NAME, W, S, M)                                                                           \
    extern "C" __global__ void __launch_bounds__(32 * W, M) NAME(bf16* out, float* lse, const bf16* q,          \
                                                                 const bf16* k, const bf16* v, int B, int T,    \
                                                                 int H, int KV, int D) {                        \
        if (D != 64) return;                                                                                    \
        attn_fwd3<64, W, S>(out, lse, q, k, v, B, T, H, KV);                                                    \
    }
ATTN_FWD_ENTRY(attention_fwd_d64_w8s2m2, 8, 2, 2)
ATTN_FWD_ENTRY(attention_fwd_d64_w8s3m2, 8, 3, 2)
ATTN_FWD_ENTRY(attention_fwd_d64_w4s2m4, 4, 2, 4)
ATTN_FWD_ENTRY(attention_fwd_d64_w4s2m5, 4, 2, 5)
ATTN_FWD_ENTRY(attention_fwd_d64_w4s3m4, 4, 3, 4)
ATTN_FWD_ENTRY(attention_fwd_d64_w4s4m3, 4, 4, 3)

extern "C" __global__ void __launch_bounds__(128, ATTN_MINB_FWD128)
attention_fwd_d128(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int B, int T, int H, int KV,
                   int D) {
    if (D != 128) return;
    attn_fwd_mma<128>(out, lse, q, k, v, B, T, H, KV);
}

extern "C" __global__ void __launch_bounds__(128)
attention_fwd(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int B, int T, int H, int KV,
              int D) {
    if (D > 32 * GEN_MAXE) return;
    attn_fwd_generic(out, lse, q, k, v, B, T, H, KV, D);
}

// rpw rows per warp: 1 (any D: lane l sums dims l, l+32, ...) or 256 / D for
// D in {8, 16, ..., 256} with 16-byte aligned dout and out (the host checks):
// D / 8 lanes per row, 16-byte loads, a butterfly within each lane group.
extern "C" __global__ void attention_bwd_delta(float* delta, const bf16* dout, const bf16* out, int B, int T, int H,
                                               int D, int rpw) {
    const int lane = threadIdx.x & 31;
    const long rows = (long)B * H * T;
    const long wid = (long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (rpw == 1) {
        const long row = wid;
        if (row >= rows) return;  // warp-uniform
        const long t = row % T, bh = row / T;
        const long b = bh / H, h = bh % H;
        const long off = (b * T + t) * ((long)H * D) + h * D;
        float s = 0.0f;
        for (int d = lane; d < D; d += 32) s += __bfloat162float(dout[off + d]) * __bfloat162float(out[off + d]);
        s = warp_sum(s);
        if (lane == 0) delta[row] = s;
        return;
    }
    const int L = 32 / rpw;  // lanes per row, D == 8 * L
    const long row = wid * rpw + lane / L;
    const int sub = lane % L;
    float s = 0.0f;
    if (row < rows) {
        const long t = row % T, bh = row / T;
        const long b = bh / H, h = bh % H;
        const long off = (b * T + t) * ((long)H * D) + h * D + sub * 8;
        float a[8], c[8];
        load8(dout, off, a);
        load8(out, off, c);
#pragma unroll
        for (int e = 0; e < 8; ++e) s += a[e] * c[e];
    }
    for (int o = L >> 1; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (row < rows && sub == 0) delta[row] = s;
}

extern "C" __global__ void __launch_bounds__(128, ATTN_MINB_BWD64)
attention_bwd_d64_v1(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                     const bf16* out, const float* lse, float* scratch, int B, int T, int H, int KV, int D) {
    if (D != 64) return;
    attn_bwd_mma<64>(dq, dk, dv, dout, q, k, v, lse, scratch, B, T, H, KV);
}

// Backward: attention_bwd_d64_w<W>s<S>m<M>q<Q>, Q the query rows of a dk/dv
// step (64: half the steps and barriers, twice the score registers).
#define ATTN_BWD_ENTRY(NAME, W, S, M, Q)                                                                        \
    extern "C" __global__ void __launch_bounds__(32 * W, M) NAME(                                               \
        bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,            \
        const bf16* out, const float* lse, float* scratch, int B, int T, int H, int KV, int D) {                \
        if (D != 64) return;                                                                                    \
        attn_bwd3<64, W, S, Q>(dq, dk, dv, dout, q, k, v, lse, scratch, B, T, H, KV);                           \
    }
ATTN_BWD_ENTRY(attention_bwd_d64_w4s2m4q32, 4, 2, 4, 32)
ATTN_BWD_ENTRY(attention_bwd_d64_w4s2m3q32, 4, 2, 3, 32)
ATTN_BWD_ENTRY(attention_bwd_d64_w4s3m4q32, 4, 3, 4, 32)
ATTN_BWD_ENTRY(attention_bwd_d64_w4s3m3q32, 4, 3, 3, 32)
ATTN_BWD_ENTRY(attention_bwd_d64_w8s2m2q32, 8, 2, 2, 32)
ATTN_BWD_ENTRY(attention_bwd_d64_w8s3m2q32, 8, 3, 2, 32)
ATTN_BWD_ENTRY(attention_bwd_d64_w4s2m3q64, 4, 2, 3, 64)
ATTN_BWD_ENTRY(attention_bwd_d64_w4s3m3q64, 4, 3, 3, 64)

extern "C" __global__ void __launch_bounds__(128, ATTN_MINB_BWD128)
attention_bwd_d128(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                   const bf16* out, const float* lse, float* scratch, int B, int T, int H, int KV, int D) {
    if (D != 128) return;
    attn_bwd_mma<128>(dq, dk, dv, dout, q, k, v, lse, scratch, B, T, H, KV);
}

extern "C" __global__ void __launch_bounds__(128)
attention_bwd(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
              const bf16* out, const float* lse, float* scratch, int B, int T, int H, int KV, int D) {
    if (D > 32 * GEN_MAXE) return;
    attn_bwd_generic(dq, dk, dv, dout, q, k, v, lse, scratch, B, T, H, KV, D);
}
