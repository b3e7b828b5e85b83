"""Model loading: hub ids, local directories and tiny-random; every failure is a one-line ModelLoadError."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from rankvideo_cli.errors import ModelLoadError, UsageError
from rankvideo_cli.scoring import loading
from rankvideo_cli.scoring.deferred import DeferredScorer
from rankvideo_cli.scoring.loading import (
    load_model,
    load_scorer,
    local_revision,
    predict_fingerprint,
    resolve_attn_implementation,
    resolve_device,
    resolve_dtype,
)
from rankvideo_cli.scoring.options import ScorerOptions
from rankvideo_cli.scoring.tiny import TINY_WARNING

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as error:
        load_model(ScorerOptions(str(tmp_path / "nowhere"), device="cpu"))
    message = _one_line(error)
    assert "does not exist" in message and "hub id" in message


def test_directory_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as error:
        load_model(ScorerOptions(str(tmp_path), device="cpu"))
    assert "has no config.json" in _one_line(error)


def test_directory_with_another_architecture(tmp_path: Path) -> None:
    config = {"model_type": "bert", "architectures": ["BertForMaskedLM"], "hidden_size": 8}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError) as error:
        load_model(ScorerOptions(str(tmp_path), device="cpu"))
    message = _one_line(error)
    assert "'bert' model (BertForMaskedLM), not Qwen3-VL" in message
    assert "Qwen3VLForConditionalGeneration" in message


def test_qwen3vl_directory_without_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    shutil.copy(tiny_model_dir / "config.json", tmp_path / "config.json")
    with pytest.raises(ModelLoadError) as error:
        load_model(ScorerOptions(str(tmp_path), device="cpu"))
    assert f"{tmp_path} is incomplete: neither model.safetensors nor model.safetensors.index.json" in _one_line(error)


def test_hub_id_offline_with_an_empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as error:
        load_model(ScorerOptions("hltcoe/RankVideo", cache_dir=tmp_path, device="cpu"))
    message = _one_line(error)
    assert "'hltcoe/RankVideo' is not in the Hugging Face cache" in message
    assert str(tmp_path) in message and "HF_HUB_OFFLINE=1" in message
    assert "local directory" in message


def _fake_hub_cache(cache: Path, source: Path, repo: str = "org--tiny") -> Path:
    """A Hugging Face cache holding `source` as the snapshot `COMMIT` of `org/tiny`, `main` pointing at it."""
    snapshot = cache / f"models--{repo}" / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for file in source.iterdir():
        (snapshot / file.name).symlink_to(file)
    (cache / f"models--{repo}" / "refs").mkdir()
    (cache / f"models--{repo}" / "refs" / "main").write_text(COMMIT)
    return snapshot


def test_hub_id_from_the_cache_offline(tmp_path: Path, tiny_model_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = _fake_hub_cache(tmp_path, tiny_model_dir)
    loaded = load_model(ScorerOptions("org/tiny", cache_dir=tmp_path, device="cpu"))
    assert loaded.model_id == "org/tiny"
    assert loaded.revision == COMMIT  # resolved from the snapshot that was loaded
    assert loaded.dtype == torch.float32 and loaded.device == torch.device("cpu")
    assert loaded.attn_implementation == "sdpa"
    assert not loaded.is_tiny
    # a revision that is not cached is an error, not a download
    with pytest.raises(ModelLoadError) as error:
        load_model(ScorerOptions("org/tiny", cache_dir=tmp_path, revision="v2", device="cpu"))
    assert "'org/tiny@v2' is not in the Hugging Face cache" in _one_line(error)
    # the snapshot directory itself, passed as a local path, keeps its commit as the revision
    assert local_revision(snapshot) == COMMIT


def test_local_directory_identity(tiny_model_dir: Path, tmp_path: Path) -> None:
    revision = local_revision(tiny_model_dir)
    assert revision.startswith("local:") and len(revision) == len("local:") + 16
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    assert local_revision(copy) == revision  # same config and weight files, wherever they are
    config = json.loads((copy / "config.json").read_text())
    config["text_config"]["rms_norm_eps"] = 1e-5
    (copy / "config.json").write_text(json.dumps(config))
    assert local_revision(copy) != revision


def test_local_directory_loads(tiny_model_dir: Path) -> None:
    scorer = load_scorer(ScorerOptions(str(tiny_model_dir), device="cpu", batch_size=3))
    fingerprint = scorer.fingerprint()
    assert fingerprint["model"] == str(tiny_model_dir.resolve())
    assert fingerprint["revision"] == local_revision(tiny_model_dir)
    assert scorer.batch_size == 3


def test_tiny_random_warns_loudly(tiny_model_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    loaded = load_model(ScorerOptions("tiny-random", device="cpu"))
    captured = capfd.readouterr()
    banner = captured.err.splitlines()
    assert len(banner) == 2 and all(len(line) <= 80 and line.startswith("!! ") for line in banner)  # 80 columns
    assert " ".join(line.strip("! ") for line in banner) == TINY_WARNING and "MEANINGLESS" in captured.err
    assert captured.out == ""
    assert loaded.is_tiny and loaded.model_id == "tiny-random"
    assert loaded.model.training is False


def test_revision_applies_to_hub_ids_only(tiny_model_dir: Path) -> None:
    with pytest.raises(UsageError, match="hub ids only"):
        load_model(ScorerOptions(str(tiny_model_dir), revision="main", device="cpu"))
    with pytest.raises(UsageError, match="hub ids only"):
        load_model(ScorerOptions("tiny-random", revision="main", device="cpu"))


def test_device_dtype_and_attention_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = resolve_device("cpu")
    assert resolve_dtype(None, cpu) == torch.float32
    assert resolve_dtype("bf16", cpu) == torch.bfloat16
    assert resolve_dtype("float16", cpu) == torch.float16
    assert resolve_attn_implementation(None, cpu, torch.float32) == "sdpa"
    assert resolve_attn_implementation("eager", cpu, torch.float32) == "eager"
    with pytest.raises(UsageError, match="unknown dtype"):
        resolve_dtype("int8", cpu)
    with pytest.raises(UsageError, match="unknown device"):
        resolve_device("tpu:banana")
    with pytest.raises(UsageError, match="unknown attention implementation"):
        resolve_attn_implementation("fast", cpu, torch.float32)
    with pytest.raises(UsageError, match="flash_attention_2"):
        resolve_attn_implementation("flash_attention_2", cpu, torch.bfloat16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(None) == cpu
    with pytest.raises(UsageError, match="no CUDA device"):
        resolve_device("cuda")


def test_relative_looking_hub_id_mentions_the_missing_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError) as error:
        load_model(ScorerOptions("models/rankvideo", cache_dir=tmp_path / "hub", device="cpu"))
    assert "there is no 'models/rankvideo'" in _one_line(error)


def test_weights_go_straight_to_the_gpu_only_when_accelerate_is_installed(monkeypatch) -> None:
    from rankvideo_cli.scoring import loading

    real_find_spec = loading.importlib.util.find_spec
    installed = {"accelerate": False}

    def find_spec(name: str, *args):
        if name == "accelerate":
            return object() if installed["accelerate"] else None
        return real_find_spec(name, *args)

    monkeypatch.setattr(loading.importlib.util, "find_spec", find_spec)
    assert loading._device_map(torch.device("cpu")) is None
    assert loading._device_map(torch.device("cuda", 0)) is None  # load on the CPU, then move
    installed["accelerate"] = True
    assert loading._device_map(torch.device("cuda", 0)) == "cuda:0"
    assert loading._device_map(torch.device("cpu")) is None


@pytest.mark.parametrize("kind", ["tiny-random", "local directory", "hub id offline", "hub id at a commit"])
def test_the_fingerprint_read_before_loading_is_the_loaded_scorers(
    kind: str, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rerun answered from the store loads no weights (`DeferredScorer`): only safe if the fingerprint it finds
    its scores under is exactly the one the loaded model would write."""

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    options = {"tiny-random": ScorerOptions(model="tiny-random", device="cpu")}
    if kind == "local directory":
        shutil.copytree(tiny_model_dir, tmp_path / "model")
        options[kind] = ScorerOptions(model=str(tmp_path / "model"), device="cpu", dtype="bfloat16")
    elif kind.startswith("hub id"):
        _fake_hub_cache(tmp_path, tiny_model_dir)
        if kind == "hub id offline":
            monkeypatch.setenv("HF_HUB_OFFLINE", "1")
            options[kind] = ScorerOptions(model="org/tiny", cache_dir=str(tmp_path), device="cpu")
        else:
            options[kind] = ScorerOptions(model="org/tiny", cache_dir=str(tmp_path), device="cpu", revision=COMMIT)
    chosen = options[kind]
    predicted = predict_fingerprint(chosen)
    assert predicted is not None
    loading._PROCESSORS.clear()  # the load parses its own processor, as a load after an eviction would
    deferred = DeferredScorer(chosen)
    assert deferred.fingerprint() == predicted and not deferred.loaded
    assert deferred.describe()["batch_size"].startswith("not loaded")
    assert deferred.scorer().fingerprint() == predicted and deferred.loaded


