package train

// The run's data: batches for training and evaluation. Causal runs stream
// token shards through data.Loader; the JSONL fine-tuning tasks read their
// examples into memory (internal/data/examples).

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/data"
	"github.com/compact-llm/compact/internal/data/examples"
)

// Batches yields micro-batches of inputs and targets (B*T, row-major;
// target -1 is ignored) and can say where it stands for checkpoints.
type Batches interface {
	Next() (inputs, targets []int32, err error)
	Reset()
	Close() error
	// EvalBatches is how many batches one evaluation reads given the
	// train.eval_batches cap.
	EvalBatches(limit int) int
	// SaveState and RestoreState are the position in the stream, saved in
	// checkpoints (trainer_state.json's loader).
	SaveState() (json.RawMessage, error)
	RestoreState(json.RawMessage) error
}

// shardSource adapts data.Loader of micro-batch b.
type shardSource struct {
	*data.Loader
	b int
}

// EvalBatches caps limit at the batches one epoch of the set fills: any
// further batch would only evaluate the same windows again (a one-window
// shard evaluated 1000 times).
func (s shardSource) EvalBatches(limit int) int {
	fill := (s.SamplesPerEpoch() + int64(s.b) - 1) / int64(s.b)
	return int(min(int64(limit), max(fill, 1)))
}

func (s shardSource) SaveState() (json.RawMessage, error) { return json.Marshal(s.State()) }

func (s shardSource) RestoreState(raw json.RawMessage) error {
	var ls data.LoaderState
	if err := json.Unmarshal(raw, &ls); err != nil {
		return fmt.Errorf("loader state: %w", err)
	}
	return s.Restore(ls)
}

// openData opens the run's training and validation batches.
func (t *Trainer) openData() error {
	d, err := openData(t.cfg, t.tok, t.logf)
	if err != nil {
		return err
	}
	t.train, t.val = rankSource(d.train, t.opts.Dist), d.val
	if t.cfg.Finetune.Task == config.TaskCausal {
		t.state.TrainFiles, t.state.ValFiles = d.trainFiles, d.valFiles
	}
	return nil
}

// dataSets are a run's training and validation batches and, for token
// shards, the files they read.
type dataSets struct {
	train, val           Batches
	trainFiles, valFiles []string
}

// openData resolves the shards (the default corpus when none are named) and
// opens the training and validation loaders, or reads the JSONL sets of a
// fine-tuning task.
func openData(cfg config.Config, tok data.Tokenizer, logf func(string, ...any)) (dataSets, error) {
	var ds dataSets
	if cfg.Finetune.Task != config.TaskCausal {
		var err error
		ds.train, ds.val, err = openExamples(cfg, tok, logf)
		return ds, err
	}
	d, tr := cfg.Data, cfg.Train
	trainGlobs, valGlobs := d.Train, d.Val
	if len(trainGlobs) == 0 {
		logf("data: building or reusing the default corpus (Go distribution sources, %d bytes)", d.CorpusBytes)
		tg, vg, err := data.DefaultCorpus(tok, d.CorpusBytes)
		if err != nil {
			return ds, fmt.Errorf("default corpus: %w", err)
		}
		trainGlobs, valGlobs = []string{tg}, []string{vg}
	}
	trainFiles, err := data.ExpandGlobs(trainGlobs)
	if err != nil {
		return ds, &config.UsageError{Err: fmt.Errorf("data.train: %w", err)}
	}
	valFiles, err := data.ExpandGlobs(valGlobs)
	if err != nil {
		return ds, &config.UsageError{Err: fmt.Errorf("data.val: %w", err)}
	}
	trl, err := data.NewLoader(data.LoaderConfig{Paths: trainFiles, Format: d.Format, B: tr.MicroBatch,
		T: tr.SeqLen, Seed: tr.Seed, Shuffle: d.Shuffle, Rank: 0, World: 1, Prefetch: 4, VocabSize: cfg.Model.VocabSize,
		Tokenizer: tok.Name()})
	if err != nil {
		return ds, &config.UsageError{Err: fmt.Errorf("data.train: %w", err)}
	}
	vl, err := data.NewLoader(data.LoaderConfig{Paths: valFiles, Format: d.Format, B: tr.MicroBatch,
		T: tr.SeqLen, Seed: tr.Seed, Shuffle: false, Rank: 0, World: 1, Prefetch: 2, VocabSize: cfg.Model.VocabSize,
		Tokenizer: tok.Name()})
	if err != nil {
		trl.Close()
		return ds, &config.UsageError{Err: fmt.Errorf("data.val: %w", err)}
	}
	val := shardSource{vl, tr.MicroBatch}
	if n := val.EvalBatches(tr.EvalBatches); n < tr.EvalBatches {
		logf("data.val: %d windows of %d tokens fill %d batch(es) of micro_batch %d: an evaluation reads those, not train.eval_batches (eval --batches) = %d, which would repeat them",
			vl.SamplesPerEpoch(), tr.SeqLen+1, n, tr.MicroBatch, tr.EvalBatches)
	}
	return dataSets{train: shardSource{trl, tr.MicroBatch}, val: val, trainFiles: trainFiles, valFiles: valFiles}, nil
}

