"""Regenerate the shipped sample: synthetic videos, queries, qrels and a first-stage run.

The videos are procedurally drawn scenes (a coloured shape moving over a coloured background) so that the queries
have a ground truth. Run from the repo root: `python sample_runs/make_sample.py`. Output is deterministic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT, FPS, SECONDS = 320, 240, 24, 3

COLOURS = {
    "red": (220, 40, 40),
    "blue": (40, 70, 220),
    "yellow": (235, 210, 40),
    "white": (240, 240, 240),
}
BACKGROUNDS = {"green": (40, 140, 60), "black": (15, 15, 15), "grey": (120, 120, 120)}


@dataclass(frozen=True)
class Scene:
    docid: str
    shape: str  # ball | square
    colour: str
    background: str
    direction: str  # right | left | up | down

    def describe(self) -> str:
        return f"a {self.colour} {self.shape} moving {self.direction} on a {self.background} background"


SCENES = [
    Scene("v001", "ball", "red", "green", "right"),
    Scene("v002", "ball", "red", "black", "left"),
    Scene("v003", "square", "red", "grey", "up"),
    Scene("v004", "ball", "blue", "green", "down"),
    Scene("v005", "square", "blue", "black", "right"),
    Scene("v006", "square", "blue", "grey", "left"),
    Scene("v007", "ball", "yellow", "black", "up"),
    Scene("v008", "square", "yellow", "green", "right"),
    Scene("v009", "ball", "white", "grey", "down"),
    Scene("v010", "square", "white", "green", "left"),
    Scene("v011", "ball", "yellow", "grey", "right"),
    Scene("v012", "square", "red", "black", "down"),
]
# A candidate whose video file does not exist: shows how `--on-missing-video` and the summary treat it.
MISSING_DOCID = "v404"

QUERIES = {
    "q1": ("a red ball", lambda s: s.colour == "red" and s.shape == "ball"),
    "q2": ("a blue square moving", lambda s: s.colour == "blue" and s.shape == "square"),
    "q3": ("something yellow on a black background", lambda s: s.colour == "yellow" and s.background == "black"),
    "q4": ("a shape moving to the right", lambda s: s.direction == "right"),
}


def _frame(scene: Scene, t: float) -> np.ndarray:
    image = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[:] = BACKGROUNDS[scene.background]
    progress = t / SECONDS
    cx, cy = WIDTH // 2, HEIGHT // 2
    travel_x, travel_y = int((WIDTH - 80) * (progress - 0.5)), int((HEIGHT - 80) * (progress - 0.5))
    cx, cy = {
        "right": (cx + travel_x, cy),
        "left": (cx - travel_x, cy),
        "down": (cx, cy + travel_y),
        "up": (cx, cy - travel_y),
    }[scene.direction]
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    if scene.shape == "ball":
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= 30**2
    else:
        mask = (abs(xx - cx) <= 28) & (abs(yy - cy) <= 28)
    image[mask] = COLOURS[scene.colour]
    return image


def write_video(scene: Scene, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        # single-threaded, fixed options: the encoded bytes are reproducible
        stream.thread_count = 1
        stream.options = {"crf": "28", "preset": "medium", "g": str(FPS * 2)}
        stream.time_base = Fraction(1, FPS)
        for index in range(FPS * SECONDS):
            frame = av.VideoFrame.from_ndarray(_frame(scene, index / FPS), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main() -> None:
    videos = HERE / "videos"
    for scene in SCENES:
        write_video(scene, videos / f"{scene.docid}.mp4")

    rng = random.Random(20261125)
    run_lines, qrels_lines = [], []
    for qid, (_text, is_relevant) in QUERIES.items():
        candidates = [*rng.sample(SCENES, 9)]
        docids = [scene.docid for scene in candidates] + [MISSING_DOCID]
        # a first-stage retriever that is only loosely right: noisy scores
        scores = sorted((round(rng.uniform(0.2, 0.9), 4) for _ in docids), reverse=True)
        rng.shuffle(docids)
        for rank, (docid, score) in enumerate(zip(docids, scores, strict=True), start=1):
            run_lines.append(f"{qid} Q0 {docid} {rank} {score} first-stage")
        for scene in SCENES:
            qrels_lines.append(f"{qid} 0 {scene.docid} {int(is_relevant(scene))}")

    (HERE / "first_stage.trec").write_text("\n".join(run_lines) + "\n")
    (HERE / "qrels.txt").write_text("\n".join(qrels_lines) + "\n")
    (HERE / "queries.tsv").write_text("qid\ttext\n" + "".join(f"{qid}\t{text}\n" for qid, (text, _) in QUERIES.items()))
    (HERE / "scenes.tsv").write_text("docid\tdescription\n" + "".join(f"{s.docid}\t{s.describe()}\n" for s in SCENES))


if __name__ == "__main__":
    main()
