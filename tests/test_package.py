"""The built wheel carries what embcli needs offline: the tokenizer ranks, the default corpus, the
configs and the evaluation sets, under the size a wheel should have."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    pytest.importorskip("hatchling")
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (path,) = out.glob("embcli-*.whl")
    return path


def test_wheel_carries_assets_and_configs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ["embcli/assets/gpt2.tiktoken", "embcli/assets/wordnet_glosses.txt.gz",
                   "embcli/assets/WORDNET_LICENSE", "embcli/assets/PROVENANCE.md",
                   "embcli/configs/tiny.toml", "embcli/configs/gpt2-small.toml", "embcli/cli.py",
                   "embcli/templates/explore.html"]:
        assert needed in names, needed
    assert wheel.stat().st_size < 15 * 2**20


def test_provenance_records_every_shipped_data_file():
    import hashlib

    text = (ROOT / "embcli" / "assets" / "PROVENANCE.md").read_text()
    for path in sorted((ROOT / "embcli" / "assets").iterdir()):
        if path.suffix in (".md", ".py") or path.name.startswith("."):
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest in text, f"{path.name} ({digest}) is not recorded in PROVENANCE.md"
