package train

// Text generation with a model's KV cache: `compact sample` and the samples
// a pretraining run prints every train.sample_every steps.

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/compact-llm/compact/internal/data"
	"github.com/compact-llm/compact/internal/model"
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

// Generate continues prompt (token ids, at least one, fewer than the
// model's positions) with up to so.MaxTokens tokens, calling emit with each
// as it comes, until the end-of-text token. Past the model's
// max_position_embeddings the context slides, as nanoGPT crops its context:
// when the cache fills, its last half is read again and generation goes on.
func Generate(m *model.Model, tok data.Tokenizer, prompt []int32, so SampleOptions, emit func(id uint32)) error {
	window := m.Cfg.MaxSeqLen
	if len(prompt) == 0 || len(prompt) >= window {
		return fmt.Errorf("a prompt of %d tokens: want 1 to %d", len(prompt), window-1)
	}
	cache, err := m.NewKVCache(1, min(window, len(prompt)+so.MaxTokens))
	if err != nil {
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
	rng := rand.New(rand.NewPCG(so.Seed, 0x5a3b1e))
	V := tok.VocabSize() // never sample the model's padding rows
	context := append([]int32(nil), prompt...)
	for n := 0; n < so.MaxTokens; n++ {
		if err := finiteLogits(logits[:V]); err != nil {
			return err
		}
		id := pick(logits[:V], so, rng)
		if uint32(id) == tok.EOT() {
			return nil
		}
		emit(uint32(id))
		if n == so.MaxTokens-1 {
			return nil
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
	return nil
}

// finiteLogits refuses to sample from logits that are not all finite: a
// model whose activations overflow would otherwise print nothing (or the
// same token forever) and succeed.
func finiteLogits(logits []float64) error {
	for i, v := range logits {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("the logit of token %d is %g: the model's activations overflow, there is nothing to sample", i, v)
		}
	}
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
