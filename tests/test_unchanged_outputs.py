"""The shipped samples' outputs, byte for byte, as the code before the layout-by-stage move wrote them.

A move of modules must change no output: the reranked run, the `--scores` JSONL and the manifest (less what
differs between machines and runs: timings, clock, host, argv, library versions) of the README's first command
and of the flat sample, with `tiny-random`, hash to what main at b5ff30e wrote. The tiny model's weights are
hashed too, so that a failure says whether the model or the code changed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from helpers import SAMPLE
from typer.testing import CliRunner

from rankvideo_cli.cli import app

# Fields of a manifest that describe the machine and the moment rather than the inputs and the settings.
VARYING_FIELDS = ("timings", "created_at", "host", "command", "libraries", "decode_bottleneck")
VARYING_MODEL_FIELDS = ("torch", "transformers")

MULTIVENT_ARGS = [
    "rerank",
    "sample_runs/multivent/first_stage.trec",
    "sample_runs/multivent/queries.csv",
    "--videos",
    "sample_runs/multivent/videos",
    "--model",
    "tiny-random",
    "--qrels",
    "sample_runs/multivent/judgments.jsonl",
    "-o",
    "sample_runs/out/reranked.trec",
    "--scores",
    "sample_runs/out/reranked.scores.jsonl",
]
FLAT_ARGS = [
    "rerank",
    "sample_runs/first_stage.trec",
    "sample_runs/queries.tsv",
    "--videos",
    "sample_runs/videos",
    "--model",
    "tiny-random",
    "-o",
    "sample_runs/out/flat.trec",
    "--scores",
    "sample_runs/out/flat.scores.jsonl",
]

# sha256 of (run, --scores JSONL, manifest less VARYING_FIELDS), written by main at b5ff30e.
EXPECTED = {
    "multivent": (
        "a8bc5abd1ba6ab207d74c86fa69ff69bee461d06f0d9d5a17f2f2fbbe4fde0d3",
        "1cd05f46ea8560d83a121905fcc3e782ff3b287d9b64f57aa961bcbaff72ada6",
        "cd15dbbfc4836bc3484cf45519a549ed7db1a16318a31e81a0179fb7b5c03ccb",
    ),
    "flat": (
        "d1a34e1a82de8f18b5f60f601434cd3e511ab6d9ad1cd0021b0ae92d9594262d",
        "ce2a07cffb6f019992c66a880ddd61a67ad4620d117321f3f3e75ddd6e414317",
        "5bd3d95743a35bbfddcf709c6af46c36564e1480444ac5cb2ddd095e0b4a8ce4",
    ),
}
TINY_WEIGHTS_SHA256 = "294007808aa806303cd801a8d58d193c70440643d4e70d7e3fd383ec6e7283c0"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stable_manifest(path: Path) -> bytes:
    manifest = json.loads(path.read_text())
    for field in VARYING_FIELDS:
        manifest.pop(field)
    for field in VARYING_MODEL_FIELDS:
        manifest["model"].pop(field)
    return json.dumps(manifest, sort_keys=True).encode()


@pytest.fixture
def sample_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of `sample_runs/` (no `out/`) as the working directory, so the manifest's relative paths match."""
    shutil.copytree(SAMPLE, tmp_path / "sample_runs", ignore=shutil.ignore_patterns("out", "__pycache__"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_tiny_model_is_the_one_the_hashes_were_recorded_with(tiny_model_dir: Path) -> None:
    weights = sorted(tiny_model_dir.glob("*.safetensors"))
    assert weights
    assert sha256(b"".join(path.read_bytes() for path in weights)) == TINY_WEIGHTS_SHA256


@pytest.mark.parametrize(("sample", "args"), [("multivent", MULTIVENT_ARGS), ("flat", FLAT_ARGS)])
def test_sample_outputs_are_byte_identical(
    sample: str, args: list[str], sample_copy: Path, tiny_model_dir: Path
) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = Path(args[args.index("-o") + 1])
    scores = Path(args[args.index("--scores") + 1])
    manifest = run.with_name(run.name + ".manifest.json")
    got = (sha256(run.read_bytes()), sha256(scores.read_bytes()), sha256(stable_manifest(manifest)))
    assert got == EXPECTED[sample]


def test_a_store_written_before_the_move_is_read_back(sample_copy: Path, tiny_model_dir: Path) -> None:
    """The score store's fingerprints hold no module names: the flat sample's store as main at b5ff30e wrote it
    (tests/data/store-before-layout) answers every pair of a rerun, whose run is the one recorded above."""
    store = sample_copy / "store"
    shutil.copytree(Path(__file__).parent / "data" / "store-before-layout", store)
    args = [*FLAT_ARGS[: FLAT_ARGS.index("--scores")], "--cache", str(store)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "0 pairs scored now, 36 from the score store" in result.stderr
    assert sha256(Path("sample_runs/out/flat.trec").read_bytes()) == EXPECTED["flat"][0]
