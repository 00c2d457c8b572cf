package train

// `compact eval` and `compact sample`: a checkpoint (ours or a HuggingFace
// LLaMA directory) evaluated on validation data, or generating text with a
// KV cache.

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/compact-llm/compact/internal/data"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/device"
	"github.com/compact-llm/compact/internal/model"
)

// EvalResult is what `compact eval` reports. Loss and Accuracy are absent
// when no evaluated row has a label (predictions on unlabelled rows).
type EvalResult struct {
	Checkpoint  string   `json:"checkpoint"`
	Task        string   `json:"task"`
	Device      string   `json:"device"`
	Loss        *float64 `json:"loss,omitempty"`
	Perplexity  *float64 `json:"perplexity,omitempty"`
	Accuracy    *float64 `json:"accuracy,omitempty"`
	Predictions string   `json:"predictions,omitempty"` // the file written by EvalOptions.Predictions
	Rows        int      `json:"rows,omitempty"`        // rows in it
}

// EvalOptions are the choices of `compact eval` beyond the config.
type EvalOptions struct {
	// Predictions names a JSONL file to write one prediction per row of the
	// classify set to (predictions.go); the whole set is evaluated, and rows
	// without a label are allowed.
	Predictions string
}

// openCheckpoint builds the model of b on cfg's device and loads its
// weights strictly (every tensor must fit).
func openCheckpoint(b Base, cfg Config, logf func(string, ...any)) (*Trainer, error) {
	t := &Trainer{cfg: cfg, opts: RunOptions{}}
	var err error
	var how string
	if t.be, how, err = device.Open(cfg.Train.Device, cfg.Train.Threads); err != nil {
		return nil, err
	}
	t.device = t.be.Name()
	logf("device: %s", how)
	// Nothing is trained here: load the weights as they are stored, without
	// the bf16 rounding of master-free training (train.weights: auto).
	cfg.Train.Weights = WeightsMaster
	if err := checkFits(cfg, t.be, false); err != nil {
		t.close()
		return nil, err
	}
	if t.model, err = buildModel(t.be, cfg); err != nil {
		t.close()
		return nil, err
	}
	src, err := model.OpenWeights(b.Dir)
	if err != nil {
		t.close()
		return nil, &UsageError{err}
	}
	defer src.Close()
	if err := t.model.LoadWeights(src); err != nil {
		t.close()
		return nil, &UsageError{err}
	}
	return t, nil
}

// Evaluate computes the validation loss (and perplexity, or accuracy for a
// classifier) of checkpoint b on the validation set of cfg.
func Evaluate(b Base, cfg Config, eo EvalOptions, log io.Writer) (EvalResult, error) {
	if err := cfg.Validate(); err != nil {
		return EvalResult{}, &UsageError{err}
	}
	if eo.Predictions != "" && cfg.Finetune.Task != TaskClassify {
		return EvalResult{}, Usagef("--predictions: %s is not a classifier (finetune.task = %s)", b.Dir, cfg.Finetune.Task)
	}
	logf := func(f string, a ...any) {
		if log != nil {
			fmt.Fprintf(log, f+"\n", a...)
		}
	}
	t, err := openCheckpoint(b, cfg, logf)
	if err != nil {
		return EvalResult{}, err
	}
	defer t.close()
	t.opts.Log = log
	if t.tok, err = data.NewTokenizer(cfg.Data.Tokenizer); err != nil {
		return EvalResult{}, Usagef("data.tokenizer: %w", err)
	}
	if eo.Predictions != "" {
		t.train, t.val, err = openExamplesFor(cfg, t.tok, logf, true)
	} else {
		err = t.openData()
	}
	if err != nil {
		return EvalResult{}, err
	}
	r := EvalResult{Checkpoint: b.Dir, Task: cfg.Finetune.Task, Device: t.device}
	if eo.Predictions != "" {
		return evaluatePredictions(t, cfg, eo.Predictions, r)
	}
	loss, acc, err := t.evaluate()
	if err != nil {
		return EvalResult{}, err
	}
	r.Loss = &loss
	if acc >= 0 {
		r.Accuracy = &acc
	} else {
		ppl := math.Exp(loss)
		r.Perplexity = &ppl
	}
	return r, nil
}

