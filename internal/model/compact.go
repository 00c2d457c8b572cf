package model

import (
	"fmt"
	"slices"

	"github.com/compact-llm/compact/internal/projection"
)

// CompactConfig configures CompAct (SPEC section 5).
type CompactConfig struct {
	Enabled bool     `mapstructure:"enabled"`
	Rank    float64  `mapstructure:"rank"`   // < 1: fraction of the layer's input width; >= 1: absolute
	Layers  []string `mapstructure:"layers"` // subset of CompressibleLayers (default DefaultLayers)
	Share   bool     `mapstructure:"share"`  // q/k/v and gate/up share one P and one saved z
	// Head also compresses an untied LM head (not in the paper, which
	// compresses the blocks' linears only): its gradient and Adam moments
	// become vocab x r instead of vocab x hidden. A tied head or a
	// classifier has none to compress (train's config refuses the pair).
	Head       bool    `mapstructure:"head"`
	Projection string  `mapstructure:"projection"`   // gaussian | rademacher
	UpdateGap  int     `mapstructure:"update_gap"`   // optimizer steps between resampling P
	Alpha      float64 `mapstructure:"alpha"`        // scale of the compressed update
	OProjScale float64 `mapstructure:"o_proj_scale"` // a full-rank o_proj's update scale, as a multiple of alpha
	Seed       uint64  `mapstructure:"seed"`
	Eps        float64 `mapstructure:"eps"` // Adam epsilon of the compressed moments
	// LR is the peak learning rate of a run with CompAct on (0: train.lr),
	// so one config holds both recipes; the trainer reads it, not the model.
	LR float64 `mapstructure:"lr"`
}

// Check validates cc against the model without allocating anything.
func (cc CompactConfig) Check(c Config) error {
	_, err := cc.plan(c, 1)
	return err
}

// CompressibleLayers are the linear layers CompAct may compress (the
// values of compact.layers).
var CompressibleLayers = []string{"q", "k", "v", "o", "gate", "up", "down"}

// DefaultLayers are the layers compressed by default, the paper's: all but
// o_proj, whose input (the attention output) attention's backward keeps
// anyway, so compressing it saves no activation, only its gradient and
// moments (m x r instead of m x n) and, data parallel, their reduction.
// Its compressed gradient G = dout^T (att P) is formed in backward from
// the kept attention output (backward.go), so no z is saved for it.
var DefaultLayers = []string{"q", "k", "v", "gate", "up", "down"}

// linear identifies one of the seven linear layers of a block.
type linear int

const (
	linQ linear = iota
	linK
	linV
	linO
	linGate
	linUp
	linDown
	numLinear
)

var linearNames = [numLinear]string{"q", "k", "v", "o", "gate", "up", "down"}

// Group is one projection of a layer: the P (n x r) and the saved z = x P
// shared by the linears that read the same input.
type Group struct {
	ID    int // projection.Group* constant
	Width int // input width n in the engine (down's: the padded MLP width)
	// Rank is the logical r: P's variance 1/r, its generator's element
	// index i*r + j, and every r-space tensor's shape outside the engine.
	Rank int
	// Cols is the engine's storage width of r-space tensors (P, z, the
	// compressed gradient, its moments and Adam direction): Rank rounded up
	// to Options.PadIntermediate (rankpad.go); columns Rank.. are zero.
	Cols  int
	Users []linear
}

// compactPlan is CompactConfig resolved against a model: which linear reads
// which group (-1: not compressed).
type compactPlan struct {
	groups  []Group
	groupOf [numLinear]int
	kind    projection.Kind
	head    *Group // the LM head's projection (compact.head); nil when off
}