// OpenValidation opens the validation batches of cfg as a run would, for
// evaluating a checkpoint; with unlabelled (evaluation for predictions, a
// classify task) rows need no label.
func OpenValidation(cfg config.Config, tok data.Tokenizer, logf func(string, ...any), unlabelled bool) (Batches, error) {
	var d dataSets
	var err error
	if unlabelled {
		d.train, d.val, err = openExamplesFor(cfg, tok, logf, true)
	} else {
		d, err = openData(cfg, tok, logf)
	}
	if err != nil {
		return nil, err
	}
	d.train.Close() // opened for its errors and the held-out split, not read
	return d.val, nil
}

// openExamples reads the JSONL sets of the completion and classify tasks.
func openExamples(cfg config.Config, tok data.Tokenizer, logf func(string, ...any)) (train, val Batches, err error) {
	return openExamplesFor(cfg, tok, logf, false)
}

// openExamplesFor reads them; with unlabelled (evaluation for predictions)
// classify rows need no label.
func openExamplesFor(cfg config.Config, tok data.Tokenizer, logf func(string, ...any), unlabelled bool) (train, val Batches, err error) {
	d, tr, ft := cfg.Data, cfg.Train, cfg.Finetune
	if tok, err = data.WithSpecialTokens(tok, d.SpecialTokens); err != nil {
		return nil, nil, config.Usagef("data.special_tokens: %w", err)
	}
	trainFiles, err := data.ExpandGlobs(d.Train)
	if err != nil {
		return nil, nil, config.Usagef("data.train: %w", err)
	}
	var valFiles []string
	if len(d.Val) > 0 {
		if valFiles, err = data.ExpandGlobs(d.Val); err != nil {
			return nil, nil, config.Usagef("data.val: %w", err)
		}
	}
	read := func(key string, files []string) ([]examples.Example, error) {
		var ex []examples.Example
		var err error
		dropped := 0
		if ft.Task == config.TaskCompletion {
			ex, dropped, err = examples.Completion(files, tok, tr.SeqLen)
		} else {
			ex, err = examples.Classify(files, tok, tr.SeqLen, ft.NumLabels, ft.Labels, unlabelled)
		}
		if err != nil {
			return nil, config.Usagef("%s: %w", key, err)
		}
		if dropped > 0 {
			logf("%s: dropped %d examples whose prompt fills train.seq_len = %d", key, dropped, tr.SeqLen)
		}
		if len(ex) == 0 {
			return nil, config.Usagef("%s: no usable example in %s", key, strings.Join(files, ", "))
		}
		return ex, nil
	}
	trEx, err := read("data.train", trainFiles)
	if err != nil {
		return nil, nil, err
	}
	var vaEx []examples.Example
	if len(valFiles) > 0 {
		if vaEx, err = read("data.val", valFiles); err != nil {
			return nil, nil, err
		}
	} else if trEx, vaEx, err = examples.Split(trEx, ft.ValFraction, tr.Seed); err != nil {
		return nil, nil, &config.UsageError{Err: err}
	}
	logf("data: %d training and %d validation examples (%s)", len(trEx), len(vaEx), ft.Task)
	pad := int32(tok.EOT())
	return examples.NewSource(trEx, tr.MicroBatch, tr.SeqLen, pad, tr.Seed, d.Shuffle, false),
		examples.NewSource(vaEx, tr.MicroBatch, tr.SeqLen, pad, tr.Seed, false, true), nil
}