def test_a_hub_id_that_could_update_online_is_not_predicted(tiny_model_dir: Path, tmp_path: Path, monkeypatch) -> None:

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    _fake_hub_cache(tmp_path, tiny_model_dir)
    assert predict_fingerprint(ScorerOptions(model="org/tiny", cache_dir=str(tmp_path), device="cpu")) is None


def test_a_loaded_model_unlike_its_prediction_scores_nothing(tiny_model_dir: Path, monkeypatch) -> None:

    deferred = DeferredScorer(ScorerOptions(model="tiny-random", device="cpu"))
    deferred.fingerprint()
    deferred._predicted = {**deferred._predicted, "prompt": "another"}  # as if the template changed in between
    with pytest.raises(ModelLoadError, match="differs from the one read before loading"):
        deferred.score_video(["q"], None)  # type: ignore[arg-type]


def test_a_processor_is_parsed_once_for_the_same_files_and_again_when_they_change(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The fingerprint read before loading and the load share one processor (the tokenizer takes seconds)."""
    from rankvideo_cli.scoring.loading import load_processor

    directory = tmp_path / "model"
    shutil.copytree(tiny_model_dir, directory)
    first = load_processor(str(directory), {})
    assert load_processor(str(directory), {}) is first
    template = directory / "chat_template.jinja"
    template.write_text(template.read_text() + "\n")
    edited = load_processor(str(directory), {})
    assert edited is not first and edited.chat_template != first.chat_template


def test_a_hub_processor_is_kept_only_at_a_commit(tiny_model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """A branch (or the default) may move on the hub between two loads of a long-lived process: read it again."""
    from rankvideo_cli.scoring.loading import load_processor

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _fake_hub_cache(tmp_path, tiny_model_dir)
    at_main = {"cache_dir": tmp_path, "local_files_only": True}
    assert load_processor("org/tiny", at_main) is not load_processor("org/tiny", at_main)
    at_commit = {**at_main, "revision": COMMIT}
    assert load_processor("org/tiny", at_commit) is load_processor("org/tiny", at_commit)
