package model

// CompAct's rank is padded inside the engine for the same reason as the MLP
// width (pad.go): r = round(0.25*F) is 684 at llama-350m and 1365 at
// llama-1b, and a bf16 row of that many elements is not 16-byte aligned, so
// every GEMM with an (., r) operand (z = x P, G = dout^T z, N P^T) drops
// cuBLASLt to slow kernels. Every r-space tensor is therefore stored with
// Group.Cols columns, the rank rounded up to Options.PadIntermediate, and
// the model's math is unchanged:
//
//   - P's columns Rank.. are exactly zero (Backend.Projection writes them,
//     every call: an uncached P shares its buffer with other groups' shapes);
//     its columns below Rank are today's values (scale 1/sqrt(Rank), element
//     i*Rank + j of the stream), so z's first Rank columns are too;
//   - z = x P is then 0 in the padded columns, so the gradient G = dout^T z
//     is 0 there and adds nothing to the global norm;
//   - Adam on a zero gradient from zero moments keeps m = v = 0 (a bf16
//     moment rounds 0 to 0, stochastically or not) and gives the direction
//     Scale * 0 / (0 + Eps) = 0; weight decay acts on W, not on the
//     direction, and clipping scales 0 to 0;
//   - the update N P^T multiplies the padded columns of N by the zero
//     columns of P, so W gets nothing from them whatever N holds there.
//
// Outside the engine (checkpoints, ReadParam/WriteParam, ZeRO-1's gathered
// moments) r-space tensors have their logical (rows, Rank) shape, so files
// do not depend on the padding and load into either engine.

// padRank is the storage width of rank r in a projection of n rows: r
// rounded up to a multiple of pad, or r itself where that would reach n (a
// projection as wide as its input saves nothing; keep it exact).
func padRank(r, n, pad int) int {
	pad = max(1, pad)
	c := (r + pad - 1) / pad * pad
	if c >= n {
		return r
	}
	return c
}

// size is the number of elements P of g holds in the engine.
func (g *Group) size() int { return g.Width * g.Cols }

// rSpace reports whether shape, that of one of p's tensors, is the engine
// shape of an r-space tensor (compressed gradient, moment, direction) rather
// than of the weight. The two cannot be confused: Cols < Width whenever the
// rank is padded, and where it is not, Rank == Cols and the rule changes
// nothing.
func (p *Param) rSpace(shape []int) bool {
	g := p.Group
	return g != nil && g.Cols != g.Rank && len(shape) == 2 && shape[1] == g.Cols && len(p.shape) == 2 &&
		shape[1] != p.shape[1]
}
