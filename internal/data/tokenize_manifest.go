// This file installs the shards of `compact tokenize` and records where
// they came from. The shards' llm.c headers carry the tokenizer's name; the
// rest (the input files, the options, the split, each shard's token count)
// goes to a sidecar JSON beside them, PREFIX_tokenize.json (tokenize.json
// without a prefix), which a reader of the header-only llm.c format never
// sees. Shards of the same prefix from an earlier run are refused unless
// Overwrite, so a glob such as train_*.bin never mixes two runs.

package data

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// ManifestName is the sidecar JSON of the shards of prefix.
func ManifestName(prefix string) string {
	if prefix == "" {
		return "tokenize.json"
	}
	return prefix + "_tokenize.json"
}

// Source is one input file of a tokenize run.
type Source struct {
	Path        string `json:"path"`
	Bytes       int64  `json:"bytes"`
	Format      string `json:"format"`
	Compression string `json:"compression,omitempty"`
}

// ShardInfo is one shard of a manifest.
type ShardInfo struct {
	File   string `json:"file"`
	Tokens int64  `json:"tokens"`
}

// Manifest is the sidecar JSON of a tokenize run.
type Manifest struct {
	Tokenizer      string      `json:"tokenizer"`
	SpecialTokens  string      `json:"special_tokens"`
	VocabSize      int         `json:"vocab_size"`
	EOT            uint32      `json:"eot"`
	Field          string      `json:"field"`
	ValFraction    float64     `json:"val_fraction"`
	ShardTokens    int         `json:"shard_tokens"`
	Sources        []Source    `json:"sources"`
	Documents      int         `json:"documents"`
	Skipped        int         `json:"skipped"`
	Bytes          int64       `json:"text_bytes"`
	TrainDocuments int         `json:"train_documents"`
	ValDocuments   int         `json:"val_documents"`
	TrainTokens    int64       `json:"train_tokens"`
	ValTokens      int64       `json:"val_tokens"`
	ValCut         *ValCut     `json:"val_cut,omitempty"`
	Split          string      `json:"split"`
	Train          []ShardInfo `json:"train_shards"`
	Val            []ShardInfo `json:"val_shards"`
	Created        time.Time   `json:"created"`
}

// StaleShardsError refuses an output directory that holds shards of the
// same prefix from an earlier run.
type StaleShardsError struct {
	Dir, Prefix string
	Files       []string // base names
}

func (e *StaleShardsError) Error() string {
	list := strings.Join(e.Files, ", ")
	if len(e.Files) > 4 {
		list = strings.Join(e.Files[:4], ", ") + fmt.Sprintf(" and %d more", len(e.Files)-4)
	}
	return fmt.Sprintf("tokenize: %s already holds shards named like %s from an earlier run (%s); a glob such as %s would read them with the new ones: pass --overwrite to replace them, or choose another --out or --prefix",
		e.Dir, ShardName(e.Prefix, "train", 0), list, strings.Replace(ShardName(e.Prefix, "train", 0), "000000", "*", 1))
}

// existingShards lists the base names of the shards of prefix in dir (and
// its manifest), sorted.
func existingShards(dir, prefix string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tokenize: output directory %s: %w", dir, err)
	}
	p := ""
	if prefix != "" {
		p = regexp.QuoteMeta(prefix) + "_"
	}
	re := regexp.MustCompile(`^` + p + `(train|val)_[0-9]{6,}\.bin$`)
	var out []string
	for _, e := range ents {
		if re.MatchString(e.Name()) || e.Name() == ManifestName(prefix) {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// installShards moves the staged shards of res into opts.OutDir, removes
// the old ones (old, base names) that the new set does not replace, and
// writes the manifest. res's paths become the installed ones.
func installShards(opts TokenizeOptions, res *TokenizeResult, old []string, sources []Source) error {
	m := Manifest{Tokenizer: opts.Tokenizer.Name(), SpecialTokens: opts.SpecialTokens, VocabSize: opts.Tokenizer.VocabSize(), EOT: opts.Tokenizer.EOT(),
		Field: opts.Field, ValFraction: opts.ValFraction, ShardTokens: opts.ShardTokens, Sources: sources,
		Documents: res.Documents, Skipped: res.Skipped, Bytes: res.Bytes, TrainDocuments: res.TrainDocuments,
		ValDocuments: res.ValDocuments, TrainTokens: res.TrainTokens, ValTokens: res.ValTokens, ValCut: res.ValCut,
		Split: res.SplitSummary(), Created: time.Now().UTC(), Train: []ShardInfo{}, Val: []ShardInfo{}}
	if m.SpecialTokens == "" {
		m.SpecialTokens = SpecialText
	}
	if m.Field == "" {
		m.Field = "text"
	}
	if m.ShardTokens <= 0 {
		m.ShardTokens = DefaultShardTokens
	}
	installed := map[string]bool{}
	move := func(paths []string, infos *[]ShardInfo) ([]string, error) {
		var out []string
		for _, p := range paths {
			st, err := os.Stat(p)
			if err != nil {
				return nil, fmt.Errorf("tokenize: %w", err)
			}
			name := filepath.Base(p)
			dst := filepath.Join(opts.OutDir, name)
			if err := os.Rename(p, dst); err != nil {
				return nil, fmt.Errorf("tokenize: installing %s: %w", dst, err)
			}
			installed[name] = true
			*infos = append(*infos, ShardInfo{File: name, Tokens: (st.Size() - HeaderBytes) / tokenBytes(opts.Tokenizer)})
			out = append(out, dst)
		}
		return out, nil
	}
	var err error
	if res.TrainShards, err = move(res.TrainShards, &m.Train); err != nil {
		return err
	}
	if res.ValShards, err = move(res.ValShards, &m.Val); err != nil {
		return err
	}
	for _, name := range old {
		if name != ManifestName(opts.Prefix) {
			res.Replaced = append(res.Replaced, name)
		}
		if installed[name] {
			continue // the rename replaced it
		}
		if err := os.Remove(filepath.Join(opts.OutDir, name)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("tokenize: removing the earlier run's %s: %w", name, err)
		}
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	res.Manifest = filepath.Join(opts.OutDir, ManifestName(opts.Prefix))
	tmp := res.Manifest + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("tokenize: manifest: %w", err)
	}
	if err := os.Rename(tmp, res.Manifest); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("tokenize: manifest: %w", err)
	}
	syncDir(opts.OutDir)
	return nil
}

// tokenBytes is the size of one token in the shards of tok.
func tokenBytes(tok Tokenizer) int64 {
	if tok.VocabSize() > 1<<16 {
		return 4
	}
	return 2
}
