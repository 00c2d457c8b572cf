package train

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/checkpoint"
	"github.com/compact-llm/compact/internal/config"
)

// poisonedConfig is smallConfig for 40 steps of 8 samples, logged every
// step and checkpointed every 4, with a guard that judges windows of five
// samples; COMPACT_FAULT_POISON makes step 21 (samples 160..167) run at 300
// times its learning rate, as a bad batch would.
func poisonedConfig(t *testing.T, dir, policy string) config.Config {
	t.Helper()
	cfg := smallConfig(t, dir)
	cfg.Train.Steps, cfg.Train.EvalEvery, cfg.Train.KeepCheckpoints = 40, 20, 20
	cfg.Train.OnInstability = policy
	cfg.Train.Health.Window, cfg.Train.Health.Patience = 5, 3
	t.Setenv(PoisonEnv, "160:300")
	return cfg
}

func healthEvents(ms []Metric) []checkpoint.HealthEvent {
	var out []checkpoint.HealthEvent
	for _, m := range ms {
		out = append(out, m.Health...)
	}
	return out
}

func TestPlantedSpikeIsReported(t *testing.T) {
	dir := t.TempDir()
	cfg := poisonedConfig(t, dir, config.InstabilityWarn)
	var log strings.Builder
	out := filepath.Join(dir, "warn")
	if err := Pretrain(context.Background(), cfg, RunOptions{Out: out, Log: &log}); err != nil {
		t.Fatal(err)
	}
	ms := readMetrics(t, out)
	es := healthEvents(ms)
	if len(es) == 0 || es[0].Kind != EventSpike || es[0].Step != 22 || es[0].Since != 21 {
		t.Fatalf("events %+v: want a loss spike first seen at step 22 (after the poisoned update of step 21)", es)
	}
	if ms[21].Loss < 1.3*ms[19].Loss {
		t.Fatalf("the planted spike is too small to test with: loss %.3f at step 20, %.3f at step 22", ms[19].Loss, ms[21].Loss)
	}
	for _, want := range []string{"health: loss spike at step 22", "try: lower train.lr", "finished with"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, log.String())
		}
	}
	if strings.Contains(log.String(), "\ndone:") {
		t.Errorf("a run with a loss spike ends with a plain done:\n%s", log.String())
	}
}

func TestPlantedSpikeStops(t *testing.T) {
	dir := t.TempDir()
	cfg := poisonedConfig(t, dir, config.InstabilityStop)
	out := filepath.Join(dir, "stop")
	err := Pretrain(context.Background(), cfg, RunOptions{Out: out})
	var ie *InstabilityError
	if !errors.As(err, &ie) || config.IsUsage(err) {
		t.Fatalf("got %v, want an InstabilityError (exit 1)", err)
	}
	if ie.Last != checkpoint.StepDir(filepath.Join(out, "checkpoints"), 20) || !strings.Contains(err.Error(), "step-0000020") {
		t.Errorf("%v: want it to name checkpoint step 20, the newest before the spike", err)
	}
	if ms := readMetrics(t, out); ms[len(ms)-1].Step != 23 {
		t.Errorf("the run went on to step %d; want it stopped at step 23, where the spike was confirmed", ms[len(ms)-1].Step)
	}
}

// TestRollbackRecoversAndResumesIdentically: the rollback returns to
// checkpoint 20, skips the poisoned batches and halves the rate; the loss
// after it is back below the spike, and a run resumed from a checkpoint
// after the rollback ends exactly as the uninterrupted one.
func TestRollbackRecoversAndResumesIdentically(t *testing.T) {
	dir := t.TempDir()
	cfg := poisonedConfig(t, dir, config.InstabilityRollback)
	out := filepath.Join(dir, "rollback")
	var log strings.Builder
	if err := Pretrain(context.Background(), cfg, RunOptions{Out: out, Log: &log}); err != nil {
		t.Fatal(err)
	}
	ms := readMetrics(t, out)
	es := healthEvents(ms)
	i := slices.IndexFunc(es, func(e checkpoint.HealthEvent) bool { return e.Kind == EventRollback })
	if i < 0 {
		t.Fatalf("no rollback in %+v\n%s", es, log.String())
	}
	rb := es[i]
	if rb.Step != 23 || rb.Since != 20 || rb.Value != 0.5 {
		t.Errorf("rollback %+v: want it at step 23, back to step 20, at half the rate", rb)
	}
	aside := filepath.Join(out, "checkpoints", "rolled-back-1")
	if _, err := os.Stat(filepath.Join(aside, "step-0000024")); err == nil {
		t.Errorf("a checkpoint after the rollback's step was written before it")
	}
	var spike, after float64
	var afterLR, beforeLR float64
	for _, m := range ms {
		switch {
		case m.Rollbacks == 0 && m.Step == 23:
			spike = m.Loss
		case m.Rollbacks == 0 && m.Step == 22:
			beforeLR = m.LR
		case m.Rollbacks == 1 && m.Step == 26:
			after = m.Loss
		case m.Rollbacks == 1 && m.Step == 22:
			afterLR = m.LR
		}
	}
	if after == 0 || after >= spike {
		t.Errorf("loss %.4f five steps after the rollback; want it below the spike's %.4f", after, spike)
	}
	if afterLR != beforeLR/2 {
		t.Errorf("step 22's learning rate %g after the rollback; want half of %g", afterLR, beforeLR)
	}
	if last := ms[len(ms)-1]; last.Step != 40 || last.Rollbacks != 1 {
		t.Errorf("the run ended at %+v; want step 40 after one rollback", last)
	}
	st, err := checkpoint.ReadState(checkpoint.StepDir(filepath.Join(out, "checkpoints"), 40))
	if err != nil {
		t.Fatal(err)
	}
	if st.Health == nil || st.Health.Rollbacks != 1 || st.Health.LRScale != 0.5 {
		t.Fatalf("the final checkpoint's health state %+v: want one rollback at half the rate", st.Health)
	}

	// Killed after checkpoint 32 (of the stretch after the rollback): the
	// resume reads the guard's state from it and ends as the whole run did.
	crashed := filepath.Join(dir, "crashed")
	if err := os.CopyFS(crashed, os.DirFS(out)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []int{36, 40} {
		os.RemoveAll(checkpoint.StepDir(filepath.Join(crashed, "checkpoints"), s))
	}
	if err := Pretrain(context.Background(), cfg, RunOptions{Out: crashed, Resume: true}); err != nil {
		t.Fatal(err)
	}
	sameTrajectory(t, ms, readMetrics(t, crashed))
	sameCheckpoints(t, "resumed after the rollback", out, crashed, 40)

	// Killed right after the rollback, before any later checkpoint: the
	// resume starts from checkpoint 20, meets the poisoned batch again and
	// takes the same rollback.
	early := filepath.Join(dir, "early")
	if err := os.CopyFS(early, os.DirFS(out)); err != nil {
		t.Fatal(err)
	}
	for s := 24; s <= 40; s += 4 {
		os.RemoveAll(checkpoint.StepDir(filepath.Join(early, "checkpoints"), s))
	}
	if err := Pretrain(context.Background(), cfg, RunOptions{Out: early, Resume: true}); err != nil {
		t.Fatal(err)
	}
	sameTrajectory(t, ms, readMetrics(t, early))
	sameCheckpoints(t, "resumed from before the rollback", out, early, 40)
}
