// Package evaluate is `compact eval` and `compact sample`: a checkpoint
// (ours or a HuggingFace LLaMA directory) evaluated on validation data,
// writing a classifier's predictions, or generating text with a KV cache.
package evaluate

import (
	"fmt"
	"io"
	"math"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/data"
	"github.com/compact-llm/compact/internal/data/examples"
	"github.com/compact-llm/compact/internal/gpu"
	"github.com/compact-llm/compact/internal/gpu/device"
	"github.com/compact-llm/compact/internal/model"
	"github.com/compact-llm/compact/internal/train"
)

// Result is what `compact eval` reports. Loss and Accuracy are absent
// when no evaluated row has a label (predictions on unlabelled rows).
type Result struct {
	Checkpoint  string   `json:"checkpoint"`
	Task        string   `json:"task"`
	Device      string   `json:"device"`
	Loss        *float64 `json:"val_loss,omitempty"` // as the text and metrics.jsonl name it
	Perplexity  *float64 `json:"perplexity,omitempty"`
	Accuracy    *float64 `json:"accuracy,omitempty"`
	Predictions string   `json:"predictions,omitempty"` // the file written by Options.Predictions
	Rows        int      `json:"rows,omitempty"`        // rows in it
}

// Options are the choices of `compact eval` beyond the config.
type Options struct {
	// Predictions names a JSONL file to write one prediction per row of the
	// classify set to (predictions.go); the whole set is evaluated, and rows
	// without a label are allowed.
	Predictions string
}

// loaded is a checkpoint's model on a device, for evaluation or sampling.
type loaded struct {
	be     gpu.Backend
	model  *model.Model
	device string
}

// load builds the model of b on cfg's device and loads its weights
// strictly (every tensor must fit).
func load(b config.Base, cfg config.Config, logf func(string, ...any)) (_ *loaded, err error) {
	be, how, err := device.Open(cfg.Train.Device, cfg.Train.Threads)
	if err != nil {
		return nil, err
	}
	c := &loaded{be: be, device: be.Name()}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	logf("device: %s", how)
	// Nothing is trained here: load the weights as they are stored, without
	// the bf16 rounding of master-free training (train.weights: auto).
	cfg.Train.Weights = config.WeightsMaster
	if err := train.CheckFits(cfg, be, false); err != nil {
		return nil, err
	}
	if c.model, err = train.NewModel(be, cfg); err != nil {
		return nil, err
	}
	src, err := model.OpenWeights(b.Dir)
	if err != nil {
		return nil, &config.UsageError{Err: err}
	}
	defer src.Close()
	if err := c.model.LoadWeights(src); err != nil {
		return nil, &config.UsageError{Err: err}
	}
	return c, nil
}

func (c *loaded) close() {
	if c.model != nil {
		c.model.Free()
	}
	c.be.Close()
}

// logTo returns a log-line printer on w (nil: silent).
func logTo(w io.Writer) func(string, ...any) {
	return func(f string, a ...any) {
		if w != nil {
			fmt.Fprintf(w, f+"\n", a...)
		}
	}
}

// Checkpoint computes the validation loss (and perplexity, or accuracy for
// a classifier) of checkpoint b on the validation set of cfg.
func Checkpoint(b config.Base, cfg config.Config, eo Options, log io.Writer) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, &config.UsageError{Err: err}
	}
	if eo.Predictions != "" && cfg.Finetune.Task != config.TaskClassify {
		return Result{}, config.Usagef("--predictions: %s is not a classifier (finetune.task = %s)", b.Dir, cfg.Finetune.Task)
	}
	logf := logTo(log)
	c, err := load(b, cfg, logf)
	if err != nil {
		return Result{}, err
	}
	defer c.close()
	tok, err := data.NewTokenizer(cfg.Data.Tokenizer)
	if err != nil {
		return Result{}, config.Usagef("data.tokenizer: %w", err)
	}
	val, err := train.OpenValidation(cfg, tok, logf, eo.Predictions != "")
	if err != nil {
		return Result{}, err
	}
	defer val.Close()
	r := Result{Checkpoint: b.Dir, Task: cfg.Finetune.Task, Device: c.device}
	if eo.Predictions != "" {
		return predict(c.model, val, cfg, eo.Predictions, r)
	}
	loss, acc, err := train.Validate(c.model, val, cfg.Train.MicroBatch, cfg.Train.SeqLen, cfg.Train.EvalBatches)
	if err != nil {
		return Result{}, err
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		// The weights are finite (load checks them), yet the model overflows:
		// a failed evaluation, not a result to print with exit status 0.
		return Result{}, fmt.Errorf("checkpoint %s: the validation loss is %g: the model's activations overflow; evaluate an earlier checkpoint", b.Dir, loss)
	}
	r.Loss = &loss
	if acc >= 0 {
		r.Accuracy = &acc
	} else {
		if ppl := math.Exp(loss); !math.IsInf(ppl, 0) { // past a loss of 709 nats it is not a number JSON can hold
			r.Perplexity = &ppl
		}
	}
	return r, nil
}

// predict evaluates the whole classify set val, writing the prediction of
// every row to path.
func predict(m *model.Model, val train.Batches, cfg config.Config, path string, r Result) (Result, error) {
	var rows []examples.Row // the JSONL set's rows; none for token shards
	if set, ok := val.(*examples.Source); ok {
		rows = set.Rows()
	}
	pw, err := newPredictionWriter(path, cfg, rows)
	if err != nil {
		return Result{}, err
	}
	s, err := train.ValidateRows(m, val, cfg.Train.MicroBatch, cfg.Train.SeqLen, len(rows), pw.batch)
	if err := pw.finish(err); err != nil {
		return Result{}, err
	}
	r.Predictions, r.Rows = path, pw.rows
	if s.N > 0 {
		loss, acc := s.Loss(), s.Accuracy()
		r.Loss, r.Accuracy = &loss, &acc
	}
	return r, nil
}
