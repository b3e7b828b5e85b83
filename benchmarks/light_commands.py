"""The commands that should start in a moment, at a base commit beside the current tree, in one run: a rerun
whose pairs are all in the score store, `frames VIDEO`, and `eval RUN QRELS --baseline B` beside the
`ir_measures` CLI on the same measures.

    python benchmarks/light_commands.py [--base 01fa4d1] [--frames-base 40086d2^] [--repeats 7] [--json OUT]

The base commit's tree is extracted (`git archive`) into a temporary directory; both trees run with this
interpreter and its packages, `PYTHONPATH` choosing the tree (checked to import that tree). On the
shipped sample (`sample_runs/`), as separate processes, alternately and `--repeats` times each:

- `rerank ... --model tiny-random --cache STORE`, the store filled beforehand by one run of the current tree:
  both trees must find all 36 pairs there (the base's fingerprint and the current one are the same) and write
  the first run's bytes;
- `frames sample_runs/videos/v001.mp4`, also at `--frames-base`: `frames` was made light before the base, by
  40086d2 (one torch-free plan of a video), whose parent is where issue 37 timed it (3.8 s);
- `eval RUN QRELS --baseline FIRST_STAGE --format tsv` (RUN: the reranked run) and
  `ir_measures QRELS RUN "nDCG@10 nDCG@20 R@10 R@100 AP RR"`, checked to agree.

Reported: the median wall time and peak RSS of each, the speed-up of the current tree over the base, and eval's
time over ir_measures'. The targets (issue 37): the stored rerun 5x faster than the base, `frames` 4x faster
than the frames base, eval at most 2.5x ir_measures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from processes import measure

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_runs"
MEASURES = ["nDCG@10", "nDCG@20", "R@10", "R@100", "AP", "RR"]
DEFAULT_BASE = "01fa4d1"  # the commit before the light commands' work
DEFAULT_FRAMES_BASE = "40086d2^"  # the last commit whose `frames` imported torch and qwen-vl-utils
TARGETS = {"stored_rerun": ("base", 5.0), "frames": ("frames_base", 4.0)}  # at least this many times faster
EVAL_OVER_IR_MEASURES = 2.5  # at most
CLI = "import sys; from rankvideo_cli.cli import main; sys.argv[0] = 'rankvideo'; main()"  # PYTHONPATH's tree


def extract(commit: str, into: Path) -> Path:
    """The tree of `commit`, as `git archive` gives it."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def rankvideo(tree: Path, *args: object) -> list[str]:
    """The CLI of `tree`, with this interpreter and its packages (`env` execs it: wait4 sees its peak RSS)."""
    return ["env", f"PYTHONPATH={tree}", sys.executable, "-c", CLI, *map(str, args)]


def check_imported(tree: Path, cwd: Path) -> None:
    """PYTHONPATH=tree imports that tree's rankvideo_cli (before the editable install's)."""
    probe = ["env", f"PYTHONPATH={tree}", sys.executable, "-c", "import rankvideo_cli; print(rankvideo_cli.__file__)"]
    imported = subprocess.run(probe, check=True, capture_output=True, text=True, cwd=cwd).stdout.strip()
    if not imported.startswith(str(tree)):
        raise SystemExit(f"PYTHONPATH={tree} imported {imported}, not that tree")


