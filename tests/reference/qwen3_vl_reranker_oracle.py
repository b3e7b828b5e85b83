"""Golden facts from Qwen3-VL-Reranker's reference implementation, run in its own software stack.

The reference is `Qwen3VLReranker` in QwenLM/Qwen3-VL-Embedding at commit 8ce3aab, `src/models/qwen3_vl_reranker.py`.
This script imports that file as it is (read with `git show` from a local clone, or given as a file whose SHA-256
must match) and calls it exactly as its README does, `model.process({"query": {"text": q}, "documents": [{"video":
path}]})`, one case at a time. Spies around its collaborators record what it does inside `process()` without
changing it: the messages (`format_mm_instruction`), the chat-template text, what `process_vision_info` returns
(video metadata, sampled frames, video kwargs), the processor's output before the truncation, the ids after it, and
the score. The result is a JSON file that rankvideo's tests (another venv, transformers 5.x) pin its
reimplementation to.

The stack it needs (NOT rankvideo's venv; see tests/reference/README.md):

    python3 -m venv /tmp/ref-venv
    /tmp/ref-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 transformers==4.57.1 qwen-vl-utils==0.0.14 \
        decord==0.6.0 scipy pillow numpy av

Run (after `make_oracle_videos.py`, which makes the videos and rankvideo's tiny-random model):

    /tmp/ref-venv/bin/python tests/reference/qwen3_vl_reranker_oracle.py --model /tmp/ref-tiny/tiny-random-v1 \
        --videos /tmp/oracle-videos --out tests/data/qwen3_vl_reranker_reference.json

The model is rankvideo's `tiny-random` (random weights, Qwen's real vocabulary), written by transformers 5.x.
transformers 4.57.1 cannot read two things of that save, so the script loads an adapted COPY of the directory
(the original is never touched; `model.safetensors` is copied byte for byte, and the script checks that every
tensor the reference's model holds equals the saved one, upcast from bfloat16 to float32):

1. config.json, `text_config`: 5.x writes the rotary settings as `rope_parameters` (`rope_type`, `rope_theta`,
   `mrope_section`, `mrope_interleaved`); 4.57.1 reads `rope_theta` and `rope_scaling` (and its text rotary
   embedding calls `config.rope_scaling.get("mrope_section")`, so without it the model cannot even be built). The
   copy gets `rope_theta` and `rope_scaling = {rope_type, mrope_section, mrope_interleaved}` with the same values,
   and loses `rope_parameters`: the layout of Qwen3-VL's own config.json. (`vision_config.rope_parameters`, theta
   10000, is left as it is: 4.57.1 ignores it and hard-codes the same theta.)
2. tokenizer_config.json: 5.x writes Qwen's 13 special added tokens (`<|im_start|>` ... `<|video_pad|>`) as a list
   under `extra_special_tokens`; 4.57.1 expects a dict there and fails to load the tokenizer. The copy names the
   same list `additional_special_tokens` (as Qwen3-VL's own tokenizer_config.json does), which is what makes them
   part of `tokenizer.all_special_ids`, the set the reference's truncation keeps. The 5.x-only key `backend` is
   dropped. tokenizer.json (vocabulary, merges, added tokens with their `special` flags) is unchanged.

Everything else (weights, tokenizer.json, chat_template.jinja, the image and video processor configs,
generation_config.json) is copied unchanged. The model runs in float32 on CPU (`dtype=torch.float32`).

Video paths differ from machine to machine: in the recorded messages and `process()` inputs the path is written
as `{VIDEO_PATH}` (the reference passes `"file://" + path` to qwen-vl-utils).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REFERENCE_REPO = "QwenLM/Qwen3-VL-Embedding"
REFERENCE_COMMIT = "8ce3aab"
REFERENCE_PATH = "src/models/qwen3_vl_reranker.py"
DEFAULT_GIT_DIR = "/work/.mirror/QwenLM+Qwen3-VL-Embedding/repo"
PLACEHOLDER = "{VIDEO_PATH}"

DOG = "a dog surfing on a wave"
OHIO = "the election results in Ohio"
CUSTOM_INSTRUCTION = "Retrieve videos showing the event described."
LONG_QUERY_WORDS = 3000
# The long query: these sentences in turn until the text holds at least LONG_QUERY_WORDS words.
LONG_QUERY_SENTENCES = (
    "A golden retriever paddles out past the breakers at dawn, balancing on a bright yellow longboard.",
    "Spectators on the pier cheer while a photographer kneels on wet planks to frame the shot.",
    "The wave curls slowly from left to right, and white spray drifts across the lens.",
    "Later that afternoon the county clerk posted unofficial returns from forty-two precincts.",
    "Volunteers counted absentee ballots in a gymnasium lit by humming fluorescent tubes.",
    "A reporter asked whether turnout in the northern suburbs had exceeded the 2020 figures.",
    "Meanwhile, a chef in Lisbon grills sardines over charcoal and squeezes lemon on each one.",
    "Children chase pigeons across the cobblestones while trams rattle up the steep hill.",
    "The documentary cuts to a time-lapse of clouds racing over snow-capped Andean peaks.",
    "An engineer explains how the suspension bridge flexes by nearly a metre in strong wind.",
    "Close-up footage shows honeybees packing pollen into hexagonal wax cells.",
    "A cyclist in a red jersey sprints the final kilometre, her teammates fading behind her.",
    "Rain hammers the tin roof of a roadside diner where truckers argue about football.",
    "The orchestra tunes to a single oboe note before the conductor raises her baton.",
    "Divers descend along a coral wall where a green turtle grazes on sponges.",
    "In the control room, operators watch telemetry scroll as the rocket clears the tower.",
    "A farmer checks soil moisture with a steel probe, then glances at the darkening sky.",
    "Skateboarders film each other grinding a handrail outside the public library.",
    "The museum guide points out brushstrokes that reveal an earlier, hidden composition.",
    "Night falls over the harbour, and fishing boats switch on their green and red lamps.",
    "Is this the clip where a small terrier rides a foam board through shallow surf?",
    "Quarterly figures: revenue up 7.4%, operating costs down 2.1%, headcount unchanged at 1,250.",
    "Über-fast trains connect Zürich and Milano in under three hours — faster than flying.",
    "She whispered, 'Don't forget the tide tables,' and handed him a dog-eared notebook.",
)


def long_query() -> str:
    sentences: list[str] = []
    words = 0
    index = 0
    while words < LONG_QUERY_WORDS:
        sentence = LONG_QUERY_SENTENCES[index % len(LONG_QUERY_SENTENCES)]
        sentences.append(sentence)
        words += len(sentence.split())
        index += 1
    return " ".join(sentences)


QUERIES = {"dog": DOG, "ohio": OHIO, "long": long_query()}

# (case id, video name in the manifest, query key, instruction or None for the reference's default)
VIDEO_ORDER = (
    "bikes",
    "bigbuckbunny",
    "long70s_1280x720_1fps",
    "fullhd3s_1920x1080_30fps",
    "small75s_192x108_25fps",
    "hd26s_1280x720_2fps",
    "hd28s_1280x720_2fps",
    "ntsc10s_640x360_29.97fps",
)
CASES: tuple[tuple[str, str, str, str | None], ...] = (
    *((f"{video}/dog", video, "dog", None) for video in VIDEO_ORDER),
    ("long70s_1280x720_1fps/ohio", "long70s_1280x720_1fps", "ohio", None),
    ("bikes/ohio", "bikes", "ohio", None),
    ("bikes/dog/custom-instruction", "bikes", "dog", CUSTOM_INSTRUCTION),
    ("hd26s_1280x720_2fps/long", "hd26s_1280x720_2fps", "long", None),
    ("long70s_1280x720_1fps/long", "long70s_1280x720_1fps", "long", None),
)


# -- the reference and its model ------------------------------------------------------------------------------


def load_reference(git_dir: str | None, file: Path | None, expected_sha256: str | None) -> tuple[Any, dict[str, str]]:
    """Import the reference module from `git show COMMIT:PATH` (or a copy of that file) via a temporary file."""
    if file is not None:
        source = file.read_bytes()
        commit = REFERENCE_COMMIT
    else:
        git_dir = git_dir or DEFAULT_GIT_DIR
        git = ["git", f"--git-dir={git_dir}"]
        source = subprocess.run(
            [*git, "show", f"{REFERENCE_COMMIT}:{REFERENCE_PATH}"], capture_output=True, check=True
        ).stdout
        commit = subprocess.run(
            [*git, "rev-parse", f"{REFERENCE_COMMIT}^{{commit}}"], capture_output=True, check=True, text=True
        ).stdout.strip()
    digest = hashlib.sha256(source).hexdigest()
    if expected_sha256 and digest != expected_sha256:
        raise SystemExit(f"reference file SHA-256 {digest} != expected {expected_sha256}")
    module_dir = Path(tempfile.mkdtemp(prefix="qwen3vl-reranker-reference-"))
    module_path = module_dir / "qwen3_vl_reranker_reference.py"
    module_path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("qwen3_vl_reranker_reference", module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, {"commit": commit, "path": REFERENCE_PATH, "repository": REFERENCE_REPO, "sha256": digest}


def adapt_model_dir(source: Path, target: Path) -> list[str]:
    """Copy `source` to `target` and make the copy readable by transformers 4.57.1 (see the module docstring)."""
    shutil.copytree(source, target)
    changes: list[str] = []
    config_path = target / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    text = config.get("text_config", {})
    if "rope_parameters" in text and "rope_scaling" not in text:
        rope = text.pop("rope_parameters")
        text["rope_theta"] = rope["rope_theta"]
        text["rope_scaling"] = {
            key: rope[key] for key in ("rope_type", "mrope_section", "mrope_interleaved") if key in rope
        }
        changes.append(
            "config.json text_config: rope_parameters -> rope_theta "
            f"{text['rope_theta']!r} + rope_scaling {json.dumps(text['rope_scaling'], sort_keys=True)}"
        )
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tokenizer_path = target / "tokenizer_config.json"
    tokenizer = json.loads(tokenizer_path.read_text(encoding="utf-8"))
    if isinstance(tokenizer.get("extra_special_tokens"), list):
        tokens = tokenizer.pop("extra_special_tokens")
        tokenizer["additional_special_tokens"] = tokens
        changes.append(
            f"tokenizer_config.json: extra_special_tokens (list of {len(tokens)}) -> additional_special_tokens"
        )
    if "backend" in tokenizer:
        changes.append(f"tokenizer_config.json: dropped backend={tokenizer.pop('backend')!r}")
    tokenizer_path.write_text(json.dumps(tokenizer, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return changes


def check_weights(source: Path, adapted: Path, reranker: Any) -> dict[str, Any]:
    """Every tensor of the loaded model equals the saved one (bfloat16 -> float32), nothing missing or extra."""
    import torch
    from safetensors.torch import load_file
    from transformers import Qwen3VLForConditionalGeneration

    saved: dict[str, Any] = {}
    for file in sorted(source.glob("*.safetensors")):
        saved.update(load_file(str(file)))
    lm, info = Qwen3VLForConditionalGeneration.from_pretrained(
        str(adapted), dtype=torch.float32, output_loading_info=True
    )
    problems = {key: value for key, value in info.items() if value}
    if problems:
        raise SystemExit(f"4.57.1 loaded the adapted model with problems: {problems}")
    state = lm.state_dict()
    if set(state) != set(saved):
        raise SystemExit(f"parameter names differ: {sorted(set(state) ^ set(saved))[:10]}")
    for key, tensor in saved.items():
        if state[key].dtype != torch.float32 or not torch.equal(state[key], tensor.to(torch.float32)):
            raise SystemExit(f"{key}: loaded tensor differs from the saved one")
    backbone = reranker.model.state_dict()
    for key, tensor in backbone.items():
        if not torch.equal(tensor, saved[f"model.{key}"].to(torch.float32)):
            raise SystemExit(f"reference backbone {key} differs from the saved tensor")
    vocab = reranker.processor.tokenizer.get_vocab()
    head = saved["lm_head.weight"].to(torch.float32)
    expected = head[vocab["yes"]] - head[vocab["no"]]
    if not torch.equal(reranker.score_linear.weight[0], expected):
        raise SystemExit("the reference's score head is not W[yes] - W[no]")
    return {
        "checked_tensors": len(saved),
        "saved_dtypes": sorted({str(tensor.dtype) for tensor in saved.values()}),
        "loaded_dtype": str(reranker.model.dtype),
        "all_equal_after_upcast": True,
    }


# -- recording --------------------------------------------------------------------------------------------------


def rle(ids: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for token in ids:
        if runs and runs[-1][0] == token:
            runs[-1][1] += 1
        else:
            runs.append([token, 1])
    return runs


def shape_of(value: Any) -> Any:
    if hasattr(value, "shape"):
        return list(value.shape)
    if isinstance(value, list):
        if value and isinstance(value[0], list):
            return [len(value), *sorted({len(row) for row in value})]
        return [len(value)]
    return None


def describe(value: Any) -> Any:
    """A JSON-able summary of a processor argument or output (tensors as shape and dtype)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return {"dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, dict):
        return {str(key): describe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        if len(value) > 8 and all(isinstance(item, int) for item in value):
            return {"list_of_int": len(value)}
        return [describe(item) for item in value]
    return repr(value)


def redact(value: Any, path: str) -> Any:
    if isinstance(value, str):
        return value.replace(path, PLACEHOLDER)
    if isinstance(value, dict):
        return {key: redact(item, path) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item, path) for item in value]
    return value


class ProcessorSpy:
    """Stands in for the reference's processor: delegates everything, records the two calls `tokenize` makes."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.log: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def apply_chat_template(self, *args: Any, **kwargs: Any) -> Any:
        text = self._inner.apply_chat_template(*args, **kwargs)
        self.log.setdefault("chat_template_calls", []).append({"kwargs": describe(kwargs), "text": text})
        return text

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        output = self._inner(*args, **kwargs)
        self.log["processor_call"] = {
            "kwargs": {key: describe(value) for key, value in kwargs.items() if key not in ("text",)},
            "text_is_list": isinstance(kwargs.get("text"), list),
        }
        self.log["processor_output"] = {key: {"shape": shape_of(value)} for key, value in output.items()}
        self.log["processor_output_types"] = {key: type(value).__name__ for key, value in output.items()}
        self.log["ids_before"] = [list(map(int, row)) for row in output["input_ids"]]
        self.log["processor_raw"] = output
        return output


def frames_digest(video: Any) -> dict[str, Any]:
    import torch

    integral = bool(torch.equal(video, video.round())) and float(video.min()) >= 0 and float(video.max()) <= 255
    if not integral:
        raise SystemExit("qwen-vl-utils returned frames that are not whole numbers in 0..255")
    frames = video.to(torch.uint8).contiguous()
    data = frames.numpy()
    return {
        "frames_shape": list(frames.shape),
        "frames_dtype": str(video.dtype),
        "frames_integral_0_255": integral,
        "frames_sha256": hashlib.sha256(data.tobytes()).hexdigest(),
        "frame_sha256": [hashlib.sha256(frame.tobytes()).hexdigest() for frame in data],
        "frames_uint8_sum": int(data.sum(dtype="int64")),
    }


def run_case(
    reference: Any, reranker: Any, spy: ProcessorSpy, video_path: Path, query: str, instruction: str | None
) -> dict[str, Any]:
    record: dict[str, Any] = {}
    vision_calls: list[dict[str, Any]] = []
    original_pvi = reference.process_vision_info
    original_tokenize = reranker.tokenize
    original_compute = reranker.compute_scores
    original_truncate = reranker.truncate_tokens_optimized

    def spy_pvi(conversations: Any, **kwargs: Any) -> Any:
        try:
            result = original_pvi(conversations, **kwargs)
        except Exception as error:  # the reference falls back to a "NULL" prompt: a case must never do that
            vision_calls.append({"error": repr(error)})
            raise
        images, videos, video_kwargs = result
        call: dict[str, Any] = {
            "kwargs": describe(kwargs),
            "images": describe(images),
            "video_kwargs": describe(video_kwargs),
        }
        call["videos"] = []
        for video, metadata in videos or []:
            entry = {
                "metadata": {
                    "fps": float(metadata["fps"]),
                    "frames_indices": [int(i) for i in metadata["frames_indices"]],
                    "total_num_frames": int(metadata["total_num_frames"]),
                    "video_backend": metadata.get("video_backend"),
                },
                **frames_digest(video),
            }
            call["videos"].append(entry)
        vision_calls.append(call)
        return result

    def spy_tokenize(pairs: Any, **kwargs: Any) -> Any:
        record["tokenize_pairs"] = pairs
        inputs = original_tokenize(pairs, **kwargs)
        record["tokenize_output"] = {
            key: {"shape": shape_of(value), "type": type(value).__name__} for key, value in inputs.items()
        }
        record["ids_after"] = [list(map(int, row)) for row in inputs["input_ids"].tolist()]
        record["attention_mask_after"] = [list(map(int, row)) for row in inputs["attention_mask"].tolist()]
        return inputs

    truncations: list[dict[str, int]] = []

    def spy_truncate(tokens: Any, max_length: int, special_tokens: Any) -> Any:
        kept = original_truncate(tokens, max_length, special_tokens)
        truncations.append({"max_length": int(max_length), "in": len(tokens), "out": len(kept)})
        return kept

    scores_seen: list[list[float]] = []

    def spy_compute(inputs: Any) -> Any:
        record["model_inputs"] = {key: list(value.shape) for key, value in inputs.items()}
        scores = original_compute(inputs)
        scores_seen.append(list(scores))
        return scores

    reference.process_vision_info = spy_pvi
    reranker.tokenize = spy_tokenize
    reranker.compute_scores = spy_compute
    reranker.truncate_tokens_optimized = spy_truncate
    spy.log = {}
    inputs: dict[str, Any] = {"query": {"text": query}, "documents": [{"video": str(video_path)}]}
    if instruction is not None:
        inputs["instruction"] = instruction
    try:
        scores = reranker.process(inputs)  # as the README calls it (its compute_scores runs under no_grad)
    finally:
        reference.process_vision_info = original_pvi
        del reranker.tokenize, reranker.compute_scores, reranker.truncate_tokens_optimized

    tokenizer = reranker.processor.tokenizer
    special = set(tokenizer.all_special_ids)
    if len(vision_calls) != 1 or "error" in vision_calls[0]:
        raise SystemExit(f"process_vision_info: {vision_calls}")
    pairs = record["tokenize_pairs"]
    if len(pairs) != 1 or scores_seen != [scores]:
        raise SystemExit("process() should tokenize and score one pair at a time")
    (before,) = spy.log["ids_before"]
    (after,) = record["ids_after"]
    if record["attention_mask_after"] != [[1] * len(after)]:
        raise SystemExit("a single pair should need no padding")
    video_call = vision_calls[0]
    (video,) = video_call["videos"]
    raw = spy.log["processor_raw"]
    grid = [int(x) for x in raw["video_grid_thw"][0]]
    special_before = sum(1 for token in before if token in special)
    special_after = sum(1 for token in after if token in special)
    body_before = before[:-5]
    nonspecial_before = [token for token in body_before if token not in special]
    nonspecial_after_body = [token for token in after[:-5] if token not in special]
    assert after[-5:] == before[-5:]
    kept = len(nonspecial_after_body)
    assert nonspecial_before[:kept] == nonspecial_after_body
    dropped = nonspecial_before[kept:]
    chat_calls = spy.log["chat_template_calls"]
    if len(chat_calls) != 1:
        raise SystemExit(f"apply_chat_template was called {len(chat_calls)} times (the NULL fallback?)")
    chat_text = chat_calls[0]["text"]
    pixel_values = raw["pixel_values_videos"]
    path = str(video_path)
    return {
        "messages": redact(pairs[0], path),
        "chat_template_kwargs": chat_calls[0]["kwargs"],
        "chat_template_text": chat_text[0] if isinstance(chat_text, list) and len(chat_text) == 1 else chat_text,
        "chat_template_text_is_list": isinstance(chat_text, list),
        "vision": {
            "process_vision_info_kwargs": video_call["kwargs"],
            "images": video_call["images"],
            "video_kwargs": video_call["video_kwargs"],
            **video,
        },
        "processor_call": spy.log["processor_call"],
        "processor_output": spy.log["processor_output"],
        "processor_output_types": spy.log["processor_output_types"],
        "video_grid_thw": grid,
        "video_pad_ids": grid[0] * grid[1] * grid[2] // 4,
        "pixel_values_videos": {
            "shape": list(pixel_values.shape),
            "sum": float(pixel_values.double().sum()),
            "sum_of_squares": float((pixel_values.double() ** 2).sum()),
        },
        "ids_before": rle(before),
        "ids_after": rle(after),
        "n_ids_before": len(before),
        "n_ids_after": len(after),
        "n_special_before": special_before,
        "n_nonspecial_before": len(before) - special_before,
        "n_special_after": special_after,
        "n_nonspecial_after": len(after) - special_after,
        "n_nonspecial_kept_before_last5": kept,
        "truncated": before != after,
        "truncate_calls": truncations,
        "last5_ids": after[-5:],
        "last5_text": tokenizer.decode(after[-5:]),
        "kept_nonspecial_text": tokenizer.decode(nonspecial_after_body),
        "dropped_nonspecial_text": tokenizer.decode(dropped),
        "tokenize_output": record["tokenize_output"],
        "model_inputs": record["model_inputs"],
        "score": float(scores[0]),
        "scores": [float(score) for score in scores],
        "logit": math.log(scores[0] / (1 - scores[0])),
    }


# -- output -----------------------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    names = (
        "torch",
        "torchvision",
        "transformers",
        "tokenizers",
        "qwen-vl-utils",
        "decord",
        "numpy",
        "pillow",
        "scipy",
        "av",
        "safetensors",
    )
    found: dict[str, str] = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    found["python"] = platform.python_version()
    return found


def dump(data: Any) -> str:
    """JSON with sorted keys and indent 1, but every list of numbers (and the [[id, count], ...] runs) on one line."""
    compact: dict[str, str] = {}

    def flatten(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: flatten(item) for key, item in value.items()}
        if isinstance(value, list):
            numbers = all(isinstance(item, int | float) and not isinstance(item, bool) for item in value)
            runs = all(isinstance(item, list) and all(isinstance(x, int) for x in item) for item in value)
            if value and (numbers or runs):
                key = f"@@compact{len(compact)}@@"
                compact[key] = json.dumps(value, separators=(",", ":"))
                return key
            return [flatten(item) for item in value]
        return value

    text = json.dumps(flatten(data), indent=1, sort_keys=True, ensure_ascii=False)
    for key, value in compact.items():
        text = text.replace(f'"{key}"', value, 1)
    return text + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="rankvideo's tiny-random model directory")
    parser.add_argument("--videos", type=Path, required=True, help="the directory make_oracle_videos.py wrote")
    parser.add_argument("--out", type=Path, required=True, help="the goldens JSON to write")
    parser.add_argument("--reference-git-dir", help=f"a clone of {REFERENCE_REPO} (default {DEFAULT_GIT_DIR})")
    parser.add_argument("--reference-file", type=Path, help=f"{REFERENCE_PATH} at {REFERENCE_COMMIT}, instead of git")
    parser.add_argument("--reference-sha256", help="the SHA-256 the reference file must have")
    parser.add_argument("--only", action="append", help="run only these case ids (for a quick look; not for goldens)")
    args = parser.parse_args()

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    reference, reference_info = load_reference(args.reference_git_dir, args.reference_file, args.reference_sha256)
    manifest = json.loads((args.videos / "manifest.json").read_text(encoding="utf-8"))["videos"]

    workdir = Path(tempfile.mkdtemp(prefix="qwen3vl-oracle-"))
    adapted = workdir / "model"
    changes = adapt_model_dir(args.model, adapted)
    reranker = reference.Qwen3VLReranker(model_name_or_path=str(adapted), dtype=torch.float32)
    weights = check_weights(args.model, adapted, reranker)
    spy = ProcessorSpy(reranker.processor)
    reranker.processor = spy
    tokenizer = spy.tokenizer

    cases: dict[str, Any] = {}
    for case_id, video, query_key, instruction in CASES:
        if args.only and case_id not in args.only:
            continue
        entry = manifest[video]
        path = (args.videos / entry["file"]).resolve()
        if hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
            raise SystemExit(f"{path}: not the file the manifest names")
        started = time.perf_counter()
        result = run_case(reference, reranker, spy, path, QUERIES[query_key], instruction)
        seconds = time.perf_counter() - started
        cases[case_id] = {"video": video, "query_key": query_key, "instruction": instruction, **result}
        print(
            f"{case_id}: frames {result['vision']['frames_shape']} grid {result['video_grid_thw']} "
            f"ids {result['n_ids_before']}->{result['n_ids_after']} non-special kept {result['n_nonspecial_after']} "
            f"score {result['score']!r} ({seconds:.1f} s)",
            file=sys.stderr,
            flush=True,
        )

    vocab = tokenizer.get_vocab()
    goldens = {
        "provenance": {
            "reference": reference_info,
            "versions": versions(),
            "torch_threads": torch.get_num_threads(),
            "device": "cpu",
            "dtype": "float32",
            "model": {
                "built_by": "rankvideo_cli.scoring.tiny.ensure_tiny_model (transformers 5.x), directory "
                + args.model.name,
                "safetensors_sha256": {
                    file.name: hashlib.sha256(file.read_bytes()).hexdigest()
                    for file in sorted(args.model.glob("*.safetensors"))
                },
                "adaptations_for_transformers_4_57": changes,
                "weights_check": weights,
            },
            "video_placeholder": PLACEHOLDER,
            "regenerate": [
                "python3 -m venv /tmp/ref-venv",
                "/tmp/ref-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 transformers==4.57.1 "
                "qwen-vl-utils==0.0.14 decord==0.6.0 scipy pillow numpy av",
                ".venv/bin/python tests/reference/make_oracle_videos.py /tmp/oracle-videos "
                "--tiny-model-root /tmp/ref-tiny",
                "/tmp/ref-venv/bin/python tests/reference/qwen3_vl_reranker_oracle.py "
                "--model /tmp/ref-tiny/tiny-random-v1 --videos /tmp/oracle-videos "
                "--out tests/data/qwen3_vl_reranker_reference.json",
            ],
            "script": "tests/reference/qwen3_vl_reranker_oracle.py",
        },
        "videos": manifest,
        "queries": QUERIES,
        "process_call": (
            'reranker.process({"query": {"text": queries[case.query_key]}, "documents": [{"video": path}]}), '
            'plus "instruction": case.instruction when that is not null; one case per call'
        ),
        "long_query_recipe": {
            "sentences": list(LONG_QUERY_SENTENCES),
            "rule": "join the sentences in turn with single spaces until the text holds >= min_words words (str.split)",
            "min_words": LONG_QUERY_WORDS,
        },
        "tokenizer": {
            "all_special_ids": [int(token) for token in tokenizer.all_special_ids],
            "yes_id": int(vocab["yes"]),
            "no_id": int(vocab["no"]),
            "class": type(tokenizer).__name__,
            "padding_side": tokenizer.padding_side,
        },
        "processor": {
            "class": type(spy._inner).__name__,
            "video_processor": type(spy.video_processor).__name__,
            "image_processor": type(spy.image_processor).__name__,
        },
        "reranker": {
            "max_length": reranker.max_length,
            "fps": reranker.fps,
            "max_frames": reranker.max_frames,
            "default_instruction": reranker.default_instruction,
        },
        "cases": cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dump(goldens), encoding="utf-8")
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(cases)} cases)", file=sys.stderr)


if __name__ == "__main__":
    main()
