#!/usr/bin/env python3
"""Build a JSONL corpus of real English text from Debian packages, for the
quality runs in docs/training.md (a corpus that is not the default one).

Sources (all Debian bookworm, main):
  linux-doc-6.1      kernel documentation (reStructuredText), one document per file
  python3.11-doc     Python documentation sources (reStructuredText)
  dict-gcide         Webster's 1913 (GCIDE), one document per 100 entries
  perl-doc           Perl's POD manuals
  postgresql-doc-15  PostgreSQL manual, HTML stripped to text

Usage: scripts/real_text_corpus.py ROOT OUT.jsonl
where ROOT is a directory into which the packages were unpacked with
`apt-get download PKG... && for f in *.deb; do dpkg -x $f ROOT; done`.

Debian replaces package versions (and the security archive drops old ones),
so the corpus drifts: the script prints its document count and sha256, and
quality.sh records the sha256 beside each cell's runs. The build of
2026-12-08: linux-doc-6.1 6.1.170-3 (6.1.172-1, the candidate, was not
downloadable), python3.11-doc 3.11.2-6+deb12u7, dict-gcide 0.48.5+nmu2,
perl-doc 5.36.0-7+deb12u3, postgresql-doc-15 15.18-0+deb12u1: 7,451
documents, sha256 a44109dd...d81d66c. The 2026-12-07 build (other
linux-doc-6.1 version, not recorded) had 7,452.
"""
import gzip
import hashlib
import html.parser
import json
import pathlib
import sys


class TextOnly(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self.skip:
            self.skip -= 1
        if tag in ("p", "div", "pre", "li", "h1", "h2", "h3", "h4", "tr", "br", "dt", "dd"):
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def html_text(raw):
    p = TextOnly()
    p.feed(raw)
    lines = [" ".join(l.split()) for l in "".join(p.parts).splitlines()]
    return "\n".join(l for l in lines if l)


def docs(root):
    share = root / "usr/share"
    for f in sorted((share / "doc/linux-doc-6.1/Documentation").rglob("*.rst.gz")):
        yield "linux", gzip.open(f, "rt", errors="replace").read()
    for f in sorted((share / "doc/python3.11/html/_sources").rglob("*.rst.txt")):
        yield "python", f.read_text(errors="replace")
    entries = gzip.open(share / "dictd/gcide.dict.dz", "rt", errors="replace").read().split("\n\n")
    for i in range(0, len(entries), 100):
        yield "gcide", "\n\n".join(entries[i:i + 100])
    for f in sorted((share / "perl").rglob("*.pod")):
        yield "perl", f.read_text(errors="replace")
    for f in sorted((share / "doc/postgresql-doc-15").rglob("*.html")):
        yield "postgresql", html_text(f.read_text(errors="replace"))


def write_corpus(docs, out):
    """Write (source, text) pairs of at least 200 characters to out as JSONL
    and print the documents and bytes per source."""
    counts = {}
    with out.open("w") as w:
        for src, text in docs:
            if len(text) < 200:
                continue
            w.write(json.dumps({"text": text}) + "\n")
            n, b = counts.get(src, (0, 0))
            counts[src] = (n + 1, b + len(text.encode()))
    for src, (n, b) in counts.items():
        print(f"{src}: {n} documents, {b / 1e6:.1f} MB")
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    print(f"{out}: {sum(n for n, _ in counts.values())} documents, sha256 {digest}")


def main():
    root, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    write_corpus(docs(root), out)


if __name__ == "__main__":
    main()
