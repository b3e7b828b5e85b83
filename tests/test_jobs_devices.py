"""rankvideo_cli/jobs/devices.py: `--devices` parsed and checked, the decode threads split between the workers,
and the one case (CPU and GPU workers mixed) said not to be byte-identical. The workers themselves run in
test_cli_rerank.py."""

from __future__ import annotations

import pytest

from rankvideo_cli.errors import UsageError
from rankvideo_cli.jobs.devices import mixed_devices_warning, parse_devices, plan_workers
from rankvideo_cli.pipeline.shards import Shard


def test_devices_are_parsed_and_checked() -> None:
    assert parse_devices(None) is None
    assert parse_devices("all") == ["all"]
    assert parse_devices(" ALL ") == ["all"]
    assert parse_devices("cuda:0,cuda:3") == ["cuda:0", "cuda:3"]
    assert parse_devices("0, 1") == ["cuda:0", "cuda:1"]
    assert parse_devices("cpu,cpu") == ["cpu", "cpu"]
    for bad, said in [
        ("cuda", "name the GPU's index"),
        ("cuda:0,cuda:0", "cuda:0 is named twice"),
        ("0,cuda:0", "cuda:0 is named twice"),
        ("gpu0", "'gpu0' is not a device"),
        ("cuda:0,", "'' is not a device"),
    ]:
        with pytest.raises(UsageError, match=said):
            parse_devices(bad)


def test_decode_threads_are_split_between_the_workers() -> None:
    plans = plan_workers(["cuda:0", "cuda:1", "cuda:2"], decode_workers=16)
    assert [(plan.shard, plan.device, plan.decode_workers) for plan in plans] == [
        (Shard(0, 3), "cuda:0", 5),
        (Shard(1, 3), "cuda:1", 5),
        (Shard(2, 3), "cuda:2", 5),
    ]
    assert [plan.decode_workers for plan in plan_workers(["cpu", "cpu"], decode_workers=1)] == [1, 1]


def test_only_a_run_split_between_cpu_and_gpu_is_said_not_to_be_byte_identical() -> None:
    assert mixed_devices_warning(["cpu", "cpu"]) is None
    assert mixed_devices_warning(["cuda:0", "cuda:1"]) is None
    assert mixed_devices_warning(["cuda:0", "cpu"]) == (
        "--devices cuda:0,cpu: the CPU and the GPUs compute the scores with different arithmetic, so this run is "
        "not byte-identical to a run on one device"
    )
