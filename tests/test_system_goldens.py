"""The shipped samples' outputs as earlier code wrote them: a change of the package's internals changes none.

A move of modules must change no output: the reranked run, the `--scores` JSONL and the manifest (less what
differs between machines and runs: timings, clock, host, argv, library versions, torch's thread count) of each
case below, with `tiny-random`, match the files in tests/data/sample-outputs/<case>/. The tiny model's weights
are hashed too, so that a failure says whether the model or the code changed.

- `multivent` (the README's first command) and `flat` (the flat sample): written by main at b5ff30e.
- `training`: the flat sample with `--prompt training`.
- `devices`: the flat sample on two CPU workers (`--devices cpu,cpu`). Its run and scores are the one-device
  run's byte for byte, so only its manifest is stored.
- `shards`: the flat sample as a two-shard array (`--shard 0/2`, `--shard 1/2` into one store) and
  `rankvideo merge`. The merged run and scores are the one-device run's byte for byte; the merged manifest and
  the two shard manifests (which `merge` reads, so an old array must merge under new code) are stored.
- `pyterrier`: the flat sample's first stage through `RankVideoReranker` in a PyTerrier pipeline: its result
  frame (results.tsv), which is the run `rerank` writes (same order, same scores).

Those four were written by 3d3ff90 on an AMD EPYC (2 cores), where that commit's flat run equals all three of
`--devices`, the merge and PyTerrier byte for byte. To rewrite a case's goldens from the code checked out (only
when an output is meant to change, and say so in the commit):

    RANKVIDEO_WRITE_GOLDENS=training,devices,shards,pyterrier pytest tests/test_system_goldens.py

Everything but the scores must match byte for byte. The scores are compared to SCORE_TOLERANCE, not bit for bit:
torch picks its CPU kernels by the instructions the processor has, so the same code, weights and inputs give
float32 scores that differ in the 6th-7th significant digit from one CPU to another (seen here: up to 6.7e-6 in
`logit_delta` between the AMD EPYC the first goldens were hashed on and an AVX-512 Intel Xeon, and between
`ATEN_CPU_CAPABILITY=avx2` and `avx512` on the Xeon). On one machine they are bit-identical from run to run (the
CPU workers' thread-count test in test_cli_rerank.py compares them byte for byte), so the runs that must equal the
one-device run (`--devices`, merge, PyTerrier) are compared with it byte for byte. The b5ff30e goldens were
written on an Intel Xeon (AVX-512), where the code of that time writes the same bytes; the closest two scores of a
query are 0.14 apart, so the tolerance cannot hide a reordering.

Every case runs once per module, in one copy of `sample_runs/`, and only when a test asks for it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import SAMPLE
from typer.testing import CliRunner

from rankvideo_cli.cli import app

GOLDEN = Path(__file__).parent / "data" / "sample-outputs"

# The cases whose goldens this run rewrites from the code checked out (see the module docstring).
WRITE_GOLDENS = {case for case in os.environ.get("RANKVIDEO_WRITE_GOLDENS", "").split(",") if case}

# Fields of a manifest that describe the machine and the moment rather than the inputs and the settings.
VARYING_FIELDS = ("timings", "created_at", "host", "command", "libraries", "decode_bottleneck", "torch_threads")
VARYING_MODEL_FIELDS = ("torch", "transformers")
VARYING_PIPELINE_FIELDS = ("torch_threads",)  # a --devices run's: its workers', one each

# Absolute, on logits and log-probabilities of magnitude <= ~15 and on p_yes: 15x the cross-CPU drift seen.
SCORE_TOLERANCE = 1e-4

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
FLAT_INPUTS = ["sample_runs/first_stage.trec", "sample_runs/queries.tsv"]
FLAT_ARGS = [
    "rerank",
    *FLAT_INPUTS,
    "--videos",
    "sample_runs/videos",
    "--model",
    "tiny-random",
    "-o",
    "sample_runs/out/flat.trec",
    "--scores",
    "sample_runs/out/flat.scores.jsonl",
]
# The later cases name their decode threads: the default is the machine's core count, which the manifest records.
FLAT_RERANK = [*FLAT_ARGS[: FLAT_ARGS.index("-o")], "--decode-workers", "1"]
SHARD_STORE = "sample_runs/out/shards"
MERGE_ARGS = ["merge", *FLAT_INPUTS, "--cache", SHARD_STORE, "-o", "sample_runs/out/merged.trec"]
MERGE_ARGS += ["--scores", "sample_runs/out/merged.scores.jsonl"]


def rerank_to(name: str, *extra: str) -> list[str]:
    """`rerank` of the flat sample with `extra` options, writing sample_runs/out/NAME.trec and its --scores."""
    return [
        *FLAT_RERANK,
        *extra,
        "-o",
        f"sample_runs/out/{name}.trec",
        "--scores",
        f"sample_runs/out/{name}.scores.jsonl",
    ]


@dataclass(frozen=True)
class Case:
    """The commands of one case, in order, and what the last of them writes (relative to the sample copy)."""

    commands: list[list[str]]
    run: str
    scores: str
    manifests: dict[str, str]  # golden file name -> manifest written, compared less VARYING_* fields

    def manifest_files(self) -> dict[str, str]:
        return self.manifests or {"manifest.json": self.run + ".manifest.json"}


CASES = {
    "multivent": Case([MULTIVENT_ARGS], "sample_runs/out/reranked.trec", "sample_runs/out/reranked.scores.jsonl", {}),
    "flat": Case([FLAT_ARGS], "sample_runs/out/flat.trec", "sample_runs/out/flat.scores.jsonl", {}),
    "training": Case(
        [rerank_to("training", "--prompt", "training")],
        "sample_runs/out/training.trec",
        "sample_runs/out/training.scores.jsonl",
        {},
    ),
    "devices": Case(
        [rerank_to("devices", "--devices", "cpu,cpu")],
        "sample_runs/out/devices.trec",
        "sample_runs/out/devices.scores.jsonl",
        {},
    ),
    "shards": Case(
        [
            [*FLAT_RERANK, "--cache", SHARD_STORE, "--shard", "0/2"],
            [*FLAT_RERANK, "--cache", SHARD_STORE, "--shard", "1/2"],
            MERGE_ARGS,
        ],
        "sample_runs/out/merged.trec",
        "sample_runs/out/merged.scores.jsonl",
        {
            "manifest.json": "sample_runs/out/merged.trec.manifest.json",
            "shard-0000-of-0002.manifest.json": f"{SHARD_STORE}/shard-0000-of-0002.manifest.json",
            "shard-0001-of-0002.manifest.json": f"{SHARD_STORE}/shard-0001-of-0002.manifest.json",
        },
    ),
}
# What tests/data/sample-outputs/<case>/ holds besides the manifests: the others' run and scores are flat's.
STORES_RUN_AND_SCORES = ("multivent", "flat", "training")
PYTERRIER_COLUMNS = ("qid", "docno", "rank", "score", "query")

TINY_WEIGHTS_SHA256 = "294007808aa806303cd801a8d58d193c70440643d4e70d7e3fd383ec6e7283c0"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stable_manifest(path: Path) -> dict:
    manifest = json.loads(path.read_text())
    for field in VARYING_FIELDS:
        manifest.pop(field)
    for field in VARYING_MODEL_FIELDS:
        manifest["model"].pop(field, None)  # a merge's manifest names no model
    for field in VARYING_PIPELINE_FIELDS:
        manifest["pipeline"].pop(field, None)
    return manifest


def split_run(path: Path) -> tuple[list[list[str]], list[float]]:
    """The run's lines less their score column, and the scores."""
    rows = [line.split(" ") for line in path.read_text().splitlines()]
    return [row[:4] + row[5:] for row in rows], [float(row[4]) for row in rows]


