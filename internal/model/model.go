package model

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/projection"
)

// Recompute is the activation recomputation policy of the backward pass.
type Recompute int

const (
	RecomputeNone   Recompute = iota // save q,k,v, attention output and gate/up per layer
	RecomputeMLP                     // also recompute gate/up from the saved block state
	RecomputeQKVMLP                  // also recompute q,k,v (with RoPE); keep attention output and lse
	RecomputeBlock                   // save only each block's input; rerun the block in backward
)

// RecomputeNames are the config values of the policies, indexed by Recompute,
// from most memory to least (Prepare compares policies by this order).
var RecomputeNames = []string{RecomputeNone: "none", RecomputeMLP: "mlp", RecomputeQKVMLP: "qkv_mlp", RecomputeBlock: "block"}

// ParseRecompute maps a config value to a policy.
func ParseRecompute(s string) (Recompute, error) {
	if i := slices.Index(RecomputeNames, s); i >= 0 {
		return Recompute(i), nil
	}
	return 0, fmt.Errorf("unknown recompute policy %q (want one of %s)", s, strings.Join(RecomputeNames, ", "))
}

func (r Recompute) String() string { return RecomputeNames[r] }

// Param is one named weight with its gradient. A compressed param's Grad is
// the CompAct gradient G = do^T z of shape (rows, rank); its update is
// decompressed through the P of Group.
type Param struct {
	Name   string // HuggingFace name, e.g. model.layers.0.self_attn.q_proj.weight
	W      *gpu.Tensor
	Master *gpu.Tensor // Full copy of W that the optimizer updates; nil when W is Full already
	// Grad is the step's gradient, what the optimizer reads: Full, or Low
	// sums with Options.GradAccumBF16 (accum.go).
	Grad  *gpu.Tensor
	Group *Group // nil for full-rank params
	Layer int    // block index, -1 outside the blocks (num_layers for a compressed LM head: its projection stream)
	Scale float32
	Decay bool // decoupled weight decay applies (matrices only)
	// WOff and GradOff place the param in the weight arena and in the
	// gradient layout (which the optimizer's moments follow even when a
	// fused update keeps no gradient arena).
	WOff, GradOff int

	shape   []int       // of W in the engine (MLP width padded)
	hfShape []int       // of W outside: HuggingFace's
	class   updateClass // optimizer update it takes (arena order)
	gshape  []int       // of Grad (and of the pass gradient in scratch: fused.go)
	// passGrad is where a training pass's backward accumulates p's
	// gradient: Grad itself, or with bf16 sums an fp32 scratch that is
	// added into Grad once the pass has finished it (accum.go).
	passGrad *gpu.Tensor
}

// Compressed reports whether p is trained through CompAct.
func (p *Param) Compressed() bool { return p.Group != nil }

type block struct {
	attnNorm, mlpNorm *Param
	lin               [numLinear]*Param
}

// Options are the engine choices that do not change the model's function.
type Options struct {
	Compact   CompactConfig
	Recompute Recompute
	// LossChunk is the number of tokens whose logits are live at once in the
	// fused LM-head + cross-entropy; 0 picks about 64M logits per chunk.
	LossChunk int
	// NumLabels > 0 replaces the LM head by a sequence-classification head
	// score.weight (NumLabels x C, no bias) on the final hidden state of
	// each sequence's labelled position, as LlamaForSequenceClassification
	// does. Unlike the fields above it changes the model's function.
	NumLabels int
	// PadIntermediate rounds the MLP width up to a multiple of this inside
	// the engine (see pad.go); 0 picks 8 on backends with bf16 weights, 1
	// (none) elsewhere.
	PadIntermediate int
	// MasterFree keeps no fp32 master copy: the weights hold bf16 values on
	// every backend (the CPU stores them in float32) and the optimizer
	// rounds each update into them stochastically (masterfree.go).
	MasterFree bool
	// ShardMaster leaves the fp32 master copy unallocated until AllocMaster
	// gives it one range of the weight arena: a ZeRO-1 rank keeps the
	// master of the params it updates only (mastershard.go).
	ShardMaster bool
	// FusedUpdate: the optimizer updates each block (and the embeddings,
	// heads and final norm) from inside the training pass as soon as its
	// gradients are final, and without accumulation no gradient arena is
	// kept (fused.go).
	FusedUpdate bool
	// GradAccum is the number of micro-batches (training passes) whose
	// gradients a fused step sums: the update hook runs during the last
	// one's pass (fused.go). 0 or 1: every pass is a step.
	GradAccum int
	// GradAccumBF16 (with GradAccum > 1) keeps the gradient sums in bf16:
	// each micro-batch's gradients form in fp32 scratch and are added into
	// the Low arena with stochastic rounding keyed by GradAccumSeed
	// (accum.go). fp32 sums otherwise.
	GradAccumBF16 bool
	GradAccumSeed uint64
	// PipelinedUpdate (with FusedUpdate) lets the update hook keep a
	// group's gradients past its call, until its next call or the end of
	// the pass, so that their cross-rank reduction can run during the next
	// block's backward: consecutive blocks' gradients live in two buffers,
	// and the hook clears each group's gradients once done
	// with them (fused.go).
	PipelinedUpdate bool
}

