#!/usr/bin/env python3
"""Check compact against HuggingFace transformers.

Reads the directories written by TestExportHFReference (internal/train/
reference_test.go): `full/` and `compact/`, each with a checkpoint
(config.json, model.safetensors), one batch and our loss, gradients and the
losses of four optimizer steps. Loads the checkpoint with LlamaForCausalLM in
float32, recomputes all of it in PyTorch (CompAct's update written out from
the paper's formulas) and prints relative errors; exits 1 if any is over its
tolerance.

usage: hf_reference.py DIR [--tol-loss 1e-5] [--tol-grad 1e-4]
"""
import argparse
import json
import math
import sys

import torch
from safetensors.torch import load_file
from transformers import LlamaForCausalLM


def rel(a, b):
    return (torch.linalg.vector_norm((a - b).double()) / max(torch.linalg.vector_norm(b.double()), 1e-30)).item()


def loss_of(model, inputs, targets):
    logits = model(input_ids=inputs).logits.float()
    return torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-100)


def check(d, tol_loss, tol_grad, failures):
    meta = json.load(open(f"{d}/ours.json"))
    ours = load_file(f"{d}/ours.safetensors")
    model = LlamaForCausalLM.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager").double()
    B, T = meta["B"], meta["T"]
    inputs = torch.tensor(meta["inputs"]).view(B, T)
    targets = torch.tensor(meta["targets"]).view(B, T)
    params = dict(model.named_parameters())
    if model.config.tie_word_embeddings:
        params.pop("lm_head.weight", None)
    compact = meta["compact"]
    alpha, oscale, ceps = meta.get("alpha", 0.25), meta.get("o_proj_scale", 0.5), meta.get("compact_eps", 1e-6)
    # adamw_hf: transformers' AdamW (bias correction in the step size);
    # adamw_torch: torch.optim.AdamW. Older exports were all torch's form.
    hf = meta.get("optimizer", "adamw_torch") == "adamw_hf"
    P = {n[:-2]: ours[n].double() for n in ours if n.endswith(".P")}
    rows = []

    def record(what, err, tol):
        rows.append((what, err, tol))
        if not err <= tol:
            failures.append(f"{d}: {what}: {err:.3g} > {tol:g}")

    # One forward/backward: loss and every gradient (CompAct: G = dW P).
    loss = loss_of(model, inputs, targets)
    loss.backward()
    record("loss step 0", abs(loss.item() - meta["losses"][0]) / abs(loss.item()), tol_loss)
    worst = ("", 0.0)
    for name, p in params.items():
        g = p.grad
        if name in P:
            g = g @ P[name]
        e = rel(ours[name].double(), g)
        if e > worst[1]:
            worst = (name, e)
    record(f"grads (worst {worst[0]})", worst[1], tol_grad)

    # Four optimizer steps on the same batch, as compact took them.
    lr, (b1, b2), eps, clip = meta["lr"], meta["betas"], meta["eps"], meta["grad_clip"]
    def zeros(n, p):
        return torch.zeros(p.shape[0], P[n].shape[1], dtype=p.dtype) if n in P else torch.zeros_like(p)
    m = {n: zeros(n, p) for n, p in params.items()}
    v = {n: zeros(n, p) for n, p in params.items()}
    losses = []
    for step in range(1, 5):
        model.zero_grad()
        loss = loss_of(model, inputs, targets)
        loss.backward()
        losses.append(loss.item())
        grads = {n: (p.grad @ P[n] if n in P else p.grad) for n, p in params.items()}
        norm = math.sqrt(sum((g.double() ** 2).sum().item() for g in grads.values()))
        scale = min(1.0, clip / (norm + 1e-6)) if clip > 0 else 1.0
        with torch.no_grad():
            for n, p in params.items():
                g = grads[n] * scale
                m[n].mul_(b1).add_(g, alpha=1 - b1)
                v[n].mul_(b2).addcmul_(g, g, value=1 - b2)
                e = ceps if n in P else eps
                if hf:
                    d = math.sqrt(1 - b2 ** step) / (1 - b1 ** step) * m[n] / (v[n].sqrt() + e)
                else:
                    d = (m[n] / (1 - b1 ** step)) / ((v[n] / (1 - b2 ** step)).sqrt() + e)
                if n in P:
                    p.sub_(lr * ((alpha * d) @ P[n].T))
                else:
                    s = oscale * alpha if (compact and "o_proj" in n) else 1.0
                    p.sub_(lr * s * d)
    for i, (a, b) in enumerate(zip(meta["losses"], losses)):
        record(f"loss after {i} updates", abs(a - b) / abs(b), tol_loss * 10 if i else tol_loss)
    print(f"== {d} ({meta['device']}, compact={compact})")
    for what, err, tol in rows:
        print(f"  {what:60s} rel err {err:.3g}  (tol {tol:g})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--tol-loss", type=float, default=1e-5)
    ap.add_argument("--tol-grad", type=float, default=1e-4)
    a = ap.parse_args()
    torch.manual_seed(0)
    failures = []
    for sub in ("full", "compact"):
        check(f"{a.dir}/{sub}", a.tol_loss, a.tol_grad, failures)
    if failures:
        print("FAIL\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("PASS: compact matches transformers")


if __name__ == "__main__":
    main()
