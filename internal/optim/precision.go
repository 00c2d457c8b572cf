package optim

// Precision as data. How the weights and the moments are stored is a small
// descriptor (Precision) that New resolves once, in plan, into what the one
// update needs: the moments' storage, which stores the Adam kernel rounds,
// and how a compressed update lands in the weights. The kernels take the
// storage as operands (gpu.AdamUpdate), so no other code of this package
// looks at the precision.
//
// Why stochastic rounding for both bf16 moments: with beta2 = 0.999 an
// update changes v by 0.1%, below half a bf16 ulp (0.2-0.4%), so
// round-to-nearest would leave v frozen where SR keeps it unbiased; m is
// rounded the same way for one simple rule. 8-bit moments are not rounded
// stochastically: a block's scale follows its largest element, and the
// code's relative precision (1/16, gpu/quant8.go) is what bitsandbytes'
// 8-bit Adam trains with.

import (
	"fmt"
	"slices"
	"strings"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/model"
)

// State is the storage of Adam's moments (train.optimizer_state).
type State int

const (
	StateFP32 State = iota // fp32
	StateBF16              // bf16, stores rounded stochastically
	StateInt8              // 8-bit codes, one fp32 scale per gpu.QuantBlock elements
)

// StateNames are the train.optimizer_state values, indexed by State.
var StateNames = []string{StateFP32: "fp32", StateBF16: "bf16", StateInt8: "int8"}

func (s State) String() string { return StateNames[s] }

// ParseState maps a train.optimizer_state value to its State.
func ParseState(name string) (State, error) {
	if i := slices.Index(StateNames, name); i >= 0 {
		return State(i), nil
	}
	return 0, fmt.Errorf("unknown optimizer state %q (want one of %s)", name, strings.Join(StateNames, ", "))
}

// Precision says how the optimizer stores what it writes.
type Precision struct {
	// RoundWeights: the weights are bf16 without an fp32 master
	// (train.weights bf16_sr); every update is rounded into them
	// stochastically. The model must be built master-free.
	RoundWeights bool
	State        State
	Seed         uint64 // the key of the rounding noise (train.seed)
}

// Lean reports whether anything is rounded or quantized by arena element:
// the CPU then lays the model out as CUDA does (the MLP width and the rank
// padded to 8), so both round and quantize every element alike.
func (p Precision) Lean() bool { return p.RoundWeights || p.State != StateFP32 }

// plan is a Precision resolved into what the update does.
type plan struct {
	state gpu.Precision // of the moments' storage
	block int           // elements per scale: gpu.QuantBlock for 8-bit moments, else 1
	// fileDType is the safetensors dtype of the moments in checkpoints:
	// their storage's for fp32 and bf16 (lossless), F32 for 8-bit moments,
	// saved as the values they decode to (state.go).
	fileDType string
	// compressed lands a compressed param's update in its weights: in place
	// by the decompression GEMM's accumulate (fp32 weights), or through an
	// fp32 buffer that is rounded into bf16 ones (update.go).
	compressed func(o *Optimizer, p *model.Param, P *gpu.Tensor, hp gpu.AdamParams)
	// encode turns a param's moment values (engine layout) into what the
	// storage is uploaded from: the values (bf16 ones rounded to the
	// nearest, as a CUDA upload rounds them, so the CPU holds the same), or
	// 8-bit codes (as numbers) and their block scales. decode is the
	// inverse, from what a download gives. first: the first moment.
	encode       func(vals []float32, first bool) (data, scales []float32)
	decode       func(data, scales []float32, first bool) []float32
	roundWeights bool
}

// plan is the one switch over precision modes.
func (p Precision) plan() (plan, error) {
	pl := plan{block: 1, roundWeights: p.RoundWeights, compressed: (*Optimizer).compressedInPlace,
		encode: encodeAsIs, decode: decodeAsIs}
	if p.RoundWeights {
		pl.compressed = (*Optimizer).compressedRounded
	}
	switch p.State {
	case StateFP32:
		pl.state, pl.fileDType = gpu.Full, "F32"
	case StateBF16:
		pl.state, pl.fileDType, pl.encode = gpu.Low, "BF16", encodeBF16
	case StateInt8:
		pl.state, pl.fileDType, pl.block = gpu.Code8, "F32", gpu.QuantBlock
		pl.encode, pl.decode = encodeInt8, decodeInt8
	default:
		return plan{}, fmt.Errorf("optimizer: state precision %d", int(p.State))
	}
	return pl, nil
}

func encodeAsIs(vals []float32, _ bool) (data, scales []float32) { return vals, nil }

func decodeAsIs(data, _ []float32, _ bool) []float32 { return data }

func encodeBF16(vals []float32, _ bool) (data, scales []float32) {
	for i, x := range vals {
		vals[i] = gpu.BF16Nearest(x)
	}
	return vals, nil
}

func encodeInt8(vals []float32, first bool) (data, scales []float32) {
	codes, scales := make([]uint8, len(vals)), make([]float32, (len(vals)+gpu.QuantBlock-1)/gpu.QuantBlock)
	gpu.QuantizeBlocks(vals, codes, scales, first)
	data = make([]float32, len(codes))
	for i, c := range codes {
		data[i] = float32(c)
	}
	return data, scales
}

func decodeInt8(data, scales []float32, first bool) []float32 {
	for i, c := range data {
		data[i] = gpu.Dequantize8(uint8(c), scales[i/gpu.QuantBlock], first)
	}
	return data
}
