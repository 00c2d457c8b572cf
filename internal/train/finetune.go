package train

import (
	"context"

	"github.com/compact-llm/compact/internal/config"
)

// Finetune trains from the weights of opts.Base (or, with opts.Resume and a
// checkpoint in opts.Out, from that checkpoint).
func Finetune(ctx context.Context, cfg config.Config, opts RunOptions) error {
	if opts.Base == "" {
		return config.Usagef("--base DIR is required")
	}
	t, err := newTrainer(cfg, opts)
	if err != nil {
		return err
	}
	defer t.close()
	return t.dp.finish(t.adviseDivergence(t.run(ctx)))
}
