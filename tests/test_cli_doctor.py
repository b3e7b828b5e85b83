"""`rankvideo doctor`: versions, GPUs, decoders, the model offline, writable places with free disk, SLURM's
variables and the configured defaults; exit 0 when what the given options need is there, else one line per
problem with what to do, and exit 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import FIRST_STAGE, TINY, VIDEOS, invoke, invoke_ok


def checks_of(result) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {check["check"].strip(): check for check in json.loads(result.stdout)["checks"]}


def problems_of(result) -> list[str]:  # type: ignore[no-untyped-def]
    """The one-line problems on stderr (the last line sums them up)."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[-1].startswith("rankvideo: ") and "problem" in lines[-1]
    return lines[:-1]


def test_this_machine_passes_without_a_model_and_says_what_it_found() -> None:
    checks = checks_of(invoke_ok("doctor", "--json"))
    assert checks["versions"]["status"] == "ok"
    assert checks["decoders"]["status"] == "ok"
    assert all(codec in checks["decoders"]["detail"] for codec in ("h264", "vp9", "av1", "mpeg4"))
    assert checks["model"]["status"] == "info" and "give --model" in checks["model"]["detail"]
    assert checks["rankvideo cache"]["status"] == "ok" and "GiB free" in checks["rankvideo cache"]["detail"]
    assert checks["gpus"]["status"] in ("ok", "warn")


def test_a_pipe_gets_one_tab_separated_line_per_check() -> None:
    lines = invoke_ok("doctor").stdout.splitlines()
    assert all(len(line.split("\t")) == 3 for line in lines)
    assert {line.split("\t")[1] for line in lines} >= {"versions", "gpus", "decoders", "model", "slurm", "cores"}


def test_the_tiny_model_is_found_and_flagged_as_meaningless() -> None:
    checks = checks_of(invoke_ok("doctor", "--model", TINY, "--device", "cpu", "--json"))
    assert checks["model"]["status"] == "warn" and "mean nothing" in checks["model"]["detail"]
    assert checks["device"]["detail"].startswith("cpu, float32, sdpa")


def test_a_model_directory_that_is_not_there_is_a_problem(tmp_path: Path) -> None:
    result = invoke("doctor", "--model", tmp_path / "no-model", "--json")
    (line,) = problems_of(result)
    assert line.startswith("rankvideo: model: model directory ") and "does not exist" in line
    assert json.loads(result.stdout)["ok"] is False


def test_a_hub_model_missing_from_the_offline_cache_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (line,) = problems_of(invoke("doctor", "--model", "hltcoe/RankVideo", "--cache-dir", tmp_path))
    assert "not in the Hugging Face cache" in line and "hf download hltcoe/RankVideo" in line


def test_a_device_this_machine_lacks_is_a_problem() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.xfail("this machine has a CUDA device: the refusal is for machines without one")
    (line,) = problems_of(invoke("doctor", "--model", TINY, "--device", "cuda"))
    assert line.startswith("rankvideo: device: ") and "no CUDA device" in line


def test_the_videos_codecs_are_probed(tmp_path: Path) -> None:
    checks = checks_of(invoke_ok("doctor", "--videos", VIDEOS, "--json"))
    assert checks["videos"]["status"] == "ok" and "h264" in checks["videos"]["detail"]
    broken = tmp_path / "videos"
    broken.mkdir()
    (broken / "v001.mp4").write_bytes(b"not a video")
    (line,) = problems_of(invoke("doctor", "--videos", broken))
    assert "videos: " in line and "unreadable: v001 (" in line


def test_a_place_under_a_file_is_a_problem() -> None:
    (line,) = problems_of(invoke("doctor", "--cache", FIRST_STAGE / "store"))
    assert line == (
        f"rankvideo: score store: {FIRST_STAGE / 'store'}: {FIRST_STAGE} is not a directory; choose a writable location"
    )


def test_an_installed_version_outside_the_declared_bounds_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    real_version = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "0.0.1" if name == "rich" else real_version(name))
    (line,) = problems_of(invoke("doctor"))
    assert "rich 0.0.1 (needs rich>=13)" in line and "pip install 'rich>=13'" in line


