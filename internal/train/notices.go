package train

// The run's notices: settings that have nothing to act on in this run,
// reported when it starts with what runs instead and recorded in every
// checkpoint's trainer_state.json (TrainerState.Notices). Settings that
// contradict each other are refused before, by config.Validate
// (internal/config/applies.go, which says which settings stay quiet).

import (
	"fmt"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/gpu"
)

// runNotices are the settings of cfg that have nothing to act on in a run
// of world ranks on be, each with what runs instead.
func runNotices(cfg config.Config, be gpu.Backend, world int) []string {
	var out []string
	t := cfg.Train
	if world > 1 && t.OverlapComm && !t.FusedUpdate {
		out = append(out, "train.overlap_comm = true overlaps the per-block reductions of train.fused_update; this unfused job all-reduces the gradients after backward")
	}
	if t.CUDAGraph == config.GraphAuto {
		if _, graphs := be.(gpu.StepGrapher); graphs {
			if why := graphsBlocked(cfg, be, world > 1); why != nil {
				out = append(out, fmt.Sprintf("train.cuda_graph = auto: steps run eagerly (%v)", why))
			}
		}
	}
	if t.GradAccumState == config.StateBF16 && t.GradAccum == 1 {
		out = append(out, fmt.Sprintf("train.grad_accum_state = %s stores the sums of train.grad_accum > 1 micro-batches; with train.grad_accum = 1 nothing is summed: the gradients stay fp32", config.StateBF16))
	}
	if t.LossChunk != 0 && cfg.Finetune.Task == config.TaskClassify {
		out = append(out, fmt.Sprintf("train.loss_chunk = %d chunks the LM head's logits; finetune.task = %s has a score head over the labels, whose loss is not chunked", t.LossChunk, config.TaskClassify))
	}
	return out
}

// notice reports the run's notices and records them in its state.
func (t *Trainer) notice(notices []string) {
	t.state.Notices = notices
	for _, n := range notices {
		t.logf("notice: %s", n)
	}
}
