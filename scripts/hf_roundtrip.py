"""compact <-> transformers round trip (see hf_roundtrip.sh).

1. transformers builds a tiny random LlamaForCausalLM (hidden 64, 2 layers,
   4 heads, 2 kv heads, vocab 320) and saves it with save_pretrained
   (safetensors) in fp32 and in bf16; it computes the loss on fixed tokens.
2. `compact eval` loads both directories and reports the same loss (CPU
   float32: 1e-4 relative; the CUDA backend computes in bf16: 2e-2).
3. `compact finetune` trains the fp32 model a few steps (causal, CompAct
   rank 8) and, separately, a classifier (score.weight head); transformers
   loads both checkpoints and reproduces compact's reported validation loss
   (and accuracy for the classifier).
"""

import argparse
import json
import os
import struct
import subprocess
import sys

rows = []  # (check, transformers, compact, rel diff, tolerance, ok)


def row(name, ref, got, tol):
    rel = abs(ref - got) / max(abs(ref), 1e-12)
    rows.append((name, ref, got, rel, tol, rel <= tol))


def table():
    print("\n%-44s %12s %12s %10s %8s  %s" % ("check", "transformers", "compact", "rel diff", "tol", "ok"))
    for n, r, g, d, t, ok in rows:
        print("%-44s %12.6f %12.6f %10.2e %8.0e  %s" % (n, r, g, d, t, "yes" if ok else "NO"))


def write_shard(path, tokens):
    # llm.c shard: 256 int32 header (magic 20240520, version 1, count), uint16 tokens
    hdr = [0] * 256
    hdr[0], hdr[1], hdr[2] = 20240520, 1, len(tokens)
    with open(path, "wb") as f:
        f.write(struct.pack("<256i", *hdr))
        f.write(struct.pack("<%dH" % len(tokens), *tokens))


