package main

import (
	le "encoding/binary"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compact-llm/compact/internal/config"
	"github.com/compact-llm/compact/internal/data"
	"github.com/compact-llm/compact/internal/train"
)

// tbEvent is what the test reads back of a TensorBoard event.
type tbEvent struct {
	step    int64
	version string
	start   bool // SessionLog START
	scalars map[string]float32
}

// readEvents parses a TFRecord file of tensorflow.Event protobufs,
// checking both CRCs of every record.
func readEvents(t *testing.T, path string) []tbEvent {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tab := crc32.MakeTable(crc32.Castagnoli)
	masked := func(b []byte) uint32 { c := crc32.Checksum(b, tab); return (c>>15 | c<<17) + 0xa282ead8 }
	var evs []tbEvent
	for len(raw) > 0 {
		if len(raw) < 12 {
			t.Fatalf("%s: torn record header", path)
		}
		n := le.LittleEndian.Uint64(raw)
		if le.LittleEndian.Uint32(raw[8:]) != masked(raw[:8]) || uint64(len(raw)) < 16+n {
			t.Fatalf("%s: bad record length", path)
		}
		rec := raw[12 : 12+n]
		if le.LittleEndian.Uint32(raw[12+n:]) != masked(rec) {
			t.Fatalf("%s: bad record CRC", path)
		}
		raw = raw[16+n:]
		ev := tbEvent{scalars: map[string]float32{}}
		forFields(t, rec, func(f int, v uint64, b []byte) {
			switch f {
			case 2:
				ev.step = int64(v)
			case 3:
				ev.version = string(b)
			case 5:
				forFields(t, b, func(_ int, _ uint64, val []byte) {
					var tag string
					var x float32
					forFields(t, val, func(f int, v uint64, b []byte) {
						if f == 1 {
							tag = string(b)
						} else if f == 2 {
							x = math.Float32frombits(uint32(v))
						}
					})
					ev.scalars[tag] = x
				})
			case 6:
				forFields(t, b, func(f int, v uint64, _ []byte) { ev.start = ev.start || (f == 1 && v == 1) })
			}
		})
		evs = append(evs, ev)
	}
	return evs
}

// forFields walks a protobuf message: varint, fixed64, bytes and fixed32
// fields (fixed values come as their bits in v).
func forFields(t *testing.T, b []byte, fn func(field int, v uint64, b []byte)) {
	for len(b) > 0 {
		key, n := le.Uvarint(b)
		b = b[n:]
		switch key & 7 {
		case 0:
			v, n := le.Uvarint(b)
			fn(int(key>>3), v, nil)
			b = b[n:]
		case 1:
			fn(int(key>>3), le.LittleEndian.Uint64(b), nil)
			b = b[8:]
		case 2:
			l, n := le.Uvarint(b)
			fn(int(key>>3), 0, b[n:n+int(l)])
			b = b[n+int(l):]
		case 5:
			fn(int(key>>3), uint64(le.LittleEndian.Uint32(b)), nil)
			b = b[4:]
		default:
			t.Fatalf("wire type %d", key&7)
		}
	}
}

// Issue 21 item 7: a sample every train.sample_every steps, ms/step in the
// step line and metrics.jsonl, TensorBoard event files beside
// metrics.jsonl (train.tensorboard) whose values are metrics.jsonl's, and
// the tokenizer in every checkpoint, loading as the run's; a resumed run
// starts a new event file that drops the steps redone.
func TestRunExtras(t *testing.T) {
	tr, val := shards(t)
	out := filepath.Join(t.TempDir(), "run")
	args := append([]string{"pretrain", "--steps", "4", "--out", out, "--set", "train.sample_every=2", "--set", "train.sample_tokens=16",
		"--set", "train.tensorboard=true"}, smallRun(tr, val)...)
	code, _, stderr := runAll(t, nil, args...)
	if code != 0 {
		t.Fatalf("pretrain: exit %d: %s", code, stderr)
	}
	if strings.Count(stderr, "--- sample at step ") != 2 || !strings.Contains(stderr, "ms/step ") {
		t.Errorf("no samples at steps 2 and 4, or no ms/step:\n%s", stderr)
	}
	ms := readMetrics(t, out)
	raw, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	if !strings.Contains(string(raw), `"step_ms":`) || strings.Contains(string(raw), `"mfu"`) {
		t.Errorf("metrics.jsonl: want step_ms, and no mfu on the CPU:\n%s", raw)
	}
	files, _ := filepath.Glob(filepath.Join(out, "events.out.tfevents.*"))
	if len(files) != 1 {
		t.Fatalf("event files %v", files)
	}
	evs := readEvents(t, files[0])
	if evs[0].version != "brain.Event:2" {
		t.Errorf("first event %+v, want the file version", evs[0])
	}
	losses := map[int64]float32{}
	for _, e := range evs {
		if l, ok := e.scalars["train/loss"]; ok {
			losses[e.step] = l
		}
	}
	for _, m := range ms {
		if l, ok := losses[int64(m.Step)]; !ok || l != float32(m.Loss) {
			t.Errorf("step %d: TensorBoard loss %v, metrics.jsonl %v", m.Step, l, m.Loss)
		}
	}
	ckpt := filepath.Join(out, "checkpoints", "step-0000004")
	tok, err := data.NewTokenizer(filepath.Join(ckpt, "tokenizer.json"))
	if err != nil {
		t.Fatalf("the checkpoint's tokenizer.json: %v", err)
	}
	byteTok, _ := data.NewTokenizer("byte")
	if s := "func main() { é }"; !slices.Equal(tok.Encode(s), byteTok.Encode(s)) || tok.EOT() != byteTok.EOT() {
		t.Errorf("the checkpoint's tokenizer encodes %v, the run's %v", tok.Encode(s), byteTok.Encode(s))
	}
	if cfg, err := os.ReadFile(filepath.Join(ckpt, "tokenizer_config.json")); err != nil || !strings.Contains(string(cfg), "PreTrainedTokenizerFast") {
		t.Errorf("tokenizer_config.json: %v %s", err, cfg)
	}
	// Resume from step 4 to 6: a second event file, starting at step 5.
	code, _, stderr = runAll(t, nil, append(args, "--steps", "6", "--resume")...)
	if code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
	files, _ = filepath.Glob(filepath.Join(out, "events.out.tfevents.*"))
	if len(files) != 2 {
		t.Fatalf("after resume, event files %v", files)
	}
	var resumed []tbEvent
	for _, f := range files {
		if evs := readEvents(t, f); len(evs) > 1 && evs[1].start {
			resumed = evs
		}
	}
	if resumed == nil || resumed[1].step != 5 {
		t.Errorf("the resumed run's file does not start with SessionLog START at step 5: %+v", resumed)
	}
	expectUsage(t, nil, "train.sample_tokens", append(args, "--out", filepath.Join(t.TempDir(), "x"), "--set", "train.sample_tokens=0")...)
}

// Issue 21 item 7: MFU is known for the GPUs whose peak is known and
// absent elsewhere.
func TestMFU(t *testing.T) {
	cfg := config.Default()
	if m := train.MFU(cfg, "NVIDIA H100 80GB HBM3", 1e5); m == nil || *m <= 0 || *m >= 1 {
		t.Errorf("MFU on an H100 at 100k tok/s: %v", m)
	}
	if m := train.MFU(cfg, "cpu", 1e5); m != nil {
		t.Errorf("MFU on the CPU: %v, want none", *m)
	}
}
