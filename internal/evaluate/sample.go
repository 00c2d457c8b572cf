package evaluate

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/compact-llm/compact/internal/data"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/train"
)

// SampleOptions control generation.
type SampleOptions struct {
	Prompt      string
	MaxTokens   int
	Temperature float64 // 0: greedy
	TopK        int     // 0: off
	TopP        float64 // 1: off
	Seed        uint64
}

// Sample generates from checkpoint b, writing the prompt and each new
// token's text to out as it comes. Generation stops at the end-of-text
// token or after MaxTokens; past the model's max_position_embeddings the
// context slides (its last half is read again and generation continues).
func Sample(b train.Base, cfg train.Config, so SampleOptions, out, log io.Writer) error {
	switch {
	case so.MaxTokens <= 0:
		return train.Usagef("--max-tokens %d: must be positive", so.MaxTokens)
	case so.Temperature < 0:
		return train.Usagef("--temperature %g: must not be negative", so.Temperature)
	case so.TopK < 0:
		return train.Usagef("--top-k %d: must not be negative", so.TopK)
	case so.TopP <= 0 || so.TopP > 1:
		return train.Usagef("--top-p %g: must be in (0, 1]", so.TopP)
	}
	if cfg.Finetune.NumLabels > 0 {
		return train.Usagef("%s is a sequence classifier: it has no LM head to sample from", b.Dir)
	}
	logf := logTo(log)
	tok, err := data.NewTokenizer(cfg.Data.Tokenizer)
	if err != nil {
		return train.Usagef("data.tokenizer: %w", err)
	}
	if tok.VocabSize() > cfg.Model.VocabSize {
		return train.Usagef("data.tokenizer %s has %d tokens, more than the model's vocab_size %d", cfg.Data.Tokenizer, tok.VocabSize(), cfg.Model.VocabSize)
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
		return train.Usagef("the prompt has %d tokens, the model at most %d positions", len(prompt), window)
	}
	maxT := min(window, len(prompt)+so.MaxTokens)
	if len(prompt)+so.MaxTokens > window {
		// As nanoGPT crops its context to block_size: past the model's
		// positions generation continues on the most recent tokens.
		logf("--max-tokens %d: past the model's %d positions (max_position_embeddings) the context slides: each time it fills, generation continues from its last %d tokens",
			so.MaxTokens, window, window/2)
	}
	cache, err := c.model.NewKVCache(1, maxT)
	if err != nil {
		if _, ok := c.be.(gpu.Decoder); !ok {
			return train.Usagef("sample --device %s: %w", cfg.Train.Device, err)
		}
		return err
	}
	defer cache.Free()
	feed := func(ids []int32) (logits []float64, err error) {
		for _, id := range ids {
			if logits, err = cache.Step([]int32{id}); err != nil {
				return nil, err
			}
		}
		return logits, nil
	}
	logits, err := feed(prompt)
	if err != nil {
		return err
	}
	fmt.Fprint(out, so.Prompt)
	rng := rand.New(rand.NewPCG(so.Seed, 0x5a3b1e))
	V := tok.VocabSize() // never sample the model's padding rows
	context := append([]int32(nil), prompt...)
	for n := 0; n < so.MaxTokens; n++ {
		id := pick(logits[:V], so, rng)
		if uint32(id) == tok.EOT() {
			break
		}
		fmt.Fprint(out, tok.Decode([]uint32{uint32(id)}))
		if n == so.MaxTokens-1 {
			break
		}
		context = append(context, int32(id))
		if cache.Len == cache.MaxT { // full: restart from the context's last half
			context = context[len(context)-max(cache.MaxT/2, 1):]
			cache.Len = 0
			logits, err = feed(context)
		} else {
			logits, err = cache.Step([]int32{int32(id)})
		}
		if err != nil {
			return err
		}
	}
	fmt.Fprintln(out)
	return nil
}

// pick draws a token from softmax(logits / T), restricted to the top k and
// then to the smallest set whose probability reaches top_p; T = 0 is argmax.
func pick(logits []float64, so SampleOptions, rng *rand.Rand) int {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	if so.Temperature == 0 {
		return best
	}
	idx := make([]int, len(logits))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return logits[idx[a]] > logits[idx[b]] })
	if so.TopK > 0 && so.TopK < len(idx) {
		idx = idx[:so.TopK]
	}
	p := make([]float64, len(idx))
	var sum float64
	for i, j := range idx {
		p[i] = math.Exp((logits[j] - logits[best]) / so.Temperature)
		sum += p[i]
	}
	if so.TopP < 1 {
		var c float64
		for i := range p {
			c += p[i] / sum
			if c >= so.TopP {
				idx, p = idx[:i+1], p[:i+1]
				break
			}
		}
		sum = 0
		for _, v := range p {
			sum += v
		}
	}
	u := rng.Float64() * sum
	for i, v := range p {
		if u < v {
			return idx[i]
		}
		u -= v
	}
	return idx[len(idx)-1]
}
