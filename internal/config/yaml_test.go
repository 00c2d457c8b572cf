package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestConfigYAMLRoundTrip: the YAML that `compact config` prints and the
// config saved in trainer_state.json load back as a --config file to the
// same configuration.
func TestConfigYAMLRoundTrip(t *testing.T) {
	cfg, err := Load("../../configs/tiny.yaml", []string{"train.lr=0.0123", "compact.layers=q,gate", "train.seed=18446744073709551615"})
	if err != nil {
		t.Fatal(err)
	}
	y, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "printed.yaml")
	os.WriteFile(p, y, 0o644)
	back, err := Load(p, nil)
	if err != nil {
		t.Fatalf("printed config does not load: %v\n%s", err, y)
	}
	if !sameConfig(back, cfg) {
		t.Errorf("YAML round trip changed the config:\n%+v\n%+v", cfg, back)
	}
	for _, k := range Keys() {
		_, leaf, _ := strings.Cut(k, ".")
		if !strings.Contains(string(y), "  "+leaf+":") {
			t.Errorf("YAML lacks %s", k)
		}
	}

	// trainer_state.json: the config under the YAML key names, and that
	// object is itself a valid config file (YAML is a superset of JSON).
	js, err := json.Marshal(struct {
		Config Config `json:"config"`
	}{cfg})
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Config map[string]map[string]any `json:"config"`
	}
	if err := json.Unmarshal(js, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Config["train"]["micro_batch"] == nil || raw.Config["model"]["hidden_size"] == nil || raw.Config["compact"]["update_gap"] == nil {
		t.Errorf("trainer_state config not under YAML key names: %s", js)
	}
	var st struct {
		Config Config `json:"config"`
	}
	if err := json.Unmarshal(js, &st); err != nil || !sameConfig(st.Config, cfg) {
		t.Errorf("trainer_state round trip: %v\n%+v\n%+v", err, cfg, st.Config)
	}
	var rawObj struct {
		Config json.RawMessage `json:"config"`
	}
	json.Unmarshal(js, &rawObj) // exact numbers: the bytes as saved
	obj := rawObj.Config
	q := filepath.Join(t.TempDir(), "saved.yaml")
	os.WriteFile(q, obj, 0o644)
	if again, err := Load(q, nil); err != nil || !sameConfig(again, cfg) {
		t.Errorf("saved config as --config: %v", err)
	}
}

// TestConfigJSONLegacy: checkpoints written before the YAML key names
// (Go field names) still load.
func TestConfigJSONLegacy(t *testing.T) {
	cfg := Default()
	cfg.Train.LR = 0.5
	cfg.Data.Train = []string{"a.bin"}
	old, err := json.Marshal(legacyConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(old), `"Train"`) {
		t.Fatalf("not the legacy form: %s", old)
	}
	var back Config
	if err := json.Unmarshal(old, &back); err != nil || !sameConfig(back, cfg) {
		t.Errorf("legacy config: %v\n%+v\n%+v", err, cfg, back)
	}
	var bad Config
	if err := json.Unmarshal([]byte(`{"train":{"lrr":1}}`), &bad); err == nil || !strings.Contains(err.Error(), "train.lrr") {
		t.Errorf("unknown saved key: %v", err)
	}
}

// sameConfig compares configs, an empty list equal to none.
func sameConfig(a, b Config) bool {
	fa, fb := a.Values(), b.Values()
	for k, va := range fa {
		if reflect.ValueOf(va).Kind() == reflect.Slice {
			if reflect.ValueOf(va).Len() == 0 && reflect.ValueOf(fb[k]).Len() == 0 {
				continue
			}
		}
		if !reflect.DeepEqual(va, fb[k]) {
			return false
		}
	}
	return true
}

// TestCheckpointDeviceIsTheMachines: a checkpoint trained with
// train.device: cuda evaluates with auto (CPU on a machine without a GPU)
// unless the user asks for a device.
func TestCheckpointDeviceIsTheMachines(t *testing.T) {
	saved := Default()
	saved.Train.Device = "cuda"
	b := Base{Dir: t.TempDir(), Model: saved.Model, Run: &saved}
	cfg, err := LoadForCheckpoint(b, "", nil)
	if err != nil || cfg.Train.Device != "auto" {
		t.Errorf("device %q (%v), want auto", cfg.Train.Device, err)
	}
	cfg, err = LoadForCheckpoint(b, "", []string{"train.device=cpu"})
	if err != nil || cfg.Train.Device != "cpu" {
		t.Errorf("--device cpu: %q (%v)", cfg.Train.Device, err)
	}
}