def compact(args, *cmd):
    full = [args.bin] + list(cmd)
    print("+", " ".join(full), flush=True)
    p = subprocess.run(full, capture_output=True, text=True)
    sys.stderr.write(p.stderr[-3000:])
    if p.returncode != 0:
        raise RuntimeError("compact exited %d" % p.returncode)
    return p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="bin/compact")
    ap.add_argument("--work", default="/tmp/hf_roundtrip")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    W = lambda *p: os.path.join(args.work, *p)

    import torch
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    print("torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available())
    torch.manual_seed(0)
    T, B = 32, 4
    cfg = LlamaConfig(vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False,
                      initializer_range=0.1, bos_token_id=256, eos_token_id=256)
    model = LlamaForCausalLM(cfg).float().eval()
    model.save_pretrained(W("hf32"), safe_serialization=True)
    m16 = LlamaForCausalLM(cfg)
    m16.load_state_dict(model.state_dict())
    m16.to(torch.bfloat16).save_pretrained(W("hf16"), safe_serialization=True)

    g = torch.Generator().manual_seed(1)
    val = torch.randint(0, 256, (B * T + 1,), generator=g).tolist()
    trn = torch.randint(0, 256, (64 * T + 1,), generator=g).tolist()
    write_shard(W("val.bin"), val)
    write_shard(W("train.bin"), trn)

    def causal_loss(m, dtype=torch.float32):
        m = m.to(dtype).eval()
        x = torch.tensor([val[w * T: w * T + T + 1] for w in range(B)])
        with torch.no_grad():
            logits = m(input_ids=x[:, :-1]).logits.double()
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1)).item()

    ref32 = causal_loss(model)
    ref16 = causal_loss(LlamaForCausalLM.from_pretrained(W("hf16"), torch_dtype=torch.bfloat16).float())

    common = ["--set", "data.tokenizer=byte", "--set", "train.seq_len=%d" % T, "--set", "train.micro_batch=%d" % B]
    ev = lambda d, dev: json.loads(compact(args, "eval", "--checkpoint", d, "--data", W("val.bin"), "--batches", "1",
                                           "--device", dev, "--json", *common))["val_loss"]
    row("load fp32 HF dir, eval loss (cpu)", ref32, ev(W("hf32"), "cpu"), 1e-4)
    row("load bf16 HF dir, eval loss (cpu)", ref16, ev(W("hf16"), "cpu"), 1e-4)
    cuda = torch.cuda.is_available()

    def on_cuda(name, fn):
        # CUDA rows must not hide the CPU ones: a failure is recorded, not fatal.
        if not cuda:
            return
        try:
            fn()
        except BaseException as e:  # noqa: BLE001
            print("cuda check %r failed: %s" % (name, e), flush=True)
            rows.append((name, float("nan"), float("nan"), float("nan"), 0, False))

    on_cuda("load fp32 HF dir, eval loss (cuda, bf16)",
            lambda: row("load fp32 HF dir, eval loss (cuda, bf16)", ref32, ev(W("hf32"), "cuda"), 2e-2))

    # Causal fine-tune with CompAct rank 8; transformers reloads the result.
    ft = ["--steps", "5", "--set", "data.train=" + W("train.bin"), "--set", "data.val=" + W("val.bin"),
          "--set", "train.eval_batches=1", "--set", "compact.rank=8", "--set", "compact.alpha=2",
          "--set", "compact.update_gap=500", "--set", "train.lr=3e-3", "--set", "train.checkpoint_every=5"] + common
    compact(args, "finetune", "--base", W("hf32"), "--out", W("ft"), "--device", "cpu", *ft)
    last = [json.loads(l) for l in open(W("ft", "metrics.jsonl"))][-1]
    back = LlamaForCausalLM.from_pretrained(W("ft", "checkpoints", "step-0000005"), torch_dtype=torch.float32)
    row("finetune causal (cpu), reload val loss", causal_loss(back), last["val_loss"], 1e-4)

    def ft_cuda():
        compact(args, "finetune", "--base", W("hf32"), "--out", W("ftcuda"), "--device", "cuda", *ft)
        lastc = [json.loads(l) for l in open(W("ftcuda", "metrics.jsonl"))][-1]
        back = LlamaForCausalLM.from_pretrained(W("ftcuda", "checkpoints", "step-0000005"), torch_dtype=torch.float32)
        row("finetune causal (cuda), reload val loss", causal_loss(back), lastc["val_loss"], 2e-2)
    on_cuda("finetune causal (cuda), reload val loss", ft_cuda)

    # Classifier: JSONL text/label; transformers reads the last non-pad token.
    words = ["red", "blue", "green"]
    with open(W("cls_train.jsonl"), "w") as f:
        for i in range(96):
            f.write(json.dumps({"text": "item %d is %s" % (i, words[i % 3]), "label": i % 3}) + "\n")
    vtexts = [("thing %d looks %s%s" % (i, words[i % 3], "!" * (i % 5)), i % 3) for i in range(24)]
    with open(W("cls_val.jsonl"), "w") as f:
        for t, l in vtexts:
            f.write(json.dumps({"text": t, "label": l}) + "\n")
    compact(args, "finetune", "--base", W("hf32"), "--out", W("cls"), "--device", "cpu", "--steps", "6",
            "--set", "finetune.task=classify", "--set", "finetune.num_labels=3",
            "--set", "data.train=" + W("cls_train.jsonl"), "--set", "data.val=" + W("cls_val.jsonl"),
            "--set", "compact.rank=8", "--set", "compact.alpha=2", "--set", "train.lr=3e-3",
            "--set", "train.checkpoint_every=6", "--set", "train.eval_batches=100", *common)
    lastk = [json.loads(l) for l in open(W("cls", "metrics.jsonl"))][-1]
    clf = LlamaForSequenceClassification.from_pretrained(W("cls", "checkpoints", "step-0000006"), torch_dtype=torch.float32).eval()
    pad = clf.config.pad_token_id
    ids = [list(t.encode())[:T] for t, _ in vtexts]
    x = torch.tensor([s + [pad] * (T - len(s)) for s in ids])
    y = torch.tensor([l for _, l in vtexts])
    with torch.no_grad():
        logits = clf(input_ids=x).logits.double()
    row("finetune classify (cpu), reload val loss", torch.nn.functional.cross_entropy(logits, y).item(), lastk["val_loss"], 1e-4)
    row("finetune classify (cpu), reload val accuracy", (logits.argmax(-1) == y).double().mean().item(), lastk["val_accuracy"], 1e-9)
    ref_cls = torch.nn.functional.cross_entropy(logits, y).item()
    on_cuda("classifier eval loss (cuda vs transformers)", lambda: row(
        "classifier eval loss (cuda vs transformers)", ref_cls,
        json.loads(compact(args, "eval", "--checkpoint", W("cls"), "--device", "cuda", "--json"))["val_loss"], 2e-2))

    table()
    if not all(r[5] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        table()  # what was compared before the failure
        raise
