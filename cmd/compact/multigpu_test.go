package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/gpu/device"
)

// --gpus with --device cpu runs the ranks as CPU processes over TCP: the
// launcher, rendezvous, failure handling and resume are those of a GPU job.
func TestGPUsKillOneRankThenResume(t *testing.T) {
	train, val := shards(t)
	dir := t.TempDir()
	full, crashed := filepath.Join(dir, "full"), filepath.Join(dir, "crashed")
	base := append([]string{"pretrain", "--steps", "8", "--gpus", "2", "--set", "train.grad_accum=1"}, smallRun(train, val)...)
	if code, stderr := run(t, nil, append(base, "--out", full)...); code != 0 {
		t.Fatalf("2-rank run: exit %d: %s", code, stderr)
	}
	code, stderr := run(t, []string{"COMPACT_FAULT_KILL_RANK=1:6"}, append(base, "--out", crashed)...)
	if code != 128+9 || !strings.Contains(stderr, "rank 1") {
		t.Fatalf("kill -9 of rank 1: launcher exit %d (want 137, naming rank 1): %s", code, stderr)
	}
	if !strings.Contains(stderr, "[rank 0]") || !strings.Contains(stderr, "rank 1 exited without leaving") {
		t.Errorf("rank 0 did not report rank 1's death:\n%s", stderr)
	}
	if code, stderr := run(t, nil, append(base, "--out", crashed, "--resume")...); code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	a, b := readMetrics(t, full), readMetrics(t, crashed)
	if len(a) != len(b) || len(a) == 0 {
		t.Fatalf("%d metric lines after resume, %d uninterrupted", len(b), len(a))
	}
	for i := range a {
		if a[i].Step != b[i].Step || math.Abs(a[i].Loss-b[i].Loss) > 1e-6 || a[i].Tokens != b[i].Tokens {
			t.Fatalf("step %d differs after resume: %+v vs %+v", a[i].Step, b[i], a[i])
		}
	}
	// One process with twice the accumulation takes the same steps.
	one := filepath.Join(dir, "one")
	single := append([]string{"pretrain", "--steps", "8", "--set", "train.grad_accum=2"}, smallRun(train, val)...)
	if code, stderr := run(t, nil, append(single, "--out", one)...); code != 0 {
		t.Fatalf("1-process run: exit %d: %s", code, stderr)
	}
	c := readMetrics(t, one)
	for i := range a {
		if a[i].Tokens != c[i].Tokens || math.Abs(a[i].Loss-c[i].Loss) > 2e-4*a[i].Loss {
			t.Fatalf("step %d: 2 ranks %+v, 1 process with grad_accum 2 %+v", a[i].Step, a[i], c[i])
		}
	}
}

func TestGPUsBadInputExitsTwo(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	for _, c := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"--gpus", "0"}, "--gpus 0"},
		{nil, []string{"--gpus", "100000"}, "--gpus 100000: on the CPU each rank is a whole process"},
		{[]string{"RANK=0", "WORLD_SIZE=0", "MASTER_PORT=29500"}, nil, "WORLD_SIZE=0"},
		{[]string{"RANK=2", "WORLD_SIZE=2", "MASTER_PORT=29500"}, nil, "RANK=2"},
		{[]string{"RANK=1", "WORLD_SIZE=2"}, nil, "MASTER_PORT"},
		{[]string{"RANK=0", "WORLD_SIZE=2", "MASTER_PORT=29500"}, []string{"--gpus", "3"}, "WORLD_SIZE=2"},
	} {
		args := append([]string{"pretrain", "--device", "cpu", "--out", out, "--steps", "1"}, c.args...)
		code, stderr := run(t, c.env, args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v %v: exit %d, want 2 with %q: %s", c.env, c.args, code, c.want, stderr)
		}
	}
}

// On two GPUs (NCCL) a ZeRO-1 run follows the unsharded one, for the fp32
// master (its ranges are what is broadcast), master-free bf16 weights with
// bf16 moments, and the fused update; every checkpoint compares the ranks'
// weights (they must be identical), and the last ZeRO-1 checkpoint but one
// resumes on one GPU along the same trajectory. The tolerance covers the
// GPU's unordered reductions (embedding backward), not the sharding.
func TestGPUsZeroCUDA(t *testing.T) {
	if n, err := device.CUDACount(); err != nil || n < 2 {
		t.Skipf("needs 2 CUDA devices (%d, %v)", n, err)
	}
	train, val := shards(t)
	dir := t.TempDir()
	near := func(a, b []metric) bool {
		if len(a) != len(b) || len(a) == 0 {
			return false
		}
		for i := range a {
			if a[i].Step != b[i].Step || a[i].Tokens != b[i].Tokens || math.Abs(a[i].Loss-b[i].Loss) > 5e-3*a[i].Loss {
				return false
			}
		}
		return true
	}
	for _, c := range []struct {
		name string
		sets []string
	}{
		{"full-master", []string{"compact.enabled=false", "train.weights=master"}},
		{"compact-bf16_sr-bf16", []string{"train.weights=bf16_sr", "train.optimizer_state=bf16"}},
		{"compact-fused", []string{"train.fused_update=true", "train.grad_clip=0"}},
	} {
		args := append([]string{"pretrain", "--steps", "8"}, smallRun(train, val)...)
		args = append(args, "--device", "cuda", "--set", "model.hidden_size=128", "--set", "model.intermediate_size=344",
			"--set", "model.num_heads=2", "--set", "model.num_kv_heads=1")
		for _, s := range c.sets {
			args = append(args, "--set", s)
		}
		outs := map[int]string{}
		for _, zero := range []int{0, 1} {
			outs[zero] = filepath.Join(dir, fmt.Sprintf("%s-zero%d", c.name, zero))
			job := append(append([]string{}, args...), "--gpus", "2", "--set", "train.grad_accum=1", "--set", fmt.Sprintf("train.zero=%d", zero), "--out", outs[zero])
			if code, stderr := run(t, nil, job...); code != 0 {
				t.Fatalf("%s zero %d: exit %d: %s", c.name, zero, code, stderr)
			}
		}
		if a, b := readMetrics(t, outs[0]), readMetrics(t, outs[1]); !near(a, b) {
			t.Errorf("%s: train.zero 1 %+v, train.zero 0 %+v", c.name, b, a)
		}
		cut := filepath.Join(dir, c.name+"-resumed")
		if err := os.CopyFS(cut, os.DirFS(outs[1])); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(filepath.Join(cut, "checkpoints", "step-0000008"))
		one := append(append([]string{}, args...), "--set", "train.grad_accum=2", "--out", cut, "--resume")
		if code, stderr := run(t, nil, one...); code != 0 {
			t.Fatalf("%s: resume on one GPU: exit %d: %s", c.name, code, stderr)
		}
		if a, b := readMetrics(t, outs[1]), readMetrics(t, cut); !near(a, b) {
			t.Errorf("%s: resumed on one GPU %+v, uninterrupted %+v", c.name, b, a)
		}
	}
}