// plan resolves cc; the MLP width is padded to a multiple of pad in the
// engine, so down's P has that many rows while its rank follows the model's
// width (P's first rows do not depend on the padding). Each group's rank is
// stored padded to a multiple of pad as well (rankpad.go).
func (cc CompactConfig) plan(c Config, pad int) (compactPlan, error) {
	var p compactPlan
	for i := range p.groupOf {
		p.groupOf[i] = -1
	}
	if !cc.Enabled {
		return p, nil
	}
	kind, err := projection.ParseKind(cc.Projection)
	if err != nil {
		return p, fmt.Errorf("compact.projection: %w", err)
	}
	p.kind = kind
	if cc.UpdateGap <= 0 {
		return p, fmt.Errorf("compact.update_gap = %d: must be positive", cc.UpdateGap)
	}
	if cc.Alpha <= 0 {
		return p, fmt.Errorf("compact.alpha = %g: must be positive", cc.Alpha)
	}
	if cc.Eps <= 0 {
		return p, fmt.Errorf("compact.eps = %g: must be positive", cc.Eps)
	}
	if cc.LR < 0 {
		return p, fmt.Errorf("compact.lr = %g: must not be negative (0 uses train.lr)", cc.LR)
	}
	if cc.Rank == 1 {
		// The official code reads rank 1 as the full width, our absolute
		// ranks would read it as rank 1: refuse to guess.
		return p, fmt.Errorf("compact.rank = 1 is ambiguous (full width, as the CompAct code reads it, or rank 1?): give a fraction below 1 (0.5, 0.25, 0.125) or an absolute rank of 2 or more; a full-width projection saves nothing, so for no compression set compact.enabled=false")
	}
	if cc.OProjScale < 0 {
		return p, fmt.Errorf("compact.o_proj_scale = %g: must not be negative", cc.OProjScale)
	}
	if len(cc.Layers) == 0 {
		return p, fmt.Errorf("compact.layers is empty: name some of %v or set compact.enabled=false", CompressibleLayers)
	}
	for _, name := range cc.Layers {
		if !slices.Contains(CompressibleLayers, name) {
			return p, fmt.Errorf("compact.layers: %q is not one of %v", name, CompressibleLayers)
		}
	}
	if slices.Contains(cc.Layers, linearNames[linO]) && cc.OProjScale != 1 {
		// o_proj_scale corrects a full-rank layer's update among the
		// compressed ones (N is then the full Adam direction, not N P^T);
		// a compressed o_proj's update is like every compressed layer's.
		return p, fmt.Errorf("compact.o_proj_scale = %g scales a full-rank o_proj's update; compact.layers has o, so o_proj is compressed and its update takes compact.alpha like the other compressed layers: set compact.o_proj_scale = 1 or take o out of compact.layers", cc.OProjScale)
	}
	add := func(id, width, rows int, users ...linear) error {
		var in []linear
		for _, u := range users {
			if slices.Contains(cc.Layers, linearNames[u]) {
				in = append(in, u)
			}
		}
		if len(in) == 0 {
			return nil
		}
		r, err := projection.Rank(cc.Rank, width)
		if err != nil {
			return fmt.Errorf("compact.rank for %s_proj: %w", linearNames[in[0]], err)
		}
		for _, u := range in {
			p.groupOf[u] = len(p.groups)
		}
		p.groups = append(p.groups, Group{ID: id, Width: rows, Rank: r, Cols: padRank(r, rows, pad), Users: in})
		return nil
	}
	C, F := c.Hidden, c.Intermediate
	type spec struct {
		id    int
		width int
		users []linear
	}
	var specs []spec
	if cc.Share {
		specs = []spec{{projection.GroupQKV, C, []linear{linQ, linK, linV}},
			{projection.GroupGateUp, C, []linear{linGate, linUp}}}
	} else {
		specs = []spec{{projection.GroupQ, C, []linear{linQ}}, {projection.GroupK, C, []linear{linK}},
			{projection.GroupV, C, []linear{linV}}, {projection.GroupGate, C, []linear{linGate}},
			{projection.GroupUp, C, []linear{linUp}}}
	}
	if cc.Head {
		r, err := projection.Rank(cc.Rank, C)
		if err != nil {
			return p, fmt.Errorf("compact.rank for lm_head: %w", err)
		}
		p.head = &Group{ID: projection.GroupHead, Width: C, Rank: r, Cols: padRank(r, C, pad)}
	}
	specs = append(specs, spec{projection.GroupO, C, []linear{linO}}, spec{projection.GroupDown, F, []linear{linDown}})
	Fp := (F + pad - 1) / pad * pad
	for _, s := range specs {
		rows := s.width
		if s.id == projection.GroupDown {
			rows = Fp
		}
		if err := add(s.id, s.width, rows, s.users...); err != nil {
			return p, err
		}
	}
	return p, nil
}
