"""A model's fingerprint from its files, without torch or transformers (`model_files`, `chat_template`,
`runtime`): equal to the loaded scorer's for every reranker, prompt and model layout, because a fully stored rerun
finds its scores under it; and `resolve_model_offline`, which `doctor` and the dry run read."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Set
from pathlib import Path

import pytest
import torch
from helpers import invoke
from huggingface_hub import try_to_load_from_cache

from rankvideo_cli.errors import ModelLoadError, UsageError
from rankvideo_cli.scoring import loading, runtime
from rankvideo_cli.scoring.chat_template import TemplateProcessor, processor_chat_template, template_for
from rankvideo_cli.scoring.deferred import DeferredScorer
from rankvideo_cli.scoring.loading import (
    check_model_available,
    load_processor,
    load_scorer,
    predict_fingerprint,
    resolve_device,
)
from rankvideo_cli.scoring.model_files import cached_snapshot, local_revision, resolve_model_offline
from rankvideo_cli.scoring.options import ScorerOptions
from rankvideo_cli.scoring.prompt import PROBE_QUERY, build_messages
from rankvideo_cli.scoring.rerankers.qwen3_vl_reranker import DEFAULT_INSTRUCTION
from rankvideo_cli.scoring.rerankers.qwen3_vl_reranker import build_messages as reranker_messages
from rankvideo_cli.scoring.tiny import TINY_MODEL_DIRNAME
from rankvideo_cli.scoring.training_prompt import build_training_messages

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER_COMMIT = "89abcdef0123456789abcdef0123456789abcdef"
QWEN3 = "qwen3-vl-reranker"
LIGHT_PROBE = """
import json, sys
from rankvideo_cli.scoring.loading import predict_fingerprint
from rankvideo_cli.scoring.options import ScorerOptions
fingerprint = predict_fingerprint(ScorerOptions(**json.loads(sys.argv[1])))
heavy = sorted(name for name in ("torch", "transformers", "torchvision", "av", "qwen_vl_utils") if name in sys.modules)
print(json.dumps({"fingerprint": fingerprint, "heavy": heavy}))
"""


def hub_cache_holding(
    cache: Path, source: Path, repo: str, commit: str = COMMIT, refs: tuple[str, ...] = ("main",)
) -> Path:
    """A Hugging Face cache holding `source`'s files as the snapshot `commit` of `repo`, `refs` pointing at it."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in source.iterdir():
        (snapshot / file.name).symlink_to(file)
    (folder / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (folder / "refs" / ref).write_text(commit)
    return snapshot


def messages_rankvideo_renders() -> list[tuple[list[dict], bool]]:
    """Every conversation rankvideo gives a chat template, with its `add_generation_prompt`."""
    queries = [PROBE_QUERY, 'a "quoted" query\nover two lines <b>&amp;</b> {{ not jinja }}', "  ünïcode ✓  "]
    conversations: list[tuple[list[dict], bool]] = []
    for query in queries:
        conversations.append((build_messages(query), True))
        conversations.append((build_training_messages(query), False))
        for instruction in (DEFAULT_INSTRUCTION, "Find the <event>."):
            conversations.append((reranker_messages(query, instruction), True))
    return conversations


def test_the_template_renders_every_prompt_as_the_loaded_processor_does(tiny_model_dir: Path) -> None:
    processor = load_processor(str(tiny_model_dir), {})
    template = template_for(tiny_model_dir)
    assert template is not None and template == processor.chat_template
    light = TemplateProcessor(template)
    for messages, generation in messages_rankvideo_renders():
        expected = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
        assert light.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation) == expected


