package train

// No setting is dropped silently (issue 19). A setting that contradicts
// another is refused before any work, naming both keys (a UsageError: exit
// 2); a setting with nothing to act on in this run is reported when the run
// starts, with what runs instead, and recorded in every checkpoint's
// trainer_state.json (TrainerState.Notices). Settings that only mean
// something in some runs and say so in their name or documentation
// (train.zero and train.overlap_comm outside a data-parallel job, compact.*
// with compact.enabled false, train.cuda_graph auto on a backend without
// graphs) stay quiet where they do not apply.

import (
	"fmt"

	"github.com/compact-llm/compact/internal/gpu"
)

// checkApplies refuses settings that another setting makes impossible.
func (c Config) checkApplies() error {
	if c.Compact.Enabled && c.Compact.Head {
		switch {
		case c.Model.TieEmbeddings:
			return fmt.Errorf("compact.head = true: model.tie_embeddings = true makes the LM head the embedding, which trains at full rank; set compact.head = false or untie the head")
		case c.Finetune.Task == TaskClassify:
			return fmt.Errorf("compact.head = true: finetune.task = %s replaces the LM head by a classifier's score head, which trains at full rank; set compact.head = false", TaskClassify)
		}
	}
	return nil
}

// runNotices are the settings of cfg that have nothing to act on in a run
// of world ranks on be, each with what runs instead.
func runNotices(cfg Config, be gpu.Backend, world int) []string {
	var out []string
	t := cfg.Train
	if world > 1 && t.OverlapComm && !t.FusedUpdate {
		out = append(out, "train.overlap_comm = true overlaps the per-block reductions of train.fused_update; this unfused job all-reduces the gradients after backward")
	}
	if t.CUDAGraph == GraphAuto {
		if _, graphs := be.(gpu.StepGrapher); graphs {
			if why := graphsBlocked(cfg, be, world > 1); why != nil {
				out = append(out, fmt.Sprintf("train.cuda_graph = auto: steps run eagerly (%v)", why))
			}
		}
	}
	if t.LossChunk != 0 && cfg.Finetune.Task == TaskClassify {
		out = append(out, fmt.Sprintf("train.loss_chunk = %d chunks the LM head's logits; finetune.task = %s has a score head over the labels, whose loss is not chunked", t.LossChunk, TaskClassify))
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
