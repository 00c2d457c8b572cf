#!/usr/bin/env python3
"""Golden files for compact's HuggingFace tokenizer.json support.

Trains small BPE tokenizers with the HuggingFace `tokenizers` library on a
fixed text embedded below (no network, no pretrained files), in the shapes of
the two families internal/data/hftokenizer.go reads:

  gpt2               byte-level BPE: ByteLevel pre-tokenizer (GPT-2 regex) and
                     decoder, merges written as "a b" strings (older files)
  gpt2_prefix        the same with ByteLevel(add_prefix_space=true)
  llama3             LLaMA-3: Sequence[Split(LLaMA-3 regex), ByteLevel(no
                     regex)], ignore_merges, special tokens after the vocab,
                     TemplateProcessing adding <|begin_of_text|>, merges as
                     [a, b] pairs (newer files)
  qwen2              llama3 with the Qwen2 regex (\\p{N} one digit at a time)
                     and without ignore_merges
  llama2             LLaMA-2 (SentencePiece BPE converted by transformers,
                     legacy): byte_fallback with <0x00>..<0xFF> at ids 3..258,
                     normalizer Sequence[Prepend("▁"), Replace(" ", "▁")], no
                     pre-tokenizer, decoder Sequence[Replace("▁", " "),
                     ByteFallback, Fuse, Strip(" ", 1, 0)], <s> as BOS
  llama2_metaspace   the same vocabulary, non-legacy conversion: no normalizer,
                     Metaspace(prepend_scheme first, split false) pre-tokenizer
  mistral_metaspace  the same vocabulary with the older Metaspace format
                     (add_prefix_space) as pre-tokenizer and decoder
  gemma3             Gemma-3's layout on the same vocabulary: normalizer
                     Replace(" ", "▁") (no Prepend), pre-tokenizer Split on the
                     String " " MergedWithPrevious, decoder Sequence[Replace("▁",
                     " "), ByteFallback, Fuse] (no Strip)
  split_string       no normalizer, Sequence[Split(String " ", Contiguous),
                     Split(String "e", MergedWithNext), Split(String "--",
                     MergedWithPrevious, invert), Split(String TAB, Removed)]
                     on the same vocabulary: every split behavior on a String
                     pattern, where the pieces matter

For each it writes OUT/<name>/tokenizer.json and OUT/<name>/golden.json:
token ids of a list of test strings as `tokenizers` encodes them (without the
post-processor: add_special_tokens=False; "ids"), with special tokens encoded
as text (encode_special_tokens=True; "ids_plain"), with the post-processor
("ids_post"), their decodings (skip_special_tokens=False), and decodings of
every single id and of random id sequences.

usage: python3 scripts/hf_tokenizer_golden.py OUT
(then copy OUT/* to internal/data/testdata/hf/). Needs python3 with
`tokenizers` (0.19 or later); run on the GPU machine, where it is installed.
The committed files came from tokenizers 0.23.2 (OUT/GENERATED.txt). Training
the llama2 vocabulary is not bit-for-bit repeatable (ties in limit_alphabet),
so replace all the files of one run together, never some of them.
"""
import json
import os
import random
import sys
import traceback

