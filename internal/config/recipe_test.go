package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// The shipped pretraining configs resolve to two recipes from one file:
// CompAct at compact.lr (the recipe study's 3e-3, docs/training.md) with the
// HF form, full rank at train.lr with torch's, neither clipping.
func TestShippedRecipes(t *testing.T) {
	for _, c := range []struct {
		file      string
		compactLR float64
	}{{"llama-60m", 3e-3}, {"llama-130m", 3e-3}, {"llama-350m", 3e-3}, {"llama-1b", 3e-3}} {
		file := filepath.Join("../../configs", c.file+".yaml")
		for _, mode := range []struct {
			set     []string
			lr, eps float64
			opt     string
		}{{nil, c.compactLR, 1e-6, OptimizerHF}, {[]string{"compact.enabled=false"}, 1e-3, 1e-8, OptimizerTorch}} {
			cfg, err := Load(file, mode.set)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.PeakLR() != mode.lr || cfg.OptimizerName() != mode.opt || cfg.AdamEpsilon() != mode.eps || cfg.Train.GradClip != 0 {
				t.Errorf("%s %v: lr %g, %s, eps %g, grad_clip %g; want lr %g, %s, eps %g, no clipping",
					c.file, mode.set, cfg.PeakLR(), cfg.OptimizerName(), cfg.AdamEpsilon(), cfg.Train.GradClip, mode.lr, mode.opt, mode.eps)
			}
		}
		cfg, _ := Load(file, nil)
		cc := cfg.Compact
		if cc.Rank != 0.5 || cc.UpdateGap != 200 || cc.Alpha*cc.OProjScale != 0.25 || cfg.Train.WarmupRatio != 0.1 || cfg.Train.MinLRRatio != 0.1 {
			t.Errorf("%s: compact %+v, warmup %g, min ratio %g: not the paper's recipe", c.file, cc, cfg.Train.WarmupRatio, cfg.Train.MinLRRatio)
		}
		// The paper's recipe is one flag away.
		if cfg, _ := Load(file, []string{"compact.lr=1e-2"}); cfg.PeakLR() != 1e-2 || cfg.OptimizerName() != OptimizerHF {
			t.Errorf("%s: --set compact.lr=1e-2 gives lr %g %s, want the paper's 1e-2 with the HF form", c.file, cfg.PeakLR(), cfg.OptimizerName())
		}
		// What the user sets explicitly wins.
		cfg, _ = Load(file, []string{"compact.lr=0", "train.lr=2e-3", "train.optimizer=adamw_torch", "train.adam_eps=1e-7"})
		if cfg.PeakLR() != 2e-3 || cfg.OptimizerName() != OptimizerTorch || cfg.AdamEpsilon() != 1e-7 {
			t.Errorf("%s: explicit keys ignored: lr %g %s eps %g", c.file, cfg.PeakLR(), cfg.OptimizerName(), cfg.AdamEpsilon())
		}
	}
	// The paper fine-tunes with o_proj's update at scale 1 whatever alpha.
	files, _ := filepath.Glob("../../configs/finetune-*.yaml")
	for _, f := range files {
		cfg, _, err := loadOver(Default(), f, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s := cfg.Compact.Alpha * cfg.Compact.OProjScale; s != 1 {
			t.Errorf("%s: o_proj update scale %g, want 1", f, s)
		}
	}
}

func TestRecipeKeysNameTheCulprit(t *testing.T) {
	for _, c := range []struct {
		set, want string
	}{{"train.optimizer=adam", "train.optimizer"}, {"compact.lr=-1", "compact.lr"}, {"train.adam_eps=-1e-8", "train.adam_eps"},
		{"compact.rank=1", "compact.rank"}} {
		_, err := Load("", []string{c.set})
		if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--set %s: error %v does not name %s", c.set, err, c.want)
		}
	}
	// rank 1 is only ambiguous while CompAct is on.
	if _, err := Load("", []string{"compact.rank=1", "compact.enabled=false"}); err != nil {
		t.Errorf("rank 1 with CompAct off: %v", err)
	}
}
