package config

// No setting is dropped silently (issue 19). A setting that contradicts
// another is refused before any work by Validate, naming both keys (a
// UsageError: exit 2); a setting with nothing to act on in this run is
// reported when the run starts, with what runs instead, and recorded in
// every checkpoint's trainer_state.json (internal/train/notices.go).
// Settings that only mean something in some runs and say so in their name
// or documentation
// (train.zero and train.overlap_comm outside a data-parallel job, compact.*
// with compact.enabled false, train.cuda_graph auto on a backend without
// graphs) stay quiet where they do not apply.

import "fmt"

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