// evaluatePredictions evaluates the whole classify set of t, writing the
// prediction of every row to path.
func evaluatePredictions(t *Trainer, cfg Config, path string, r EvalResult) (EvalResult, error) {
	src := t.val.(*exampleSource)
	pw, err := newPredictionWriter(path, cfg, src.ex)
	if err != nil {
		return EvalResult{}, err
	}
	s, err := evaluateRows(t.model, src, cfg.Train.MicroBatch, cfg.Train.SeqLen, len(src.ex), pw.batch)
	if err := pw.finish(err); err != nil {
		return EvalResult{}, err
	}
	r.Predictions, r.Rows = path, pw.rows
	if s.n > 0 {
		loss, acc := s.loss(), s.accuracy()
		r.Loss, r.Accuracy = &loss, &acc
	}
	return r, nil
}

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
// token, after MaxTokens, or at the model's max_position_embeddings.
func Sample(b Base, cfg Config, so SampleOptions, out, log io.Writer) error {
	switch {
	case so.MaxTokens <= 0:
		return Usagef("--max-tokens %d: must be positive", so.MaxTokens)
	case so.Temperature < 0:
		return Usagef("--temperature %g: must not be negative", so.Temperature)
	case so.TopK < 0:
		return Usagef("--top-k %d: must not be negative", so.TopK)
	case so.TopP <= 0 || so.TopP > 1:
		return Usagef("--top-p %g: must be in (0, 1]", so.TopP)
	}
	if cfg.Finetune.NumLabels > 0 {
		return Usagef("%s is a sequence classifier: it has no LM head to sample from", b.Dir)
	}
	logf := func(f string, a ...any) {
		if log != nil {
			fmt.Fprintf(log, f+"\n", a...)
		}
	}
	tok, err := data.NewTokenizer(cfg.Data.Tokenizer)
	if err != nil {
		return Usagef("data.tokenizer: %w", err)
	}
	if tok.VocabSize() > cfg.Model.VocabSize {
		return Usagef("data.tokenizer %s has %d tokens, more than the model's vocab_size %d", cfg.Data.Tokenizer, tok.VocabSize(), cfg.Model.VocabSize)
	}
	t, err := openCheckpoint(b, cfg, logf)
	if err != nil {
		return err
	}
	defer t.close()
	var prompt []int32
	for _, id := range tok.Encode(so.Prompt) {
		prompt = append(prompt, int32(id))
	}
	if len(prompt) == 0 {
		prompt = []int32{int32(tok.EOT())} // condition on a document boundary, as GPT-2 does
	}
	maxT := min(cfg.Model.MaxSeqLen, len(prompt)+so.MaxTokens)
	if len(prompt) >= maxT {
		return Usagef("the prompt has %d tokens, the model at most %d positions", len(prompt), cfg.Model.MaxSeqLen)
	}
	cache, err := t.model.NewKVCache(1, maxT)
	if err != nil {
		if _, ok := t.be.(gpu.Decoder); !ok {
			return Usagef("sample --device %s: %w", cfg.Train.Device, err)
		}
		return err
	}
	defer cache.Free()
	var logits []float64
	for _, id := range prompt {
		if logits, err = cache.Step([]int32{id}); err != nil {
			return err
		}
	}
	fmt.Fprint(out, so.Prompt)
	rng := rand.New(rand.NewPCG(so.Seed, 0x5a3b1e))
	V := tok.VocabSize() // never sample the model's padding rows
	for n := 0; n < so.MaxTokens && cache.Len < maxT; n++ {
		id := pick(logits[:V], so, rng)
		if uint32(id) == tok.EOT() {
			break
		}
		fmt.Fprint(out, tok.Decode([]uint32{uint32(id)}))
		if cache.Len == maxT {
			break
		}
		if logits, err = cache.Step([]int32{int32(id)}); err != nil {
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