@pytest.mark.parametrize("layout", ["processor_config.json", "chat_template.json", "additional templates"])
def test_the_template_is_found_where_the_processor_finds_it(layout: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    """transformers' order: processor_config.json's key, the legacy chat_template.json, chat_template.jinja as the
    default beside additional_chat_templates/ (a reranker renders the default)."""
    directory = tmp_path / "model"
    shutil.copytree(tiny_model_dir, directory)
    template = (directory / "chat_template.jinja").read_text()
    edited = template.replace("<|im_start|>assistant\n", "<|im_start|>assistant\n\n")
    if layout == "processor_config.json":
        (directory / "processor_config.json").write_text(json.dumps({"chat_template": edited}))
    elif layout == "chat_template.json":
        (directory / "chat_template.jinja").unlink()
        (directory / "chat_template.json").write_text(json.dumps({"chat_template": edited}))
    else:
        (directory / "additional_chat_templates").mkdir()
        (directory / "additional_chat_templates" / "tools.jinja").write_text("{{ messages }}")
        (directory / "chat_template.jinja").write_text(edited)
    processor = load_processor(str(directory), {})
    assert processor_chat_template(directory) == processor.chat_template
    assert template_for(directory) == edited
    options = ScorerOptions(str(directory), device="cpu")
    assert predict_fingerprint(options) == load_scorer(options).fingerprint()


def test_a_template_that_reads_the_tokenizers_special_tokens_is_left_to_the_loaded_processor(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The processor passes its tokenizer's named special tokens to the template; they are not read here, so such
    a model's fingerprint waits for the load (correct, only slower)."""
    directory = tmp_path / "model"
    shutil.copytree(tiny_model_dir, directory)
    template = directory / "chat_template.jinja"
    template.write_text("{{ bos_token }}" + template.read_text())
    assert template_for(directory) is None
    options = ScorerOptions(str(directory), device="cpu")
    assert predict_fingerprint(options) is None
    deferred = DeferredScorer(options)
    assert deferred.fingerprint() == load_scorer(options).fingerprint() and deferred.loaded


MODELS = {
    "tiny-random": lambda cache, tiny: ScorerOptions("tiny-random", device="cpu"),
    "local directory": lambda cache, tiny: ScorerOptions(str(tiny), device="cpu", dtype="bfloat16"),
    "hub id at a commit": lambda cache, tiny: ScorerOptions(
        "hltcoe/RankVideo", cache_dir=str(cache), revision=COMMIT, device="cpu"
    ),
    "hub snapshot directory": lambda cache, tiny: ScorerOptions(
        str(cache / "models--hltcoe--RankVideo" / "snapshots" / COMMIT), device="cpu"
    ),
}
SETTINGS = {
    "inference": {},
    "inference, reference score": {"score_mode": "reference"},
    "training": {"prompt": "training"},
    "qwen3-vl-reranker": {"reranker": QWEN3},
    "qwen3-vl-reranker, own instruction": {"reranker": QWEN3, "instruction": "Find the event."},
}


@pytest.mark.parametrize("settings", list(SETTINGS))
@pytest.mark.parametrize("model", list(MODELS))
def test_the_fingerprint_from_the_files_is_the_loaded_scorers(
    model: str, settings: str, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub_cache_holding(tmp_path, tiny_model_dir, "hltcoe/RankVideo")
    options = MODELS[model](tmp_path, tiny_model_dir)
    options = ScorerOptions(**{**options.__dict__, **SETTINGS[settings]})
    predicted = predict_fingerprint(options)
    assert predicted is not None
    assert predicted == load_scorer(options).fingerprint()


@pytest.mark.parametrize("repo", ["hltcoe/RankVideo", "Qwen/Qwen3-VL-Reranker-2B"])
def test_a_hub_id_offline_is_fingerprinted_at_its_cached_commit_by_its_own_reranker(
    repo: str, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_cache_holding(tmp_path, tiny_model_dir, repo)
    options = ScorerOptions(repo, cache_dir=str(tmp_path), device="cpu")
    predicted = predict_fingerprint(options)
    assert predicted is not None and predicted["revision"] == COMMIT and predicted["model"] == repo
    assert ("reranker" in predicted) == (repo.startswith("Qwen/"))
    assert predicted == load_scorer(options).fingerprint()


def test_the_fingerprint_is_read_without_torch_or_transformers(tiny_model_dir: Path, tmp_path: Path) -> None:
    """In a fresh interpreter, for each reranker: the rerun that finds every pair stored imports neither."""
    for settings in ({}, {"reranker": QWEN3}, {"prompt": "training"}):
        arguments = {"model": "tiny-random", "device": "cpu", **settings}
        completed = subprocess.run(
            [sys.executable, "-c", LIGHT_PROBE, json.dumps(arguments)], capture_output=True, text=True, check=True
        )
        outcome = json.loads(completed.stdout)
        assert outcome["heavy"] == []
        assert outcome["fingerprint"] == load_scorer(ScorerOptions(**arguments)).fingerprint()


def test_the_device_dtype_and_attention_are_torchs_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a GPU here: what `torch.cuda.is_available()` says, and the same refusal of a CUDA device."""
    assert runtime.torch_cuda_build() == (torch.version.cuda or "")
    assert runtime.cuda_available() == torch.cuda.is_available()
    assert runtime.device_type(None) == resolve_device(None).type
    assert runtime.device_type("cpu") == "cpu"
    assert runtime.device_type("mps") is None  # torch says what it is
    assert loading.resolve_device_name("mps") == "mps"
    if not torch.cuda.is_available():
        with pytest.raises(UsageError) as light:
            runtime.device_type("cuda:1")
        with pytest.raises(UsageError) as loaded:
            resolve_device("cuda:1")
        assert str(light.value) == str(loaded.value)
    monkeypatch.setattr(runtime, "cuda_available", lambda: True)
    assert runtime.device_type("cuda:1") == "cuda" and loading.resolve_device_name("cuda:1") == "cuda:1"
    assert runtime.dtype_name(None, "cuda") == "bfloat16" and runtime.dtype_name("fp16", "cpu") == "float16"
    assert runtime.attn_implementation_for(None, "cuda", "float32") == "sdpa"


class FakeDriver:
    """libcuda as ctypes sees it: each call writes through its pointer and returns a CUresult (0: success)."""

    def __init__(self, version: int, devices: int, init_result: int = 0) -> None:
        self.version, self.devices, self.init_result = version, devices, init_result

    def cuInit(self, flags: int) -> int:  # the driver API's names
        return self.init_result

    def cuDriverGetVersion(self, pointer) -> int:
        pointer._obj.value = self.version
        return 0

    def cuDeviceGetCount(self, pointer) -> int:
        pointer._obj.value = self.devices
        return 0


@pytest.mark.parametrize(
    ("driver", "devices"),
    [
        (None, 0),  # no libcuda.so.1
        (FakeDriver(13000, 2), 2),
        (FakeDriver(13020, 1), 1),
        (FakeDriver(12040, 2), 0),  # older than the CUDA torch was built for: torch finds no device
        (FakeDriver(13000, 0, init_result=100), 0),  # CUDA_ERROR_NO_DEVICE (CUDA_VISIBLE_DEVICES="")
    ],
    ids=["no driver", "two devices", "newer driver", "old driver", "none visible"],
)
def test_the_cuda_driver_is_asked_as_torch_would(driver: FakeDriver | None, devices: int, monkeypatch) -> None:
    def load(name: str) -> FakeDriver:
        if driver is None:
            raise OSError(f"{name}: cannot open shared object file")
        return driver

    monkeypatch.setattr(runtime.ctypes, "CDLL", load)
    assert runtime.cuda_driver_devices("13.0") == devices


def test_offline_resolution_of_each_kind_of_model(tiny_model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    snapshot = hub_cache_holding(tmp_path / "hub", tiny_model_dir, "org/tiny", refs=("main", "v1"))

    at_main = resolve_model_offline("org/tiny", cache_dir=tmp_path / "hub")
    assert (at_main.kind, at_main.directory, at_main.revision, at_main.problem) == ("hub", snapshot, COMMIT, None)
    assert at_main.resolved and not at_main.pinned  # online, main could move to a newer commit
    assert resolve_model_offline("org/tiny", "v1", tmp_path / "hub").revision == COMMIT  # a tag in refs/
    assert resolve_model_offline("org/tiny", COMMIT, tmp_path / "hub").pinned
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model_offline("org/tiny", cache_dir=tmp_path / "hub").pinned

    missing = resolve_model_offline("org/tiny", OTHER_COMMIT, tmp_path / "hub")
    assert not missing.resolved and missing.directory is None
    assert f"'org/tiny@{OTHER_COMMIT}' is not in the Hugging Face cache ({tmp_path / 'hub'})" in missing.problem
    assert "hf download org/tiny" in missing.problem

    local = resolve_model_offline(str(tiny_model_dir))
    assert (local.kind, local.model_id, local.revision) == (
        "local",
        str(tiny_model_dir.resolve()),
        local_revision(tiny_model_dir),
    )
    assert resolve_model_offline(str(snapshot)).revision == COMMIT  # a snapshot passed as a directory
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "has no config.json" in (resolve_model_offline(str(empty)).problem or "")
    assert "hub ids only" in (resolve_model_offline(str(tiny_model_dir), "main").problem or "")

    tiny = resolve_model_offline("tiny-random")
    assert (tiny.kind, tiny.directory, tiny.revision) == ("tiny-random", tiny_model_dir, TINY_MODEL_DIRNAME)
    fake = resolve_model_offline("fake-scorer")
    assert (fake.kind, fake.directory, fake.resolved) == ("fake-scorer", None, True)


def test_the_snapshot_lookup_is_huggingface_hubs(tiny_model_dir: Path, tmp_path: Path) -> None:
    hub_cache_holding(tmp_path, tiny_model_dir, "org/tiny", refs=("main", "v1"))
    hub_cache_holding(tmp_path, tiny_model_dir, "org/tiny", commit=OTHER_COMMIT, refs=())
    for revision in (None, "main", "v1", COMMIT, OTHER_COMMIT, "v2", "0" * 40):
        for model in ("org/tiny", "org/other"):
            expected = try_to_load_from_cache(model, "config.json", cache_dir=tmp_path, revision=revision)
            found = cached_snapshot(model, revision, tmp_path)
            assert (found / "config.json" if found else None) == (Path(expected) if isinstance(expected, str) else None)


INDEX = "model.safetensors.index.json"
SHARDS = tuple(f"model-0000{number}-of-00004.safetensors" for number in range(1, 5))
INCOMPLETE = {  # the files left out, those left as links to nothing, and what is said to be missing
    "only config.json": (
        {INDEX, *SHARDS},
        set(),
        "neither model.safetensors nor model.safetensors.index.json is there",
    ),
    "a shard the index names is not there": ({SHARDS[1]}, set(), f"{SHARDS[1]} is missing"),
    "a shard's link goes nowhere": (set(), {SHARDS[1]}, f"{SHARDS[1]} is missing"),
    "three shards missing": (
        {SHARDS[1], SHARDS[3]},
        {SHARDS[2]},
        f"{SHARDS[1]} and 2 more of its 4 shards are missing",
    ),
    "shards without the index": ({INDEX}, set(), f"{INDEX} is missing"),
    "the index's link goes nowhere": (set(), {INDEX}, f"{INDEX} is missing"),
}


def sharded_checkpoint(
    directory: Path,
    tiny: Path,
    *,
    absent: Set[str] = frozenset(),
    broken: Set[str] = frozenset(),
    blobs: Path | None = None,
) -> Path:
    """A Qwen3-VL checkpoint laid out as RankVideo's is (config.json, the index, four shards) in `directory`, less
    the files in `absent`, and those in `broken` as links to a file that is not there. With `blobs`, each file is a
    link into it, as the hub's cache stores a snapshot, and a broken one's blob is left `.incomplete`, as a cut
    download leaves it. The shards are empty: only their names are looked at."""
    contents = {
        "config.json": (tiny / "config.json").read_bytes(),
        INDEX: json.dumps(
            {"metadata": {}, "weight_map": {f"layer.{n}.weight": s for n, s in enumerate(SHARDS)}}
        ).encode(),
        **{shard: b"" for shard in SHARDS},
    }
    directory.mkdir(parents=True)
    gone = blobs if blobs is not None else directory.parent / "gone"
    gone.mkdir(exist_ok=True)
    for name, content in contents.items():
        blob = gone / hashlib.sha256(name.encode()).hexdigest()
        if name in absent:
            continue
        if name in broken:
            blob.with_suffix(".incomplete").write_bytes(content[: len(content) // 2])
            (directory / name).symlink_to(blob)
        elif blobs is not None:
            blob.write_bytes(content)
            (directory / name).symlink_to(blob)
        else:
            (directory / name).write_bytes(content)
    return directory


def hub_snapshot(cache: Path, tiny: Path, *, absent: Set[str] = frozenset(), broken: Set[str] = frozenset()) -> Path:
    """hltcoe/RankVideo's snapshot at COMMIT in the Hugging Face cache `cache`, `main` pointing at it."""
    repo = cache / "models--hltcoe--RankVideo"
    snapshot = sharded_checkpoint(repo / "snapshots" / COMMIT, tiny, absent=absent, broken=broken, blobs=repo / "blobs")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


@pytest.mark.parametrize("case", list(INCOMPLETE))
def test_a_snapshot_missing_weights_is_not_resolved_and_says_what_to_download(
    case: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    absent, broken, missing = INCOMPLETE[case]
    snapshot = hub_snapshot(tmp_path, tiny_model_dir, absent=absent, broken=broken)
    found = resolve_model_offline("hltcoe/RankVideo", cache_dir=tmp_path)
    assert (found.kind, found.directory, found.revision) == ("hub", snapshot, COMMIT)
    assert found.problem == (
        f"hltcoe/RankVideo at commit {COMMIT} in the cache is incomplete: {missing} "
        "(run `hf download hltcoe/RankVideo` again)"
    )
    at_commit = resolve_model_offline("hltcoe/RankVideo", COMMIT, tmp_path)
    assert (at_commit.problem or "").endswith(f"(run `hf download hltcoe/RankVideo --revision {COMMIT}` again)")


@pytest.mark.parametrize("case", list(INCOMPLETE))
def test_a_local_directory_missing_weights_is_refused_by_the_same_rule(
    case: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    absent, broken, missing = INCOMPLETE[case]
    directory = sharded_checkpoint(tmp_path / "model", tiny_model_dir, absent=absent, broken=broken)
    found = resolve_model_offline(str(directory))
    assert found.problem == f"{directory} is incomplete: {missing} (download or copy the model's files into it again)"
    with pytest.raises(ModelLoadError) as refused:
        check_model_available(ScorerOptions(str(directory)))
    assert str(refused.value) == found.problem


def test_a_sharded_checkpoint_with_every_shard_is_resolved(tiny_model_dir: Path, tmp_path: Path) -> None:
    """In the cache (each file a link into blobs/) and as a directory; the shards' contents are never read."""
    snapshot = hub_snapshot(tmp_path / "hub", tiny_model_dir)
    cached = resolve_model_offline("hltcoe/RankVideo", cache_dir=tmp_path / "hub")
    assert (cached.directory, cached.revision, cached.problem) == (snapshot, COMMIT, None)
    directory = sharded_checkpoint(tmp_path / "model", tiny_model_dir)
    local = resolve_model_offline(str(directory))
    assert local.resolved and local.revision is not None and local.revision.startswith("local:")


def test_a_run_refuses_an_incomplete_snapshot_before_loading(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline, or online with the hub out of reach, nothing can complete it: the same line, with no model loaded
    and no fingerprint promised. With the hub in reach, loading downloads what is missing."""
    hub_snapshot(tmp_path, tiny_model_dir, absent={SHARDS[1]})
    options = ScorerOptions("hltcoe/RankVideo", cache_dir=str(tmp_path), revision=COMMIT, device="cpu")
    line = f"hltcoe/RankVideo at commit {COMMIT} in the cache is incomplete: {SHARDS[1]} is missing"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match=f"^{line} "):
        check_model_available(options)
    with pytest.raises(ModelLoadError, match=f"^{line} "):
        load_scorer(options)
    assert predict_fingerprint(options) is None
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(loading, "_hub_reachable", lambda: False)
    with pytest.raises(ModelLoadError, match=f"^{line} .*; the hub .* cannot be reached to complete it$"):
        check_model_available(options)
    monkeypatch.setattr(loading, "_hub_reachable", lambda: True)
    check_model_available(options)


def test_doctor_fails_on_an_incomplete_snapshot_offline_in_one_line(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_snapshot(tmp_path, tiny_model_dir, absent={SHARDS[1]})
    result = invoke("doctor", "--model", "hltcoe/RankVideo", "--cache-dir", tmp_path)
    assert result.exit_code == 1
    line = (
        f"hltcoe/RankVideo at commit {COMMIT} in the cache is incomplete: {SHARDS[1]} is missing "
        "(run `hf download hltcoe/RankVideo` again)"
    )
    assert any(printed.endswith(line) for printed in (result.stdout + result.stderr).splitlines())
