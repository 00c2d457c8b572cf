#!/usr/bin/env python3
"""PyTorch baseline for `compact bench` (SPEC section 9).

The same LLaMA definition as configs/llama-*.yaml (transformers
LlamaForCausalLM, SDPA attention), sequence length 256, micro-batch 64, no
accumulation. As SPEC section 9 measures PyTorch: bf16 weights updated in
place by fused AdamW (bf16 moments follow the parameter dtype), no fp32
master copy (--master adds one, as the first benchmark table did).
Modes:
  eager         the model as it is
  compile       torch.compile(model)
  compile_ckpt  torch.compile + per-block activation checkpointing
                (transformers' gradient_checkpointing_enable, non-reentrant),
                the recipe a memory-conscious PyTorch user picks
Prints tok/s, TFLOP/s (same FLOP count as compact: 6 per matmul weight per
token plus causal attention) and peak = torch.cuda.max_memory_allocated.

usage: torch_baseline.py [--sizes 60m,130m,350m,1b] [--modes eager,compile,compile_ckpt] [--master] [--json FILE]
"""
import argparse
import json
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

# hidden, intermediate, heads, layers: the paper's sizes, as configs/llama-*.yaml.
SIZES = {"60m": (512, 1376, 8, 8), "130m": (768, 2048, 12, 12), "350m": (1024, 2736, 16, 24), "1b": (2048, 5461, 32, 24)}


def flops_per_token(h, f, layers, vocab, T):
    matmul = layers * (4 * h * h + 3 * h * f) + vocab * h
    return 6 * matmul + 3 * layers * 2 * h * T


def run(size, mode, B, T, vocab, steps, warmup, use_master):
    h, f, nh, nl = SIZES[size]
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=h, intermediate_size=f, num_attention_heads=nh,
                      num_key_value_heads=nh, num_hidden_layers=nl, max_position_embeddings=T,
                      attn_implementation="sdpa", tie_word_embeddings=False)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = LlamaForCausalLM(cfg).cuda().to(torch.bfloat16)
    if mode == "compile_ckpt":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.train()
    master = [p.detach().float().clone().requires_grad_(True) for p in model.parameters()] if use_master else None
    opt = torch.optim.AdamW(master if use_master else model.parameters(), lr=1e-3, weight_decay=0.0, fused=True)
    fwd = torch.compile(model) if mode.startswith("compile") else model
    x = torch.randint(0, vocab, (B, T), device="cuda")
    y = torch.randint(0, vocab, (B, T), device="cuda")

    def step():
        logits = fwd(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, vocab), y.view(-1))
        loss.backward()
        if not use_master:
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss
        for p, m in zip(model.parameters(), master):
            m.grad = p.grad.float()
            p.grad = None
        opt.step()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            for p, m in zip(model.parameters(), master):
                p.copy_(m)
        return loss

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    torch.cuda.synchronize()
    el = time.perf_counter() - start
    tps = B * T * steps / el
    res = {"name": f"torch {mode} {size}", "size": size, "mode": mode, "master": use_master, "tok_per_s": tps, "tflops": tps * flops_per_token(h, f, nl, vocab, T) / 1e12,
           "peak_bytes": torch.cuda.max_memory_allocated(), "step_ms": el / steps * 1e3, "last_loss": loss.item()}
    del model, opt, master, fwd
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="60m,130m,350m,1b")
    ap.add_argument("--modes", default="eager,compile,compile_ckpt")
    ap.add_argument("--master", action="store_true", help="keep fp32 master weights (off: bf16 weights, as SPEC 9)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=50304)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args()
    out = []
    for size in a.sizes.split(","):
        for mode in a.modes.split(","):
            r = run(size, mode, a.batch, a.seq, a.vocab, a.steps, a.warmup, a.master)
            print(f"{r['name']:28s} {r['tok_per_s']:10.0f} tok/s {r['tflops']:8.1f} TFLOP/s "
                  f"{r['peak_bytes'] / 2**30:8.2f} GiB peak {r['step_ms']:8.1f} ms/step", flush=True)
            out.append(r)
    if a.json:
        json.dump(out, open(a.json, "w"), indent=2)


if __name__ == "__main__":
    main()