CORPUS = """\
The quick brown fox jumps over the lazy dog. The dog doesn't mind; it's been
asleep all afternoon, and we'll let it sleep. They're sure you've seen this
sentence before: it uses every letter of the English alphabet at least once.

In 1969, Apollo 11 landed on the Moon. The mission lasted 8 days, 3 hours,
18 minutes and 35 seconds. Prices rose 3.5% in 2023; a coffee cost $4.99 and
a sandwich €7,50. Call 555-0123 or write to info@example.com before 12:30.

package main

import (
	"fmt"
	"strings"
)

// Greet returns a greeting for name.
func Greet(name string) string {
	if name == "" {
		return "Hello, world!"
	}
	return fmt.Sprintf("Hello, %s!", strings.TrimSpace(name))
}

func main() {
	for i := 0; i < 3; i++ {
		fmt.Println(Greet("gopher"), i)
	}
}

def fibonacci(n):
    \"\"\"Return the first n Fibonacci numbers.\"\"\"
    a, b = 0, 1
    out = []
    for _ in range(n):
        out.append(a)
        a, b = b, a + b
    return out


if __name__ == "__main__":
    print(fibonacci(10))  # [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]

#include <stdio.h>
int main(void) { printf("%d\\n", 42); return 0; }

Punctuation!!! Questions??? Ellipses... Dashes -- and --- and (parentheses),
[brackets], {braces}, <angles>, "quotes", 'single quotes', `backticks`.
Math: 2 + 2 = 4, 10 / 3 ≈ 3.333, x^2 - y^2 = (x - y)(x + y), a <= b && c != d.

Whitespace    runs     of    spaces, and	tabs		here.
Trailing spaces here.   
   Leading spaces there.


Blank lines above.

Café, naïve, façade, jalapeño, Ångström, São Paulo, Zürich, Kraków, Ελλάδα.
Résumé of the coöperative: über-façade déjà vu, crème brûlée, piñata.

日本語の文章です。東京は日本の首都です。中文也可以：北京是中国的首都。

Emoji: 🙂 😀 👍 🎉 ❤️ and a rocket 🚀 with a bell\a char.

I'm, you're, he's, she'd, we've, they'll, it's, don't, can't, won't.
I'M, YOU'RE, HE'S, SHE'D, WE'VE, THEY'LL, IT'S, DON'T, CAN'T, WON'T.
Numbers 0 1 22 333 4444 55555 666666 7777777 and 3.14159 and 1,000,000.
Windows line endings\r\nare here\r\ntoo.
"""

# Strings checked token for token. Characters outside the training text
# exercise byte fallback; special tokens appear inside text.
TEXTS = [
    "Hello world",
    "hello world",
    " the",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure you'll like it; they've said it's what we'd do.",
    "DON'T SHOUT, WE'LL HEAR YOU'RE THERE'S 'Re 'vE 'lL 'D 'ſ",
    "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"héllo, 世界\")\n}\n",
    "def f(x):\n    return x ** 2  # square\n",
    "Numbers: 0 1 12 123 1234 12345 3.14159 1,000,000 ½ ٣٤٥ ⅷ x1y22z333",
    "   leading spaces",
    "trailing spaces   ",
    "multiple    spaces   between  words",
    "\n\n",
    "\n",
    "line one\n\nline two\r\nline three\r\n\r\n",
    "tabs\tand\t\tmore\ttabs",
    "  \n  \n\n  x",
    "   \n",
    "x\r\n\r\ny",
    "",
    " ",
    "  ",
    "     ",
    "\t",
    "Café naïve façade jalapeño Ångström",
    "日本語のテキストと中文文本",
    "Emoji: 🙂👍🏽 🚀 family 👨‍👩‍👧",
    "Unseen scripts: Ελληνικά русский עברית العربية हिन्दी ไทย 한국어",
    "Symbols: ∑∫√∞ ≠ ≤ ≥ ← → © ® ™ € £ ¥",
    "control\x01char and \x7f del and \x00 nul\x07",
    "unicode spaces:\u00a0nbsp\u3000ideographic\u2028linesep\u2009thin\u00a0 \u00a0",
    "<|endoftext|>",
    "Hello<|endoftext|>world",
    "a <|endoftext|> b <|endoftext|><|endoftext|>",
    "<s>Hello</s>",
    " <s> spaced </s> ",
    "<s>",
    "</s>",
    "<unk>",
    "<|begin_of_text|>Hello<|eot_id|>",
    "<|start_header_id|>user<|end_header_id|>\n\nHi there!<|eot_id|><|end_of_text|>",
    "partial <|endoftext and <s and </ and <|eot_id",
    "<tool>call</tool> and x <tool> y<tool>",
    "text <mask> more<mask>end   <mask>   z",
    "=" * 100,
    "a" * 100,
    "supercalifragilisticexpialidocious" * 3,
    "URL: https://example.com/path?q=1&r=2#frag",
    "JSON: {\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
    "Mixed123abc ABC123 x1y2z3",
    "ＦＵＬＬＷＩＤＴＨ ｆｏｒｍ",
    "combining: e\u0301 a\u0308 n\u0303",
    "The byte fallback handles ☃ and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and 🦀.",
    "▁already▁has▁metaspace ▁ x",
    "<0x41> looks like a byte token",
    "?!... --- ;;; :::",
    "I'd've",
    "Ends with newline\n",
    "a word, words, sword word_ x-word word\u00e9 (word) 1word word",
    "Ġ Ċ ĉ are byte-level characters as text",
    CORPUS,
]