// Model is a LLaMA decoder bound to a backend.
type Model struct {
	Cfg  Config
	Opts Options
	be   gpu.Backend
	plan compactPlan

	Params []*Param
	wte    *Param
	lmHead *Param // == wte when tied; nil for a classifier
	score  *Param // classification head; nil for a causal LM
	normF  *Param
	blocks []block

	acts  *activations
	arena arenas
	hook  UpdateHook // fused update: called with params whose gradients are final
	// updating is set once a fused pass has updated a group: from then on the
	// step can no longer be abandoned, so Stop is not polled until it ends.
	updating bool
	pass     int       // training forwards since ZeroGrads: a fused step updates in pass Opts.GradAccum
	step     uint32    // optimizer step the passes form gradients for (SetStep): bf16 sums' noise key
	projs    projCache // P of the projection groups (projcache.go)
	epoch    uint32    // projection epoch of the step being computed

	classLogits []float64 // (B, NumLabels) of the last evaluation forward

	// Stop, when set, is polled between blocks (and LM-head chunks) of a
	// training forward and backward; once it reports true they return
	// ErrInterrupted and the step's gradients are partial: the caller must
	// abandon the step. It keeps a SIGINT from waiting out a whole step
	// (minutes on the CPU for a large model).
	Stop func() bool
}

// ErrInterrupted is returned by ForwardDeferred and BackwardInterruptible
// when Stop reported true.
var ErrInterrupted = errors.New("step interrupted")

func (m *Model) stopped() bool { return !m.updating && m.Stop != nil && m.Stop() }

// New allocates the parameters and gradients of cfg on be, zeroed.
func New(be gpu.Backend, cfg Config, opts Options) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.NumLabels < 0 {
		return nil, fmt.Errorf("num_labels = %d: must not be negative", opts.NumLabels)
	}
	if opts.PadIntermediate == 0 {
		opts.PadIntermediate = 1
		if be.MasterWeights() {
			opts.PadIntermediate = 8
		}
	}
	plan, err := opts.Compact.plan(cfg, opts.PadIntermediate)
	if err != nil {
		return nil, err
	}
	if opts.GradAccumBF16 && opts.PipelinedUpdate {
		// The pipelined hook reads a group's gradients after its call, which
		// bf16 sums have already added in and cleared (accum.go).
		return nil, fmt.Errorf("bf16 gradient sums with a pipelined update: not supported")
	}
	if cfg.TieEmbeddings || opts.NumLabels > 0 {
		plan.head = nil // compact.head concerns an untied LM head only
	}
	m := &Model{Cfg: cfg, Opts: opts, be: be, plan: plan}
	alpha := float32(opts.Compact.Alpha)
	// add declares a parameter; allocArenas gives it storage afterwards.
	add := func(name string, layer int, group *Group, scale float32, decay bool, shape ...int) (*Param, error) {
		p := &Param{Name: name, Group: group, Layer: layer, Scale: scale, Decay: decay, shape: shape, hfShape: shape}
		m.Params = append(m.Params, p)
		return p, nil
	}
	C, F, KV := cfg.Hidden, m.ffn(), cfg.KVWidth()
	if m.wte, err = add(hfEmbed, -1, nil, 1, true, cfg.VocabSize, C); err != nil {
		return nil, err
	}
	outDims := [numLinear][2]int{{C, C}, {KV, C}, {KV, C}, {C, C}, {F, C}, {F, C}, {C, F}}
	m.blocks = make([]block, cfg.Layers)
	for l := range m.blocks {
		b := &m.blocks[l]
		if b.attnNorm, err = add(hfLayer(l, hfAttnNorm), l, nil, 1, false, C); err != nil {
			return nil, err
		}
		for li := linear(0); li < numLinear; li++ {
			var group *Group
			scale := float32(1)
			if gi := plan.groupOf[li]; gi >= 0 {
				group, scale = &m.plan.groups[gi], alpha
			} else if li == linO && opts.Compact.Enabled {
				scale = float32(opts.Compact.OProjScale) * alpha
			}
			if li == linGate { // HF order: attention weights, post_attention_layernorm, mlp
				if b.mlpNorm, err = add(hfLayer(l, hfMLPNorm), l, nil, 1, false, C); err != nil {
					return nil, err
				}
			}
			if b.lin[li], err = add(hfLinear(l, li), l, group, scale, true, outDims[li][0], outDims[li][1]); err != nil {
				return nil, err
			}
			if hf := cfg.Intermediate; F != hf { // the padding is the engine's, not the model's
				switch li {
				case linGate, linUp:
					b.lin[li].hfShape = []int{hf, C}
				case linDown:
					b.lin[li].hfShape = []int{C, hf}
				}
			}
		}
	}
	if m.normF, err = add(hfNorm, -1, nil, 1, false, C); err != nil {
		return nil, err
	}
	if err = m.allocProjections(); err != nil {
		return nil, err
	}
	switch {
	case opts.NumLabels > 0:
		// transformers' LlamaForSequenceClassification has no LM head.
		if m.score, err = add(hfScore, -1, nil, 1, true, opts.NumLabels, C); err != nil {
			return nil, err
		}
	case cfg.TieEmbeddings:
		m.lmHead = m.wte
	default:
		layer, scale := -1, float32(1)
		if m.plan.head != nil {
			layer, scale = cfg.Layers, alpha
		}
		if m.lmHead, err = add(hfLMHead, layer, m.plan.head, scale, true, cfg.VocabSize, C); err != nil {
			return nil, err
		}
	}
	if err := m.allocArenas(); err != nil {
		m.Free()
		return nil, err
	}
	return m, nil
}

