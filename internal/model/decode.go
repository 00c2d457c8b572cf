package model

// Generation with a KV cache: each step runs one new token per sequence
// through the blocks, appending its k and v to per-layer caches and
// attending to everything cached, so a token costs O(t) attention and the
// same weight GEMMs as one row of a forward pass, not a forward over the
// whole prefix.

import (
	"fmt"

	"github.com/compact-llm/compact/internal/gpu"
)

// KVCache holds B sequences' keys and values (after RoPE) for up to MaxT
// positions, plus the scratch one decode step needs.
type KVCache struct {
	B, MaxT int
	Len     int // positions filled

	k, v                []*gpu.Tensor // per layer (MaxT*B, KV*D), row pos*B + b
	tok                 *gpu.Tensor   // (B) Int32
	x, h, q, kk, vv, at *gpu.Tensor   // (B, C) / (B, KV*D)
	gate, up, a         *gpu.Tensor   // (B, F)
	logits              *gpu.Tensor   // (B, V)
	owned               []*gpu.Tensor
	m                   *Model
}

// NewKVCache allocates a cache for B sequences of up to maxT positions. The
// backend must implement gpu.Decoder and the model must be a causal LM.
func (m *Model) NewKVCache(B, maxT int) (*KVCache, error) {
	if _, ok := m.be.(gpu.Decoder); !ok {
		return nil, fmt.Errorf("the %s backend has no KV-cache decoding yet (use --device cpu)", m.be.Name())
	}
	if m.lmHead == nil {
		return nil, fmt.Errorf("a sequence classifier has no LM head to generate with")
	}
	if B <= 0 || maxT <= 0 {
		return nil, fmt.Errorf("KV cache of %d sequences x %d positions", B, maxT)
	}
	if maxT > m.Cfg.MaxSeqLen {
		return nil, fmt.Errorf("%d positions exceed the model's max_position_embeddings %d", maxT, m.Cfg.MaxSeqLen)
	}
	c := &KVCache{B: B, MaxT: maxT, m: m}
	var err error
	alloc := func(name string, p gpu.Precision, shape ...int) *gpu.Tensor {
		if err != nil {
			return nil
		}
		var t *gpu.Tensor
		if t, err = m.be.Alloc(name, gpu.Activations, p, shape...); t != nil {
			c.owned = append(c.owned, t)
		}
		return t
	}
	C, F, KV, V := m.Cfg.Hidden, m.ffn(), m.Cfg.KVWidth(), m.Cfg.VocabSize
	for l := 0; l < m.Cfg.Layers; l++ {
		c.k = append(c.k, alloc(fmt.Sprintf("kv.%d.k", l), gpu.Low, maxT*B, KV))
		c.v = append(c.v, alloc(fmt.Sprintf("kv.%d.v", l), gpu.Low, maxT*B, KV))
	}
	c.tok = alloc("kv.tokens", gpu.Int32, B)
	c.x, c.h, c.q, c.at = alloc("kv.x", gpu.Low, B, C), alloc("kv.h", gpu.Low, B, C), alloc("kv.q", gpu.Low, B, C), alloc("kv.att", gpu.Low, B, C)
	c.kk, c.vv = alloc("kv.k", gpu.Low, B, KV), alloc("kv.v", gpu.Low, B, KV)
	c.gate, c.up, c.a = alloc("kv.gate", gpu.Low, B, F), alloc("kv.up", gpu.Low, B, F), alloc("kv.a", gpu.Low, B, F)
	c.logits = alloc("kv.logits", gpu.Full, B, V)
	if err != nil {
		c.Free()
		return nil, fmt.Errorf("KV cache %dx%d: %w", B, maxT, err)
	}
	return c, nil
}

// Free releases the cache.
func (c *KVCache) Free() {
	for _, t := range c.owned {
		c.m.be.Free(t)
	}
	c.owned = nil
}

// Step feeds one token per sequence at position c.Len and returns the
// next-token logits (B, V), row-major.
func (c *KVCache) Step(tokens []int32) ([]float64, error) {
	m := c.m
	be, cfg := m.be, m.Cfg
	if len(tokens) != c.B {
		return nil, fmt.Errorf("decode step with %d tokens for %d sequences", len(tokens), c.B)
	}
	for i, id := range tokens {
		if id < 0 || int(id) >= cfg.VocabSize {
			return nil, fmt.Errorf("token %d of sequence %d is outside the vocabulary of %d", id, i, cfg.VocabSize)
		}
	}
	pos := c.Len
	if pos >= c.MaxT {
		return nil, fmt.Errorf("KV cache full: %d positions", c.MaxT)
	}
	if err := be.UploadInt32(c.tok, tokens); err != nil {
		return nil, err
	}
	be.Embedding(c.x, m.wte.W, c.tok)
	t := blockTensors{x: c.x, xmid: c.x, out: c.x, h: c.h, a: c.a, q: c.q, k: c.kk, v: c.vv, att: c.at, gate: c.gate, up: c.up}
	for l := range m.blocks {
		if err := m.block(l, &t, c); err != nil {
			return nil, err
		}
	}
	be.RMSNorm(c.h, nil, c.x, m.normF.W, float32(cfg.RMSEps))
	be.Gemm(c.logits, c.h, m.lmHead.W, false, true, 1, 0)
	c.Len++
	return be.DownloadF64(c.logits)
}

// attend is decoding's attention: the new row's k and v join the cache at
// position Len, and its q attends to every cached position.
func (c *KVCache) attend(l int, t *blockTensors) error {
	be, cfg := c.m.be, c.m.Cfg
	dec := be.(gpu.Decoder)
	pos, B := c.Len, c.B
	H, KV, D, theta := cfg.Heads, cfg.KVHeads, cfg.HeadDim(), float32(cfg.RopeTheta)
	dec.RoPEAt(t.q, pos, H, D, theta)
	dec.RoPEAt(t.k, pos, KV, D, theta)
	if err := be.Copy(c.k[l].Rows(pos*B, (pos+1)*B), t.k); err != nil {
		return err
	}
	if err := be.Copy(c.v[l].Rows(pos*B, (pos+1)*B), t.v); err != nil {
		return err
	}
	dec.AttentionDecode(t.att, t.q, c.k[l], c.v[l], B, pos+1, H, KV, D)
	return nil
}

// save keeps nothing: decoding has no backward.
func (c *KVCache) save(int, *gpu.Tensor, ...linear) {}