RANDOM_ALPHABET = [
    "a", "Z", "é", "ж", "世", "7", "٣", "½", " ", "  ", "\n", "\t", "\u00a0",
    "\u2003", ".", ",", "'", "'s", "'ll", "'re", "'S", "'LL", "-", "😀",
    "\u0301", "_", "\x00", "{", "\r\n", "\r", "<s>", "</s>", "<|endoftext|>",
    "<|eot_id|>", "<tool>", "<mask>", "▁", "<0x41>", "ſ", "the", " the",
    "123456", "Hello", "dog",
]

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_SPECIALS = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|reserved_special_token_2|>", "<|eot_id|>",
]
BYTE_TOKENS = ["<0x%02X>" % b for b in range(256)]
SPECIAL_NAMES = [
    "<|endoftext|>", "<s>", "</s>", "<unk>", "<|begin_of_text|>",
    "<|end_of_text|>", "<|eot_id|>", "<tool>", "<mask>",
]


def corpus_lines():
    return CORPUS.splitlines(keepends=True)


def random_texts(n, seed):
    r = random.Random(seed)
    out = []
    for _ in range(n):
        out.append("".join(r.choice(RANDOM_ALPHABET) for _ in range(r.randrange(1, 24))))
    return out


def build_gpt2(tk):
    from tokenizers import Tokenizer, AddedToken, models, pre_tokenizers, decoders, trainers, processors
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500, min_frequency=2, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus_lines(), trainer=trainer)
    tok.post_processor = processors.ByteLevel()
    tok.add_tokens([AddedToken("<tool>", normalized=True), AddedToken("word", single_word=True, normalized=False)])
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=True)])
    j = json.loads(tok.to_str())
    # Older files (GPT-2's own) write merges as "a b" strings.
    j["model"]["merges"] = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    return j


def build_llama3(tk):
    from tokenizers import Tokenizer, Regex, models, pre_tokenizers, decoders, trainers, processors
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500, min_frequency=2, special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus_lines(), trainer=trainer)
    # As in LLaMA-3, the special tokens come after the BPE vocabulary.
    tok.add_special_tokens(LLAMA3_SPECIALS)
    bos = tok.token_to_id("<|begin_of_text|>")
    template = processors.TemplateProcessing(
        single="<|begin_of_text|> $A",
        pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
        special_tokens=[("<|begin_of_text|>", bos)])
    try:
        tok.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False), template])
    except Exception:  # older tokenizers without processors.Sequence
        tok.post_processor = template
    j = json.loads(tok.to_str())
    j["model"]["ignore_merges"] = True
    # Newer files write merges as [a, b] pairs.
    j["model"]["merges"] = [m.split(" ", 1) if isinstance(m, str) else m for m in j["model"]["merges"]]
    return j


