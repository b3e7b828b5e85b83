"""The scale benchmarks run end to end at a small size (their full-size results are in benchmarks/README.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_scale_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    command = [sys.executable, str(BENCHMARKS / "scale.py"), "--queries", "40", "--depth", "150"]
    subprocess.run([*command, "--store-pairs", "2000", "--json", str(out)], check=True, capture_output=True)
    results = json.loads(out.read_text())
    assert results["lines"] == 40 * 150 - 150  # one query in a hundred is judged but never retrieved
    assert results["results"]["phases"]["store_pairs"] == 39 * 51
    assert {"rerank", "dry_run", "merge"} <= set(results["results"])


def test_eval_speed_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    command = [sys.executable, str(BENCHMARKS / "eval_speed.py"), "--queries", "30", "--depth", "50"]
    subprocess.run([*command, "--repeats", "1", "--json", str(out)], check=True, capture_output=True)
    results = json.loads(out.read_text())
    assert results["lines"] == 30 * 50 - 50
    assert set(results["ratios"]) == {"wall", "peak_rss", "sample_wall"}
