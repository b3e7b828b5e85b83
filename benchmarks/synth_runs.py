"""Deterministic MultiVENT-sized inputs: a first-stage run of QUERIES x DEPTH lines, its qrels and queries.

    python benchmarks/synth_runs.py OUT_DIR [--queries 2500] [--depth 1000] [--seed 0]

Writes OUT_DIR/run.trec (TREC 6 columns, YouTube-style 11-character docids drawn from a 110k collection,
scores descending with ties), OUT_DIR/run2.trec (the same candidates, rescored: a second system to compare),
OUT_DIR/qrels.txt (about 10 judgments per query, graded 0-2, some judged documents outside the run, and 1% of
the queries judged but absent from the runs) and OUT_DIR/queries.tsv. The same arguments give byte-identical
files.
"""

from __future__ import annotations

import argparse
import random
import string
from pathlib import Path

ID_ALPHABET = string.ascii_letters + string.digits + "-_"
COLLECTION = 110_000


def collection_ids(rng: random.Random) -> list[str]:
    ids: set[str] = set()
    while len(ids) < COLLECTION:
        ids.add("".join(rng.choices(ID_ALPHABET, k=11)))
    return sorted(ids)


def write_inputs(out: Path, queries: int, depth: int, seed: int) -> dict[str, Path]:
    rng = random.Random(seed)
    docids = collection_ids(rng)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("run.trec", "run2.trec", "qrels.txt", "queries.tsv")}
    absent = {f"q{number:05d}" for number in range(0, queries, 100)}  # judged, never retrieved
    with (
        paths["run.trec"].open("w") as run,
        paths["run2.trec"].open("w") as run2,
        paths["qrels.txt"].open("w") as qrels,
        paths["queries.tsv"].open("w") as texts,
    ):
        for number in range(queries):
            qid = f"q{number:05d}"
            texts.write(f"{qid}\tsynthetic query number {number}\n")
            candidates = rng.sample(docids, depth)
            judged = rng.sample(candidates[:50], 8) + rng.sample(docids, 2)
            for docid in dict.fromkeys(judged):
                qrels.write(f"{qid} 0 {docid} {rng.choice((0, 0, 1, 2))}\n")
            if qid in absent:
                continue
            score = 100.0
            lines, lines2 = [], []
            for rank, docid in enumerate(candidates, start=1):
                score -= rng.choice((0.0, 0.01, 0.05, 0.1))  # ties included
                lines.append(f"{qid} Q0 {docid} {rank} {score:.4f} firststage\n")
                lines2.append(f"{qid} Q0 {docid} {rank} {rng.random():.6f} other\n")
            run.write("".join(lines))
            run2.write("".join(lines2))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--queries", type=int, default=2500)
    parser.add_argument("--depth", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name, path in write_inputs(args.out, args.queries, args.depth, args.seed).items():
        print(f"{name}\t{path}\t{path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