// Backend returns the backend the model lives on.
func (m *Model) Backend() gpu.Backend { return m.be }

// Groups lists the projection groups of one layer (the same for every layer).
func (m *Model) Groups() []Group { return m.plan.groups }

// ProjectionKind is the distribution of P.
func (m *Model) ProjectionKind() projection.Kind { return m.plan.kind }

// SetEpoch selects the projection epoch used by the next forward passes.
func (m *Model) SetEpoch(epoch uint32) { m.epoch = epoch }

// Stream returns the generator stream of group g in layer l.
func (m *Model) Stream(l int, g *Group) gpu.ProjectionStream {
	return gpu.ProjectionStream{Seed: m.Opts.Compact.Seed, Stream: projection.StreamID(l, g.ID),
		Epoch: m.epoch, Kind: gpu.ProjectionKind(m.plan.kind), Rank: g.Rank}
}

// Init fills the weights as HuggingFace's LlamaForCausalLM does: matrices
// from N(0, init_std^2), norm weights 1. Each parameter draws from its own
// stream of (seed, index), so parameters are filled in parallel and the
// result is deterministic in seed.
func (m *Model) Init(seed uint64) error {
	bufs := make([][]float32, len(m.Params))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, p := range m.Params {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			buf := make([]float32, numel(p.hfShape))
			if len(p.W.Shape) == 1 {
				for j := range buf {
					buf[j] = 1
				}
			} else {
				rng := rand.New(rand.NewPCG(seed, uint64(i)))
				for j := range buf {
					buf[j] = float32(rng.NormFloat64() * m.Cfg.InitStd)
				}
			}
			bufs[i] = padOut(buf, p.hfShape, p.shape)
		}()
	}
	wg.Wait()
	for i, p := range m.Params {
		m.roundWeights(bufs[i])
		if err := m.be.Upload(p.updatable(), bufs[i]); err != nil {
			return fmt.Errorf("init %s: %w", p.Name, err)
		}
		bufs[i] = nil
	}
	return m.SyncWeights()
}

// ZeroGrads clears every gradient before a step's first micro-batch.
func (m *Model) ZeroGrads() {
	m.pass = 0
	for _, t := range []*gpu.Tensor{m.arena.grad, m.arena.blockGrad, m.arena.blockGrad2, m.arena.outerGrad} {
		if t != nil {
			m.be.Zero(t)
		}
	}
}

// Param returns the parameter with the given HuggingFace name, or nil.
func (m *Model) Param(name string) *Param {
	for _, p := range m.Params {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Free releases the parameters and activations.
func (m *Model) Free() {
	m.freeActivations()
	for _, t := range []*gpu.Tensor{m.arena.w, m.arena.grad, m.arena.master, m.arena.blockGrad, m.arena.blockGrad2, m.arena.outerGrad} {
		if t != nil {
			m.be.Free(t)
		}
	}
	m.Params = nil
	if m.projs.buf != nil {
		m.be.Free(m.projs.buf)
	}
}

// SyncWeights rounds the master copies into the Low weights after an update
// or a load: one conversion over the whole arena (over the master's range
// when it is sharded).
func (m *Model) SyncWeights() error {
	if m.arena.master == nil {
		return nil
	}
	lo := m.arena.masterBase
	return m.be.Copy(m.arena.w.Rows(lo, lo+m.arena.master.Len()), m.arena.master)
}

// updatable is the tensor an update or a load changes: the master copy
// when there is one, else W.
func (p *Param) updatable() *gpu.Tensor {
	if p.Master != nil {
		return p.Master
	}
	return p.W
}
