"""Regenerate `sample_runs/multivent/`: the shipped sample in MultiVENT 2.0's published shape.

YouTube-style 11-character ids (some starting with `-` or `_`), videos packed in uncompressed tar shards with a
metadata `.info.json` beside each video (and one shard unpacked into a folder), queries as a `Query_id,query`
CSV, judgments as JSONL `{query_id, doc_id, relevance}`, and a first-stage TREC run. The videos are the
shipped sample's (`sample_runs/videos/`, made by `make_sample.py`), renamed. Run from the repo root:
`python sample_runs/make_multivent_sample.py`. Output is byte-deterministic (tar headers carry no time or owner).
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "multivent"
# sample docid -> a YouTube-style id
IDS = {
    "v001": "PPQVve-Jeb4",
    "v002": "-LAxzdxpDoE",
    "v003": "_x9kQ2m1aB0",
    "v004": "Zq3-7YtLw_8",
    "v005": "a1B2c3D4e5F",
    "v006": "-_-kP9xQr2s",
    "v007": "Mv0Te8Yh3Jk",
    "v008": "_Wq5nL2pZ7c",
    "v009": "rT4u-Vw6xYz",
    "v010": "Qs8dF-2gHj0",
    "v011": "-9aKl3Mn0Pq",
    "v012": "bN7mC_5vX1z",
}
MISSING = {"v404": "_notInCorpus"}  # in the run, no video anywhere: the missing-video policy applies
SHARDS = {"000001.tar": ["v001", "v002", "v003", "v004", "v005"], "000002.tar": ["v006", "v007", "v008", "v009"]}
FOLDER = {"000003": ["v010", "v011", "v012"]}  # a shard already extracted


def _member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    archive.addfile(info, io.BytesIO(data))


def main() -> None:
    videos = OUT / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    for shard, docids in SHARDS.items():
        with tarfile.open(videos / shard, "w", format=tarfile.USTAR_FORMAT) as archive:
            for docid in docids:
                youtube_id = IDS[docid]
                _member(archive, f"{youtube_id}.mp4", (HERE / "videos" / f"{docid}.mp4").read_bytes())
                _member(archive, f"{youtube_id}.info.json", json.dumps({"id": youtube_id}).encode() + b"\n")
    for folder, docids in FOLDER.items():
        (videos / folder).mkdir(exist_ok=True)
        for docid in docids:
            (videos / folder / f"{IDS[docid]}.mp4").write_bytes((HERE / "videos" / f"{docid}.mp4").read_bytes())
    names = {**IDS, **MISSING}
    run_lines = []
    for line in (HERE / "first_stage.trec").read_text().splitlines():
        qid, q0, docid, rank, score, _tag = line.split()
        run_lines.append(f"{qid} {q0} {names[docid]} {rank} {score} omniembed")
    (OUT / "first_stage.trec").write_text("\n".join(run_lines) + "\n")
    with (OUT / "queries.csv").open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["Query_id", "query"])
        for line in (HERE / "queries.tsv").read_text().splitlines()[1:]:
            writer.writerow(line.split("\t", 1))
    judgments = []
    for line in (HERE / "qrels.txt").read_text().splitlines():
        qid, _, docid, relevance = line.split()
        judgments.append(json.dumps({"query_id": qid, "doc_id": names[docid], "relevance": int(relevance)}))
    (OUT / "judgments.jsonl").write_text("\n".join(judgments) + "\n")


if __name__ == "__main__":
    main()