def ir_measures_command(qrels: Path, run: Path) -> list[str]:
    found = shutil.which("ir_measures", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    if found is None:
        raise SystemExit("ir_measures is not installed")
    return [found, str(qrels), str(run), " ".join(MEASURES)]


def aggregates(rankvideo_tsv: str) -> dict[str, float]:
    rows = [line.split("\t") for line in rankvideo_tsv.splitlines()[1:]]
    return {row[2]: float(row[3]) for row in rows if row[1] == "all" and row[0] == rows[0][0]}


def not_loaded(manifest: Path) -> bool:
    """Whether the run's manifest says the model was never loaded (every pair came from the store)."""
    text = manifest.read_text(encoding="utf-8")
    return "not loaded: every pair was in the score store" in text and '"pairs_scored": 0' in text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=DEFAULT_BASE, help="the commit to compare with (default %(default)s)")
    parser.add_argument("--frames-base", default=DEFAULT_FRAMES_BASE, help="frames' base (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="light-commands-") as temporary:
        work = Path(temporary)
        trees = {"base": extract(args.base, work / "base"), "current": ROOT}
        frames_base = extract(args.frames_base, work / "frames-base")
        first_stage, queries, qrels = SAMPLE / "first_stage.trec", SAMPLE / "queries.tsv", SAMPLE / "qrels.txt"
        store, first_run = work / "store", work / "first.trec"
        rerank = ["rerank", first_stage, queries, "--videos", SAMPLE / "videos", "--model", "tiny-random"]
        rerank += ["--cache", store]
        for tree in [*trees.values(), frames_base]:
            check_imported(tree, work)
        measure(rankvideo(ROOT, *rerank, "-o", first_run), cwd=work)  # scores every pair: the store to rerun on

        commands = {
            "stored_rerun": lambda tree, name: rankvideo(tree, *rerank, "-o", work / f"rerun-{name}.trec"),
            "frames": lambda tree, name: rankvideo(tree, "frames", SAMPLE / "videos" / "v001.mp4"),
            "eval_baseline": lambda tree, name: rankvideo(
                tree, "eval", first_run, qrels, "--baseline", first_stage, "--format", "tsv"
            ),
        }
        samples: dict[str, dict[str, list[tuple[float, float]]]] = {}
        outputs: dict[str, str] = {}
        for _ in range(args.repeats):
            for workload, command in commands.items():
                for name, tree in trees.items():
                    wall, rss, stdout = measure(command(tree, name), cwd=work)
                    samples.setdefault(workload, {}).setdefault(name, []).append((wall, rss))
                    outputs[f"{workload}/{name}"] = stdout
            wall, rss, _ = measure(rankvideo(frames_base, "frames", SAMPLE / "videos" / "v001.mp4"), cwd=work)
            samples["frames"].setdefault("frames_base", []).append((wall, rss))
            wall, rss, stdout = measure(ir_measures_command(qrels, first_run), cwd=work)
            samples.setdefault("ir_measures", {}).setdefault("cli", []).append((wall, rss))
            outputs["ir_measures"] = stdout

        for name in trees:  # every pair from the store, the first run's bytes
            rerun = work / f"rerun-{name}.trec"
            if rerun.read_bytes() != first_run.read_bytes() or not not_loaded(rerun.with_suffix(".trec.manifest.json")):
                raise SystemExit(f"the {name} tree's rerun did not answer every pair from the store")
        reference = {line.split("\t")[0]: float(line.split("\t")[1]) for line in outputs["ir_measures"].splitlines()}
        for name in trees:
            ours = aggregates(outputs[f"eval_baseline/{name}"])
            if any(abs(ours[measure_name] - reference[measure_name]) > 1e-4 for measure_name in MEASURES):
                raise SystemExit(f"the {name} tree's eval disagrees with ir_measures: {ours} vs {reference}")

    medians = {
        workload: {
            name: {
                "wall_s": round(statistics.median(wall for wall, _ in runs), 3),
                "peak_rss_mb": round(statistics.median(rss for _, rss in runs), 1),
            }
            for name, runs in by_tree.items()
        }
        for workload, by_tree in samples.items()
    }
    speedups = {
        workload: round(medians[workload]["base"]["wall_s"] / medians[workload]["current"]["wall_s"], 2)
        for workload in commands
    }
    speedups["frames_over_frames_base"] = round(
        medians["frames"]["frames_base"]["wall_s"] / medians["frames"]["current"]["wall_s"], 2
    )
    ir_wall = medians["ir_measures"]["cli"]["wall_s"]
    over_ir = {name: round(medians["eval_baseline"][name]["wall_s"] / ir_wall, 2) for name in trees}
    met = {
        **{
            workload: medians[workload][base]["wall_s"] / medians[workload]["current"]["wall_s"] >= target
            for workload, (base, target) in TARGETS.items()
        },
        "eval_baseline": over_ir["current"] <= EVAL_OVER_IR_MEASURES,
    }
    results = {
        "base": args.base,
        "frames_base": args.frames_base,
        "repeats": args.repeats,
        "medians": medians,
        "speedup_over_base": speedups,
        "eval_over_ir_measures": over_ir,
        "targets_met": met,
    }
    print(f"{'workload':<20}{'base s':>9}{'base MB':>9}{'current s':>11}{'current MB':>12}{'speed-up':>10}")
    for workload in commands:
        base, current = medians[workload]["base"], medians[workload]["current"]
        print(
            f"{workload:<20}{base['wall_s']:>9.3f}{base['peak_rss_mb']:>9.0f}{current['wall_s']:>11.3f}"
            f"{current['peak_rss_mb']:>12.0f}{speedups[workload]:>9.1f}x"
        )
    frames_then = medians["frames"]["frames_base"]
    print(
        f"{'frames at ' + args.frames_base:<20}{frames_then['wall_s']:>9.3f}{frames_then['peak_rss_mb']:>9.0f}"
        f"{'':>23}{speedups['frames_over_frames_base']:>9.1f}x"
    )
    print(f"{'ir_measures':<20}{'':>9}{'':>9}{ir_wall:>11.3f}{medians['ir_measures']['cli']['peak_rss_mb']:>12.0f}")
    print(f"eval --baseline / ir_measures: base {over_ir['base']:.2f}x, current {over_ir['current']:.2f}x")
    print("targets met: " + ", ".join(f"{name} {'yes' if ok else 'NO'}" for name, ok in met.items()))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