def split_scores(path: Path) -> tuple[list[dict], list[float]]:
    """The JSONL's records less their float fields, and those floats in record order."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    floats = [value for record in records for value in record.values() if isinstance(value, float)]
    rest = [{key: value for key, value in record.items() if not isinstance(value, float)} for record in records]
    return rest, floats


def read_results(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """A PyTerrier results TSV: its header, and its rows as {column: cell}."""
    header, *rows = (line.split("\t") for line in path.read_text().splitlines())
    return header, [dict(zip(header, row, strict=True)) for row in rows]


def assert_close(got: list[float], expected: list[float]) -> None:
    assert len(got) == len(expected)
    worst = max((abs(a - b) for a, b in zip(got, expected, strict=True)), default=0.0)
    assert all(math.isfinite(value) for value in got)
    assert worst <= SCORE_TOLERANCE, f"a score moved by {worst:.3g} (tolerance {SCORE_TOLERANCE:g})"


def assert_run_and_scores_match(run: Path, scores: Path, golden: Path) -> None:
    """`run` and `scores` are golden/run.trec and golden/scores.jsonl: everything exact, scores to the tolerance."""
    run_rows, run_scores = split_run(run)
    golden_rows, golden_scores = split_run(golden / "run.trec")
    assert run_rows == golden_rows  # qids, docids, ranks, tag and line order
    assert_close(run_scores, golden_scores)

    records, record_floats = split_scores(scores)
    golden_records, golden_floats = split_scores(golden / "scores.jsonl")
    assert records == golden_records  # pairs, order, keys and video paths
    assert_close(record_floats, golden_floats)


def assert_manifests_match(outputs: CaseOutputs) -> None:
    for golden_name, written in outputs.manifests.items():
        expected = json.loads((outputs.golden / golden_name).read_text())
        assert stable_manifest(written) == expected, golden_name


@dataclass(frozen=True)
class CaseOutputs:
    run: Path
    scores: Path
    manifests: dict[str, Path]  # golden file name -> the manifest written
    golden: Path


class SampleOutputs:
    """Runs each case at most once, on first request, in one copy of `sample_runs/` (no `out/`) as the working
    directory, so the manifests' relative paths are the goldens'; with the case in RANKVIDEO_WRITE_GOLDENS,
    (re)writes its goldens first."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.done: dict[str, CaseOutputs] = {}
        shutil.copytree(SAMPLE, root / "sample_runs", ignore=shutil.ignore_patterns("out", "__pycache__"))

    def __call__(self, name: str) -> CaseOutputs:
        if name not in self.done:
            case = CASES[name]
            with pytest.MonkeyPatch.context() as patch:
                patch.chdir(self.root)
                for args in case.commands:
                    result = CliRunner().invoke(app, args)
                    assert result.exit_code == 0, f"{' '.join(args)}\n{result.output}"
            outputs = CaseOutputs(
                run=self.root / case.run,
                scores=self.root / case.scores,
                manifests={golden: self.root / path for golden, path in case.manifest_files().items()},
                golden=GOLDEN / name,
            )
            if name in WRITE_GOLDENS:
                write_goldens(name, outputs)
            self.done[name] = outputs
        return self.done[name]


