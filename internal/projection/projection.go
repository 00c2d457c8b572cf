package projection

import (
	"fmt"
	"math"
)

// Kind is the distribution of P's entries.
type Kind int

const (
	Gaussian Kind = iota
	Rademacher
)

// ParseKind maps a config value to a Kind.
func ParseKind(s string) (Kind, error) {
	switch s {
	case "gaussian":
		return Gaussian, nil
	case "rademacher":
		return Rademacher, nil
	}
	return 0, fmt.Errorf("unknown projection kind %q (want gaussian or rademacher)", s)
}

func (k Kind) String() string {
	if k == Rademacher {
		return "rademacher"
	}
	return "gaussian"
}

// Stream numbers name the projection groups of one layer. With sharing, the
// q/k/v projections read one P (GroupQKV) and gate/up another (GroupGateUp);
// without sharing each projection has its own.
const (
	GroupQKV = iota
	GroupGateUp
	GroupDown
	GroupQ
	GroupK
	GroupV
	GroupGate
	GroupUp
	groupsPerLayer = 8
)

// GroupHead is the LM head's projection group (compact.head): its layer
// index is num_layers, one past the last block, so its stream is new and
// the blocks' streams are unchanged.
const GroupHead = GroupQKV

// GroupO is o_proj's projection group (compact.layers with o). The eight
// streams of a layer were all taken before o_proj could be compressed, so
// its streams live apart, one per layer from oStreamBase on (above
// layer*8 + group of any model below 2^28 layers): every other stream keeps
// its number, and a run without o its bits.
const GroupO = groupsPerLayer

const oStreamBase = 1 << 31

// StreamID returns the generator stream of a layer's projection group.
func StreamID(layer, group int) uint32 {
	if group == GroupO {
		return oStreamBase + uint32(layer)
	}
	return uint32(layer*groupsPerLayer + group)
}

// Epoch is the resampling epoch of 1-based optimizer step `step`: P changes
// every updateGap steps and stays fixed for all micro-batches of one step.
func Epoch(step, updateGap int) uint32 {
	if updateGap <= 0 || step < 1 {
		return 0
	}
	return uint32((step - 1) / updateGap)
}

// Fill writes P (n x r, row-major) for (seed, stream, epoch) into dst as
// float64, the exact reference. Elements are produced four at a time.
func Fill(dst []float64, n, r int, kind Kind, seed uint64, stream, epoch uint32) {
	if len(dst) != n*r {
		panic(fmt.Sprintf("projection: dst has %d elements, want %d", len(dst), n*r))
	}
	key := [2]uint32{uint32(seed), uint32(seed >> 32)}
	scale := 1 / math.Sqrt(float64(r))
	for block := 0; block*4 < len(dst); block++ {
		x := Philox4x32([4]uint32{uint32(block), stream, epoch, CounterTag}, key)
		var v [4]float64
		if kind == Rademacher {
			for lane := range v {
				v[lane] = scale
				if x[lane]&1 == 1 {
					v[lane] = -scale
				}
			}
		} else {
			for p := 0; p < 2; p++ {
				u1 := (float64(x[2*p]) + 1) * 0x1p-32
				u2 := float64(x[2*p+1]) * 0x1p-32
				rad := math.Sqrt(-2*math.Log(u1)) * scale
				s, c := math.Sincos(2 * math.Pi * u2)
				v[2*p], v[2*p+1] = rad*c, rad*s
			}
		}
		for lane := 0; lane < 4 && block*4+lane < len(dst); lane++ {
			dst[block*4+lane] = v[lane]
		}
	}
}

// Fill32 is Fill rounded to float32.
func Fill32(dst []float32, n, r int, kind Kind, seed uint64, stream, epoch uint32) {
	tmp := make([]float64, len(dst))
	Fill(tmp, n, r, kind, seed, stream, epoch)
	for i, v := range tmp {
		dst[i] = float32(v)
	}
}

// Rank resolves a configured rank for a layer of input width n: a value in
// (0,1) is a fraction of n, rounded half to even as Python's round() in the
// CompAct code does; an integer of 2 or more is an absolute rank. 1 is
// refused: the CompAct code reads it as the full width, an absolute rank as 1.
func Rank(rank float64, n int) (int, error) {
	var r int
	switch {
	case rank <= 0:
		return 0, fmt.Errorf("rank %g must be positive", rank)
	case rank == 1:
		return 0, fmt.Errorf("rank 1 is ambiguous (full width or rank 1): use a fraction below 1 or an absolute rank of 2 or more")
	case rank < 1:
		r = int(math.RoundToEven(rank * float64(n)))
		if r < 1 {
			r = 1
		}
	default:
		if rank != math.Trunc(rank) {
			return 0, fmt.Errorf("rank %g: an absolute rank must be an integer (use a value below 1 for a fraction)", rank)
		}
		r = int(rank)
	}
	if r > n {
		return 0, fmt.Errorf("rank %d exceeds the layer's input width %d", r, n)
	}
	return r, nil
}
