package evaluate

import (
	"fmt"
	"io"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/data"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/train"
)

// SampleOptions control generation.
type SampleOptions = train.SampleOptions

// Sample generates from checkpoint b, writing the prompt and each new
// token's text to out as it comes. Generation stops at the end-of-text
// token or after MaxTokens; past the model's max_position_embeddings the
// context slides (its last half is read again and generation continues).
func Sample(b config.Base, cfg config.Config, so SampleOptions, out, log io.Writer) error {
	switch {
	case so.MaxTokens <= 0:
		return config.Usagef("--max-tokens %d: must be positive", so.MaxTokens)
	case so.Temperature < 0:
		return config.Usagef("--temperature %g: must not be negative", so.Temperature)
	case so.TopK < 0:
		return config.Usagef("--top-k %d: must not be negative", so.TopK)
	case so.TopP <= 0 || so.TopP > 1:
		return config.Usagef("--top-p %g: must be in (0, 1]", so.TopP)
	}
	if cfg.Finetune.NumLabels > 0 {
		return config.Usagef("%s is a sequence classifier: it has no LM head to sample from", b.Dir)
	}
	logf := logTo(log)
	tok, err := data.NewTokenizer(cfg.Data.Tokenizer)
	if err != nil {
		return config.Usagef("data.tokenizer: %w", err)
	}
	if tok.VocabSize() > cfg.Model.VocabSize {
		return config.Usagef("data.tokenizer %s has %d tokens, more than the model's vocab_size %d", cfg.Data.Tokenizer, tok.VocabSize(), cfg.Model.VocabSize)
	}
	c, err := load(b, cfg, logf)
	if err != nil {
		return err
	}
	defer c.close()
	var prompt []int32
	for _, id := range tok.Encode(so.Prompt) {
		prompt = append(prompt, int32(id))
	}
	if len(prompt) == 0 {
		prompt = []int32{int32(tok.EOT())} // condition on a document boundary, as GPT-2 does
	}
	window := cfg.Model.MaxSeqLen
	if len(prompt) >= window {
		return config.Usagef("the prompt has %d tokens, the model at most %d positions", len(prompt), window)
	}
	if len(prompt)+so.MaxTokens > window {
		logf("--max-tokens %d: past the model's %d positions (max_position_embeddings) the context slides: each time it fills, generation continues from its last %d tokens",
			so.MaxTokens, window, window/2)
	}
	if _, ok := c.be.(gpu.Decoder); !ok {
		return config.Usagef("sample --device %s: the %s backend has no KV-cache decoding yet (use --device cpu)", cfg.Train.Device, c.be.Name())
	}
	fmt.Fprint(out, so.Prompt)
	err = train.Generate(c.model, tok, prompt, so, func(id uint32) { fmt.Fprint(out, tok.Decode([]uint32{id})) })
	fmt.Fprintln(out)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", b.Dir, err)
	}
	return nil
}