def write_goldens(name: str, outputs: CaseOutputs) -> None:
    outputs.golden.mkdir(parents=True, exist_ok=True)
    if name in STORES_RUN_AND_SCORES:
        shutil.copyfile(outputs.run, outputs.golden / "run.trec")
        shutil.copyfile(outputs.scores, outputs.golden / "scores.jsonl")
    for golden_name, written in outputs.manifests.items():
        text = json.dumps(stable_manifest(written), indent=1, sort_keys=True)
        (outputs.golden / golden_name).write_text(text + "\n")


@pytest.fixture(scope="module")
def sample_outputs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> SampleOutputs:
    return SampleOutputs(tmp_path_factory.mktemp("sample-outputs"))


@pytest.fixture
def sample_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of `sample_runs/` (no `out/`) as the working directory, so the manifest's relative paths match."""
    shutil.copytree(SAMPLE, tmp_path / "sample_runs", ignore=shutil.ignore_patterns("out", "__pycache__"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_tiny_model_is_the_one_the_outputs_were_recorded_with(tiny_model_dir: Path) -> None:
    weights = sorted(tiny_model_dir.glob("*.safetensors"))
    assert weights
    assert sha256(b"".join(path.read_bytes() for path in weights)) == TINY_WEIGHTS_SHA256


@pytest.mark.parametrize("sample", STORES_RUN_AND_SCORES)
def test_sample_outputs_match_the_recorded_ones(sample: str, sample_outputs: SampleOutputs) -> None:
    outputs = sample_outputs(sample)
    assert_run_and_scores_match(outputs.run, outputs.scores, outputs.golden)
    assert_manifests_match(outputs)


@pytest.mark.parametrize("case", ["devices", "shards"])
def test_two_workers_and_a_merged_array_write_the_one_device_run(case: str, sample_outputs: SampleOutputs) -> None:
    """`--devices cpu,cpu`, and `--shard 0/2` + `--shard 1/2` + `merge`, write the one-device run and scores byte
    for byte (so those match the flat goldens), and their own manifests."""
    outputs, one_device = sample_outputs(case), sample_outputs("flat")
    assert outputs.run.read_bytes() == one_device.run.read_bytes()
    assert outputs.scores.read_bytes() == one_device.scores.read_bytes()
    assert_run_and_scores_match(outputs.run, outputs.scores, GOLDEN / "flat")
    assert_manifests_match(outputs)


@pytest.fixture(scope="module")
def pyterrier_results(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The flat sample's first stage (every candidate) through `RankVideoReranker` in a PyTerrier pipeline, its
    result frame as a TSV: a header of PYTERRIER_COLUMNS, then one row per candidate, the score as repr."""
    import pandas as pd

    pt = pytest.importorskip("pyterrier", reason="the pyterrier extra is part of the dev install")
    from rankvideo_cli.pyterrier import RankVideoReranker

    queries = [line.split("\t") for line in (SAMPLE / "queries.tsv").read_text().splitlines()[1:]]
    topics = pd.DataFrame(queries, columns=["qid", "query"])
    rows = [line.split() for line in (SAMPLE / "first_stage.trec").read_text().splitlines()]
    candidates = pd.DataFrame([(row[0], row[2], float(row[4])) for row in rows], columns=["qid", "docno", "score"])
    first_stage = pt.Transformer.from_df(pt.model.add_ranks(candidates.merge(topics, on="qid")))
    directory = tmp_path_factory.mktemp("pyterrier")
    reranker = RankVideoReranker(
        videos=SAMPLE / "videos", model="tiny-random", cache=directory / "store", decode_workers=1, verbose=False
    )
    frame = (first_stage % 100 >> reranker)(topics)

    assert sorted(frame.columns) == sorted(PYTERRIER_COLUMNS)  # no column added or lost
    lines = ["\t".join(PYTERRIER_COLUMNS)]
    for row in frame.itertuples():
        lines.append("\t".join([row.qid, row.docno, str(row.rank), repr(float(row.score)), row.query]))
    results = directory / "results.tsv"
    results.write_text("\n".join(lines) + "\n")
    if "pyterrier" in WRITE_GOLDENS:
        (GOLDEN / "pyterrier").mkdir(exist_ok=True)
        shutil.copyfile(results, GOLDEN / "pyterrier" / "results.tsv")
    return results


def test_a_pyterrier_pipeline_gives_the_recorded_frame_which_is_the_rerank_run(
    pyterrier_results: Path, sample_outputs: SampleOutputs
) -> None:
    header, rows = read_results(pyterrier_results)
    golden_header, golden_rows = read_results(GOLDEN / "pyterrier" / "results.tsv")
    assert header == golden_header
    # qids, docnos, ranks, queries and row order exact; the scores to the tolerance
    assert [{**row, "score": None} for row in rows] == [{**row, "score": None} for row in golden_rows]
    assert_close([float(row["score"]) for row in rows], [float(row["score"]) for row in golden_rows])

    # the very run `rerank` writes for the same inputs: same order, ranks and scores (as the run file writes them)
    frame = [(row["qid"], row["docno"], str(int(row["rank"]) + 1), row["score"]) for row in rows]
    run_lines = sample_outputs("flat").run.read_text().splitlines()
    assert frame == [(fields[0], fields[2], fields[3], fields[4]) for fields in map(str.split, run_lines)]


def test_a_store_written_before_the_move_is_read_back(sample_copy: Path, tiny_model_dir: Path) -> None:
    """The score store's fingerprints hold no module names: the flat sample's store as main at b5ff30e wrote it
    (tests/data/store-before-layout) answers every pair of a rerun, whose run carries the stored scores exactly."""
    store = sample_copy / "store"
    shutil.copytree(Path(__file__).parent / "data" / "store-before-layout", store)
    args = [*FLAT_ARGS[: FLAT_ARGS.index("--scores")], "--cache", str(store)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "0 pairs scored now, 36 from the score store" in result.stderr

    stored = {}
    for line in (store / "scores.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["kind"] == "score":
            stored[record["qid"], record["docid"]] = record["logit_delta"]
    rows, scores = split_run(Path("sample_runs/out/flat.trec"))
    written = {(row[0], row[2]): score for row, score in zip(rows, scores, strict=True)}
    assert {pair: written[pair] for pair in stored} == stored
    assert rows == split_run(GOLDEN / "flat" / "run.trec")[0]