def build_llama2(tk):
    from tokenizers import Tokenizer, AddedToken, models, normalizers, pre_tokenizers, decoders, trainers, processors
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    # Training only: split words at "▁" so merges stay inside words (removed below,
    # as LLaMA-2's tokenizer.json has no pre-tokenizer).
    tok.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    trainer = trainers.BpeTrainer(
        vocab_size=450, min_frequency=2, special_tokens=["<unk>", "<s>", "</s>"] + BYTE_TOKENS,
        limit_alphabet=64, show_progress=False)
    tok.train_from_iterator(corpus_lines(), trainer=trainer)
    tok.decoder = decoders.Sequence([
        decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
        decoders.Strip(content=" ", left=1, right=0),
    ])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    tok.add_tokens([AddedToken("<tool>", normalized=True)])
    j = json.loads(tok.to_str())
    j["pre_tokenizer"] = None
    byte_set = set(BYTE_TOKENS)
    # In LLaMA-2 the byte tokens are ordinary vocabulary, not added tokens.
    j["added_tokens"] = [t for t in j["added_tokens"] if t["content"] not in byte_set]
    j["model"]["byte_fallback"] = True
    j["model"]["fuse_unk"] = True
    j["model"]["unk_token"] = "<unk>"
    j["model"]["merges"] = [m.split(" ", 1) if isinstance(m, str) else m for m in j["model"]["merges"]]
    return j


