//go:build linux && (amd64 || arm64)

package cuda

import "github.com/compact-llm/compact/internal/gpu"

// csrc/rmsnorm.cu: RMSNorm forward (8 rows per block) and backward (dx by
// rows; dw in two passes over row parts, see rmsNormParts).
type rmsnormKernels struct {
	fwd       rmsnormFwd
	bwdDx     rmsnormBwdDx
	dwPartial rmsnormDwPartial
	dwFinish  rmsnormDwFinish
}

func (k *rmsnormKernels) bindings() []binding {
	return []binding{
		{"rmsnorm_fwd", &k.fwd.kernel, 256},
		{"rmsnorm_bwd_dx", &k.bwdDx.kernel, 256},
		{"rmsnorm_bwd_dw_partial", &k.dwPartial.kernel, 256},
		{"rmsnorm_bwd_dw_finish", &k.dwFinish.kernel, 256},
	}
}

// rowsPerBlock is the rows one 256-thread block of rmsnorm_fwd and
// rmsnorm_bwd_dx handles (a warp per row).
const rowsPerBlock = 8

type rmsnormFwd struct{ kernel }

func (k rmsnormFwd) launch(out devPtr[bf16], rstd devPtr[float32], x, w devPtr[bf16], N, C int32, eps float32) {
	k.run(blocks(int((N+rowsPerBlock-1)/rowsPerBlock)), 0, out.arg(), rstd.arg(), x.arg(), w.arg(), argI32(N), argI32(C), argF32(eps))
}

type rmsnormBwdDx struct{ kernel }

func (k rmsnormBwdDx) launch(dx, dout, x, w devPtr[bf16], rstd devPtr[float32], N, C int32) {
	k.run(blocks(int((N+rowsPerBlock-1)/rowsPerBlock)), 0, dx.arg(), dout.arg(), x.arg(), w.arg(), rstd.arg(), argI32(N), argI32(C))
}

// rmsnormDwPartial runs a (32-column tile, row part) grid.
type rmsnormDwPartial struct{ kernel }

func (k rmsnormDwPartial) launch(partial devPtr[float32], dout, x devPtr[bf16], rstd devPtr[float32], N, C, parts int32) {
	grid := dim3{uint32((C + 31) / 32), uint32(parts), 1}
	k.run(grid, 0, partial.arg(), dout.arg(), x.arg(), rstd.arg(), argI32(N), argI32(C))
}

// rmsnormDwFinish runs one thread per column.
type rmsnormDwFinish struct{ kernel }

func (k rmsnormDwFinish) launch(dw, partial devPtr[float32], parts, C int32) {
	k.run(blocks(int((C+int32(k.block)-1)/int32(k.block))), 0, dw.arg(), partial.arg(), argI32(parts), argI32(C))
}

func (c *Backend) RMSNorm(out, rstd, x, w *gpu.Tensor, eps float32) {
	N, C := rowsOf(x)
	c.k.rmsnorm.fwd.launch(low(out), fullOrNil(rstd), low(x), low(w), i32(N), i32(C), eps)
}

func (c *Backend) RMSNormBackward(dx, dw, dout, x, w, rstd *gpu.Tensor) {
	N, C := rowsOf(x)
	c.k.rmsnorm.bwdDx.launch(low(dx), low(dout), low(x), low(w), full(rstd), i32(N), i32(C))
	parts := rmsNormParts(N)
	scratch := c.scratchFloats(int64(parts * C))
	c.k.rmsnorm.dwPartial.launch(scratch, low(dout), low(x), full(rstd), i32(N), i32(C), i32(parts))
	c.k.rmsnorm.dwFinish.launch(full(dw), scratch, i32(parts), i32(C))
}
