"""`rankvideo eval` against the `ir_measures` CLI on the same files, both in one run: wall time and peak RSS.

    python benchmarks/eval_speed.py [--queries 2500] [--depth 1000] [--repeats 3] [--json OUT]

Generates the inputs with `synth_runs.py` (2,500 queries x 1,000 candidates = 2.5M lines by default) into a
temporary directory, then runs, alternately and `--repeats` times each, as separate processes:

- `ir_measures QRELS RUN MEASURES` (the reference: ir-measures' own CLI, pytrec_eval backend);
- `rankvideo eval RUN QRELS -m ... --format tsv` (the same measures, plus trec_eval -c accounting and checks);
- `rankvideo eval RUN QRELS --baseline RUN2 ...` (two runs read and compared; reported, no goal);
- both tools on the shipped 40-line sample (start-up cost).

Peak RSS is the child's own `ru_maxrss` from `os.wait4`; wall time is measured around the process. The
figures reported are medians, and the ratios are rankvideo / ir_measures measured in the same run, since
this machine is noisy. Both tools' aggregates are checked to agree before any number is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from processes import measure
from synth_runs import write_inputs

MEASURES = ["nDCG@10", "nDCG@20", "R@10", "R@100", "AP", "RR"]
SAMPLE = Path(__file__).resolve().parent.parent / "sample_runs"


def tool(name: str) -> str:
    found = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    if found is None:
        raise SystemExit(f"{name} is not installed")
    return found


def ir_measures_values(text: str) -> dict[str, float]:
    return {line.split("\t")[0]: float(line.split("\t")[1]) for line in text.splitlines() if line.strip()}


def rankvideo_values(text: str) -> dict[str, float]:
    rows = [line.split("\t") for line in text.splitlines()[1:]]
    return {row[2]: float(row[3]) for row in rows if row[1] == "all" and row[0] == rows[0][0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=2500)
    parser.add_argument("--depth", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    measure_args = [arg for name in MEASURES for arg in ("-m", name)]
    with tempfile.TemporaryDirectory() as scratch:
        inputs = write_inputs(Path(scratch), args.queries, args.depth, seed=0)
        run, run2, qrels = str(inputs["run.trec"]), str(inputs["run2.trec"]), str(inputs["qrels.txt"])
        cases = {
            "ir_measures": [tool("ir_measures"), "--places", "17", qrels, run, *MEASURES],
            "rankvideo": [tool("rankvideo"), "eval", run, qrels, *measure_args, "--format", "tsv"],
            "rankvideo_baseline": [
                tool("rankvideo"),
                "eval",
                run,
                qrels,
                "--baseline",
                run2,
                *measure_args,
                "--format",
                "tsv",
            ],
            "ir_measures_sample": [
                tool("ir_measures"),
                str(SAMPLE / "qrels.txt"),
                str(SAMPLE / "first_stage.trec"),
                *MEASURES,
            ],
            "rankvideo_sample": [
                tool("rankvideo"),
                "eval",
                str(SAMPLE / "first_stage.trec"),
                str(SAMPLE / "qrels.txt"),
                "--format",
                "tsv",
            ],
        }
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        outputs: dict[str, str] = {}
        for _ in range(args.repeats):
            for name, command in cases.items():
                wall, rss, text = measure(command)
                samples[name].append((wall, rss))
                outputs[name] = text
        ours, theirs = rankvideo_values(outputs["rankvideo"]), ir_measures_values(outputs["ir_measures"])
        for name in MEASURES:
            if abs(ours[name] - theirs[name]) > 1e-12 * max(1.0, abs(theirs[name])):
                raise SystemExit(f"the tools disagree on {name}: rankvideo {ours[name]} ir_measures {theirs[name]}")
        lines = sum(1 for _ in open(run))  # noqa: SIM115
    results = {
        name: {
            "wall_s": statistics.median(wall for wall, _ in values),
            "peak_rss_mb": statistics.median(rss for _, rss in values),
        }
        for name, values in samples.items()
    }
    ratios = {
        "wall": results["rankvideo"]["wall_s"] / results["ir_measures"]["wall_s"],
        "peak_rss": results["rankvideo"]["peak_rss_mb"] / results["ir_measures"]["peak_rss_mb"],
        "sample_wall": results["rankvideo_sample"]["wall_s"] / results["ir_measures_sample"]["wall_s"],
    }
    print(f"run: {lines} lines ({args.queries} queries x {args.depth}); measures {' '.join(MEASURES)}")
    print(f"{'case':<22}{'wall s':>10}{'peak RSS MB':>14}")
    for name, values in results.items():
        print(f"{name:<22}{values['wall_s']:>10.2f}{values['peak_rss_mb']:>14.0f}")
    print(
        f"rankvideo / ir_measures at {lines} lines: wall {ratios['wall']:.2f}x, peak RSS {ratios['peak_rss']:.2f}x"
        f" (goal <= 1.3x each); sample: {results['rankvideo_sample']['wall_s']:.2f} s (goal <= 1 s)"
    )
    if args.json:
        args.json.write_text(json.dumps({"lines": lines, "results": results, "ratios": ratios}, indent=2) + "\n")


if __name__ == "__main__":
    main()
