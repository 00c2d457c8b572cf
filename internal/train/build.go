package train

import (
	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/model"
	"github.com/compact-llm/compact/internal/optim"
)

// NewModel builds the model a config describes on be: the one place that
// turns the config's keys into model.Options, for training, evaluation,
// memory prediction and bench alike. The weights are not initialised.
func NewModel(be gpu.Backend, cfg config.Config) (*model.Model, error) {
	return newRankModel(be, cfg, optim.Shard{}, 1)
}

// newRankModel is NewModel for a rank of a data-parallel job of world
// ranks holding shard of the optimizer state: under ZeRO-1 its fp32 master,
// if any, waits for the optimizer to allocate its share, and a fused update
// overlapping the reduction with backward (train.overlap_comm) keeps two
// block gradient buffers.
func newRankModel(be gpu.Backend, cfg config.Config, shard optim.Shard, world int) (*model.Model, error) {
	rc, err := model.ParseRecompute(cfg.Train.Recompute)
	if err != nil {
		return nil, err
	}
	opts := model.Options{Compact: cfg.Compact, Recompute: rc, LossChunk: cfg.Train.LossChunk,
		NumLabels: cfg.Finetune.NumLabels, MasterFree: cfg.MasterFree(),
		// With accumulation the model keeps the gradient arena for the sums
		// and the hook updates during the last micro-batch (model/fused.go).
		FusedUpdate: cfg.Train.FusedUpdate, GradAccum: cfg.Train.GradAccum,
		GradAccumBF16: cfg.BF16GradSums(), GradAccumSeed: cfg.Train.Seed,
		ShardMaster: shard.World > 1}
	opts.PipelinedUpdate = opts.FusedUpdate && world > 1 && cfg.Train.OverlapComm
	if opts.GradAccumBF16 && world > 1 {
		// The ranks' sums would be reduced in bf16, rounded as the
		// collective rounds them: not the same bits on every backend.
		return nil, config.Usagef("train.grad_accum_state = %s: a data-parallel job (%d ranks) sums the gradients in fp32; set train.grad_accum_state = %s",
			config.StateBF16, world, config.StateFP32)
	}
	if cfg.Precision().Lean() || opts.GradAccumBF16 {
		// Rounding noise and 8-bit blocks are keyed by arena element: the
		// CPU pads the MLP as CUDA does, so both lay out (and round) every
		// element alike.
		opts.PadIntermediate = 8
	}
	return model.New(be, cfg.Model, opts)
}