def in_array_task(monkeypatch: pytest.MonkeyPatch, task: int, tasks: range) -> None:
    """The variables SLURM gives task `task` of an array of `tasks` (job 77 of array job 70)."""
    variables = {
        "SLURM_JOB_ID": "77",
        "SLURM_ARRAY_JOB_ID": "70",
        "SLURM_ARRAY_TASK_ID": str(task),
        "SLURM_ARRAY_TASK_COUNT": str(len(tasks)),
        "SLURM_ARRAY_TASK_MIN": str(min(tasks)),
        "SLURM_ARRAY_TASK_MAX": str(max(tasks)),
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def test_an_array_task_sees_its_shard_and_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    in_array_task(monkeypatch, 2, range(4))
    result = invoke_ok("doctor", "--json")
    assert checks_of(result)["slurm"]["detail"] == "job 77: --shard auto is 2/4"
    assert json.loads(result.stdout)["environment"]["SLURM_ARRAY_TASK_ID"] == "2"


def test_a_gappy_array_without_its_shard_count_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    in_array_task(monkeypatch, 5, range(3, 6, 2))  # --array=3,5
    (line,) = problems_of(invoke("doctor"))
    assert line.startswith("rankvideo: slurm: ") and "RANKVIDEO_SHARDS" in line


def test_configured_defaults_are_listed_with_where_each_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "rankvideo.toml"
    config.write_text("multivent = true\n[rerank]\ndepth = 50\n")
    monkeypatch.setenv("RANKVIDEO_CONFIG", str(config))
    monkeypatch.setenv("RANKVIDEO_RERANK_MODEL", "fake-scorer")
    report = json.loads(invoke_ok("doctor", "--json").stdout)
    rows = {(row["command"], row["option"]): row for row in report["configured"]}
    assert rows["rerank", "depth"] == {
        "command": "rerank",
        "option": "depth",
        "value": 50,
        "from": f"{config} [rerank]",
    }
    assert rows["sample", "multivent"]["from"] == str(config)
    assert rows["rerank", "model"]["from"] == "RANKVIDEO_RERANK_MODEL"
    assert report["config_files"] == [str(config)]


def test_a_hub_model_in_the_offline_cache_is_found_at_its_commit(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_scoring_model_files import COMMIT, hub_cache_holding

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = hub_cache_holding(tmp_path / "hub", tiny_model_dir, "hltcoe/RankVideo")
    result = invoke_ok("doctor", "--model", "hltcoe/RankVideo", "--cache-dir", tmp_path / "hub", "--json")
    assert checks_of(result)["model"] == {
        "check": "model",
        "status": "ok",
        "detail": f"hltcoe/RankVideo in the cache at commit {COMMIT}",
        "fix": "",
    }
    assert json.loads(result.stdout)["model"] == {"directory": str(snapshot), "revision": COMMIT, "kind": "hub"}


def test_the_device_options_are_checked_without_a_model() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.xfail("this machine has a CUDA device: the refusal is for machines without one")
    (line,) = problems_of(invoke("doctor", "--device", "cuda"))
    assert line.startswith("rankvideo: device: ") and "no CUDA device" in line


def test_what_doctor_is_not_given_it_takes_from_reranks_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "rankvideo.toml"
    config.write_text(f'[rerank]\nmodel = "hltcoe/RankVideo"\ncache-dir = "{tmp_path / "hub"}"\n')
    monkeypatch.setenv("RANKVIDEO_CONFIG", str(config))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = invoke("doctor", "--json")
    (line,) = problems_of(result)
    assert "'hltcoe/RankVideo' is not in the Hugging Face cache" in line
    assert json.loads(result.stdout)["taken_from_rerank"] == {
        "model": f"{config} [rerank]",
        "cache_dir": f"{config} [rerank]",
    }
    assert checks_of(invoke_ok("doctor", "--model", TINY, "--json"))["model"]["status"] == "warn"  # its own wins


def test_videos_inside_tar_shards_are_probed() -> None:
    multivent = VIDEOS.parent / "multivent" / "videos"
    assert checks_of(invoke_ok("doctor", "--videos", multivent, "--json"))["videos"]["detail"] == (
        f"12 of {multivent} probed: h264 x12"
    )


def test_a_flash_attn_that_does_not_import_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "site" / "flash_attn"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('undefined symbol: _ZN3c104cuda9SetDevice')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    checks = checks_of(invoke("doctor", "--json"))
    assert checks["flash-attn"]["detail"].startswith("flash-attn is installed but does not import (ImportError:")
    assert checks["flash-attn"]["status"] in ("warn", "fail")  # fail where CUDA would pick it
    assert "reinstall flash-attn built for torch" in checks["flash-attn"]["fix"]


def test_each_cuda_device_is_described_with_its_memory_and_bfloat16(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    # a machine with an A100 and a V100 (compute capability 7.0: no bfloat16), as torch reports them
    names = ["NVIDIA A100-SXM4-80GB", "Tesla V100-SXM2-32GB"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: names[index])
    memory = [(40 * 2**30, 80 * 2**30), (20 * 2**30, 32 * 2**30)]  # (free, total) bytes
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index: memory[index])
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index: [(8, 0), (7, 0)][index])
    result = invoke_ok("doctor", "--json")
    assert json.loads(result.stdout)["gpus"] == [
        {"index": 0, "name": names[0], "free_gib": 40.0, "total_gib": 80.0, "bf16": True},
        {"index": 1, "name": names[1], "free_gib": 20.0, "total_gib": 32.0, "bf16": False},
    ]
    assert checks_of(result)["gpus"]["detail"].endswith(
        f"cuda:0 ({names[0]}, 40.0 of 80.0 GiB free); cuda:1 ({names[1]}, 20.0 of 32.0 GiB free) (no bf16)"
    )
