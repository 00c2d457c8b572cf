// Resumes at their edges (issues 21.5 and 22.2): a checkpoint lacking a
// file, a finished run, a changed schedule or model, a chosen checkpoint.

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ckpt names step's checkpoint directory of the run in out.
func ckpt(out string, step string) string {
	return filepath.Join(out, "checkpoints", "step-000000"+step)
}

// expectRun runs the CLI and fails unless it exits with code and stderr
// holds every one of want; it returns stderr.
func expectRun(t *testing.T, code int, want []string, args ...string) string {
	t.Helper()
	return expectIn(t, "", nil, code, want, args...)
}

// Issue 22.2: checkpoints whose optimizer.safetensors was removed are
// refused on --resume, naming the file, with nothing changed (they used to
// be skipped: the run started from scratch, replaced metrics.jsonl and
// deleted the weights); --weights-only continues from the weights.
func TestResumeIncompleteCheckpoints(t *testing.T) {
	out, base := trainedRun(t)
	for _, step := range []string{"2", "4"} {
		if err := os.Remove(filepath.Join(ckpt(out, step), "optimizer.safetensors")); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshot(t, out)
	resume := append(base, "--out", out, "--resume")
	expectRun(t, 2, []string{"step-0000004 lacks optimizer.safetensors", "--weights-only"},
		append(resume, "--set", "train.seed=7", "--set", "train.lr=1e-2")...)
	expectRun(t, 2, []string{"optimizer.safetensors"}, append(resume, "--steps", "6")...)
	expectRun(t, 2, []string{"--weights-only goes with --resume"}, append(base, "--out", out, "--weights-only", "--steps", "6")...)
	// --weights-only still checks the config against the saved run's.
	expectRun(t, 2, []string{"train.seed 42 -> 7"}, append(resume, "--weights-only", "--steps", "6", "--set", "train.seed=7")...)
	sameFiles(t, "resume of incomplete checkpoints", before, snapshot(t, out))
	if n := len(readMetrics(t, out)); n != 4 {
		t.Fatalf("metrics.jsonl has %d lines, want the run's 4", n)
	}

	// A missing trainer_state.json cannot be continued at all: the message
	// says how to start from the weights.
	os.Rename(filepath.Join(ckpt(out, "4"), "trainer_state.json"), filepath.Join(out, "state.json"))
	expectRun(t, 2, []string{"lacks optimizer.safetensors and trainer_state.json", "compact finetune --base"}, append(resume, "--steps", "6")...)
	os.Rename(filepath.Join(out, "state.json"), filepath.Join(ckpt(out, "4"), "trainer_state.json"))

	stderr := expectRun(t, 0, []string{"fresh Adam moments from step 4"}, append(resume, "--weights-only", "--steps", "6")...)
	if ms := readMetrics(t, out); len(ms) != 6 || ms[4].Step != 5 {
		t.Fatalf("after --weights-only: %d metric lines (%s)", len(ms), stderr)
	}
	var st struct {
		AdamStart int `json:"adam_start"`
	}
	raw, err := os.ReadFile(filepath.Join(ckpt(out, "6"), "trainer_state.json"))
	if err != nil || json.Unmarshal(raw, &st) != nil || st.AdamStart != 4 {
		t.Fatalf("step 6's trainer_state.json: adam_start %d (%v), want 4", st.AdamStart, err)
	}
	for _, f := range []string{"model.safetensors", "optimizer.safetensors"} {
		if _, err := os.Stat(filepath.Join(ckpt(out, "6"), f)); err != nil {
			t.Errorf("the checkpoint written after --weights-only: %v", err)
		}
	}
	// The untouched weights of step 2 and 4 are still there.
	for p, h := range before {
		if strings.HasSuffix(p, "model.safetensors") && snapshot(t, filepath.Dir(p))[p] != h {
			t.Errorf("%s changed", p)
		}
	}
}

// Issue 21.5: a finished run says "already complete" with its final
// numbers and changes nothing; --steps that stretch the schedule are
// announced and recorded; a changed model is named by its YAML keys.
func TestResumeFinishedRunAndChanges(t *testing.T) {
	out, base := trainedRun(t)
	before := snapshot(t, out)
	resume := append(base, "--out", out, "--resume")
	stderr := expectRun(t, 0, []string{"already complete: step 4 of train.steps 4", "final loss", "val_loss", "step-0000004"}, resume...)
	if strings.Contains(stderr, "done: 0 steps") || strings.Contains(stderr, "0.0000") {
		t.Errorf("a finished run reports an empty run: %s", stderr)
	}
	sameFiles(t, "resume of a finished run", before, snapshot(t, out))

	stderr = expectRun(t, 2, []string{"model.hidden_size 32 -> 64"}, append(resume, "--steps", "6", "--set", "model.hidden_size=64")...)
	if strings.Contains(stderr, "{") {
		t.Errorf("a model change is reported as a Go struct: %s", stderr)
	}
	sameFiles(t, "resume with another model", before, snapshot(t, out))

	expectRun(t, 0, []string{"learning-rate schedule changes after step 4: train.steps 4 -> 6", "the lr of step 5 is"}, append(resume, "--steps", "6")...)
	raw, err := os.ReadFile(filepath.Join(ckpt(out, "6"), "trainer_state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Schedule []struct {
			Step  int    `json:"step"`
			Steps [2]int `json:"steps"`
		} `json:"schedule_changes"`
	}
	if err := json.Unmarshal(raw, &st); err != nil || len(st.Schedule) != 1 || st.Schedule[0].Step != 4 || st.Schedule[0].Steps != [2]int{4, 6} {
		t.Errorf("trainer_state.json does not record the schedule change: %+v %v", st, err)
	}
}

// Issue 21.5: --resume PATH continues from a chosen checkpoint. An older
// one of --out moves the later checkpoints aside (nothing is deleted) and,
// on the CPU, gives the same weights again; one outside --out starts a new
// run there.
func TestResumeFromChosenCheckpoint(t *testing.T) {
	out, base := trainedRun(t)
	before := snapshot(t, out)
	step4 := filepath.Join(ckpt(out, "4"), "model.safetensors")
	fork := filepath.Join(t.TempDir(), "fork")
	expectRun(t, 0, []string{"resumed from " + ckpt(out, "2")}, append(base, "--out", fork, "--resume", ckpt(out, "2"))...)
	if a, b := snapshot(t, fork)[filepath.Join(ckpt(fork, "4"), "model.safetensors")], before[step4]; a != b || a == "" {
		t.Errorf("a run continued from step 2 in a new --out ends with other weights than the original")
	}
	sameFiles(t, "fork", before, snapshot(t, out))
	expectRun(t, 2, []string{"not a checkpoint of --out " + fork}, append(base, "--out", fork, "--resume", ckpt(out, "2"))...)

	stderr := expectRun(t, 0, []string{"resume from step 2: the later checkpoints (step-0000004)", "superseded-"},
		append(base, "--out", out, "--resume="+ckpt(out, "2"))...)
	aside, _ := filepath.Glob(filepath.Join(out, "superseded-*"))
	if len(aside) != 1 {
		t.Fatalf("superseded directories %v (%s)", aside, stderr)
	}
	moved := map[string]string{}
	for p, h := range before {
		if strings.Contains(p, "step-0000004") {
			moved[strings.Replace(p, out, aside[0], 1)] = h
		}
	}
	moved[filepath.Join(aside[0], "metrics.jsonl")] = before[filepath.Join(out, "metrics.jsonl")]
	sameFiles(t, "superseded checkpoint", moved, snapshot(t, aside[0]))
	if snapshot(t, out)[step4] != before[step4] {
		t.Errorf("resuming step 2 gives other step-4 weights than the first run")
	}
	if n := len(readMetrics(t, out)); n != 4 {
		t.Errorf("metrics.jsonl has %d lines after resuming step 2, want 4", n)
	}
}