def variants_from_llama2(j):
    """Non-legacy LLaMA-2 conversion and the older Mistral Metaspace format."""
    a = json.loads(json.dumps(j))
    a["normalizer"] = None
    a["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    b = json.loads(json.dumps(j))
    b["normalizer"] = None
    b["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "add_prefix_space": True}
    b["decoder"] = {"type": "Metaspace", "replacement": "▁", "add_prefix_space": True}
    b_modern = json.loads(json.dumps(b))
    b_modern["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
    b_modern["decoder"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
    return a, b, b_modern


def gemma3_from_llama2(j):
    """Gemma-3's normalizer, Split-on-String pre-tokenizer and decoder."""
    g = json.loads(json.dumps(j))
    g["normalizer"] = {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
    g["pre_tokenizer"] = {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": False}
    g["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}]}
    s = json.loads(json.dumps(j))
    s["normalizer"] = None
    s["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"String": " "}, "behavior": "Contiguous", "invert": False},
        {"type": "Split", "pattern": {"String": "e"}, "behavior": "MergedWithNext", "invert": False},
        {"type": "Split", "pattern": {"String": "--"}, "behavior": "MergedWithPrevious", "invert": True},
        {"type": "Split", "pattern": {"String": "\t"}, "behavior": "Removed", "invert": False},
    ]}
    return g, s


def write_tokenizer(out_dir, name, j, tk):
    """Writes OUT/name/tokenizer.json and returns the tokenizer HF loads from it."""
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "tokenizer.json")
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(j, ensure_ascii=False, indent=2))
    return tk.Tokenizer.from_file(path), d


def golden(tok, tk, name, rnd):
    vs = tok.get_vocab_size(with_added_tokens=True)
    has_est = hasattr(tok, "encode_special_tokens")

    def enc(text, plain=False, post=False):
        if plain:
            tok.encode_special_tokens = True
        try:
            return tok.encode(text, add_special_tokens=post)
        finally:
            if plain:
                tok.encode_special_tokens = False

    def case(text, full):
        e = enc(text)
        c = {"text": text, "ids": e.ids, "decoded": tok.decode(e.ids, skip_special_tokens=False)}
        if has_est:
            p = enc(text, plain=True)
            c["ids_plain"] = p.ids
            c["decoded_plain"] = tok.decode(p.ids, skip_special_tokens=False)
        if full:
            c["tokens"] = e.tokens
            c["ids_post"] = enc(text, post=True).ids
            if tok.normalizer is not None:
                c["normalized"] = tok.normalizer.normalize_str(text)
            if tok.pre_tokenizer is not None:
                c["pretokens"] = [s for s, _ in tok.pre_tokenizer.pre_tokenize_str(text)]
        return c

    r = random.Random(1234)
    decode_cases = []
    for _ in range(80):
        ids = [r.randrange(vs) for _ in range(r.randrange(1, 12))]
        decode_cases.append({"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
    return {
        "name": name,
        "tokenizers_version": tk.__version__,
        "encode_special_tokens_supported": has_est,
        "vocab_size": vs,
        "special_ids": {s: tok.token_to_id(s) for s in SPECIAL_NAMES},
        "cases": [case(t, t != CORPUS) for t in TEXTS] + [case(t, False) for t in rnd],
        "single_decoded": [tok.decode([i], skip_special_tokens=False) for i in range(vs)],
        "decode_cases": decode_cases,
    }


def dump_golden(g):
    """Compact JSON with one case per line."""
    def js(v):
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    parts = []
    for k, v in g.items():
        if isinstance(v, list):
            parts.append("%s:[\n%s\n]" % (js(k), ",\n".join(js(x) for x in v)))
        else:
            parts.append("%s:%s" % (js(k), js(v)))
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.environ.get("OUT", "."), "hf")
    import tokenizers as tk
    print("tokenizers", tk.__version__, "python", sys.version.split()[0])
    try:
        import transformers
        print("transformers", transformers.__version__)
    except Exception as e:  # not needed, only reported
        print("transformers not importable:", e)
    os.makedirs(out_dir, exist_ok=True)
    rnd = random_texts(120, 42)
    errors = []
    built = {}

    def attempt(label, fn):
        try:
            return fn()
        except Exception:
            msg = "%s: %s" % (label, traceback.format_exc())
            print(msg, file=sys.stderr)
            errors.append(msg)
            return None

    def derive(j, edit):
        j = json.loads(json.dumps(j))
        edit(j)
        return j

    def qwen2(j):
        j["model"]["ignore_merges"] = False
        j["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {"Regex": QWEN2_PATTERN}

    jg = attempt("build gpt2", lambda: build_gpt2(tk))
    if jg is not None:
        built["gpt2"] = [jg]
        jp = attempt("derive gpt2_prefix", lambda: derive(jg, lambda j: j["pre_tokenizer"].update(add_prefix_space=True)))
        if jp is not None:
            built["gpt2_prefix"] = [jp]
    jl = attempt("build llama3", lambda: build_llama3(tk))
    if jl is not None:
        built["llama3"] = [jl]
        jq = attempt("derive qwen2", lambda: derive(jl, qwen2))
        if jq is not None:
            built["qwen2"] = [jq]
    j2 = attempt("build llama2", lambda: build_llama2(tk))
    if j2 is not None:
        built["llama2"] = [j2]
        v = attempt("derive metaspace variants", lambda: variants_from_llama2(j2))
        if v is not None:
            built["llama2_metaspace"] = [v[0]]
            built["mistral_metaspace"] = [v[1], v[2]]  # legacy format first, modern if HF rejects it
        g = attempt("derive gemma3 and split_string", lambda: gemma3_from_llama2(j2))
        if g is not None:
            built["gemma3"] = [g[0]]
            built["split_string"] = [g[1]]

    for name, candidates in built.items():
        for k, j in enumerate(candidates):
            def run():
                tok, d = write_tokenizer(out_dir, name, j, tk)
                g = golden(tok, tk, name, rnd)
                g["variant"] = k
                with open(os.path.join(d, "golden.json"), "w", encoding="utf-8") as f:
                    f.write(dump_golden(g))
                return d
            if attempt("%s (variant %d)" % (name, k), run) is not None:
                break
    with open(os.path.join(out_dir, "GENERATED.txt"), "w", encoding="utf-8") as f:
        f.write("generated by scripts/hf_tokenizer_golden.py with tokenizers %s\n" % tk.__version__)
        for e in errors:
            f.write("ERROR " + e + "\n")
    for root, _, files in sorted(os.walk(out_dir)):
        for fn in sorted(files):
            p = os.path.join(root, fn)
            print("%8d %s" % (os.path.getsize(p), p))
    print("errors:", len(errors))
    return 1 if errors and not built else 0


if __name__ == "__main__":
    sys.exit(main())
