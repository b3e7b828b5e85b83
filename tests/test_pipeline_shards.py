"""--shard parsing (explicit and from SLURM array variables) and the stable split of videos over shards."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter

import pytest

from rankvideo_cli.errors import UsageError
from rankvideo_cli.pipeline.shards import Shard, parse_shard, shard_of


def test_no_spec_means_no_sharding():
    assert parse_shard(None) is None


@pytest.mark.parametrize(("spec", "index", "count"), [("0/1", 0, 1), ("3/8", 3, 8), (" 7 / 8 ", 7, 8)])
def test_explicit_spec(spec, index, count):
    assert parse_shard(spec) == Shard(index, count)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("8/8", "index must be in 0..7"),
        ("1/0", "count must be at least 1"),
        ("3", "expected I/N"),
        ("a/b", "expected I/N"),
        ("-1/4", "expected I/N"),
        ("1/2/3", "expected I/N"),
    ],
)
def test_bad_spec_is_a_one_line_usage_error(spec, problem):
    with pytest.raises(UsageError, match=problem) as caught:
        parse_shard(spec)
    assert "\n" not in str(caught.value)


def test_auto_outside_slurm_means_no_sharding():
    assert parse_shard("auto", environ={}) is None


def test_auto_in_a_non_array_job_is_an_error():
    with pytest.raises(UsageError, match="not an array job"):
        parse_shard("auto", environ={"SLURM_JOB_ID": "12"})


def array(task: str, count: str | None = None, low: str | None = None, step: str | None = None) -> dict:
    """The variables SLURM sets in an array task."""
    values = {"TASK_ID": task, "TASK_COUNT": count, "TASK_MIN": low, "TASK_STEP": step}
    return {f"SLURM_ARRAY_{name}": value for name, value in values.items() if value is not None}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (array("0", "4", "0"), Shard(0, 4)),
        (array("3", "4", "0"), Shard(3, 4)),
        (array("8", "8", "1"), Shard(7, 8)),  # --array=1-8: tasks numbered from 1
        (array("6", "8", "0", "2"), Shard(3, 8)),  # --array=0-14:2
    ],
)
def test_auto_from_slurm_array_variables(environ, expected):
    assert parse_shard("AUTO", environ=environ) == expected


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        (array("x", "4"), "is not an integer"),
        (array("2"), "SLURM_ARRAY_TASK_COUNT is unset"),
        (array("5", "3", "1"), "maps to shard"),  # --array=1,3,5: task 5 would be shard 4 of 3
        (array("3", "4", "0", "2"), "not on the array's step"),
    ],
)
def test_auto_with_unusable_array_variables(environ, problem):
    with pytest.raises(UsageError, match=problem):
        parse_shard("auto", environ=environ)


def test_shard_of_is_sha256_based_not_python_hash():
    key = "/data/videos/000012/1134.mp4"
    expected = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % 7
    assert shard_of(key, 7) == expected


def test_split_is_identical_across_processes_with_different_hash_seeds():
    keys = [f"/videos/{index:06d}.mp4" for index in range(200)]
    program = (
        "import sys, json; from rankvideo_cli.pipeline.shards import shard_of; "
        "print(json.dumps([shard_of(k, 5) for k in json.loads(sys.argv[1])]))"
    )
    outputs = set()
    for seed in ("1", "2", "random"):
        completed = subprocess.run(
            [sys.executable, "-c", program, json.dumps(keys)],
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.add(completed.stdout)
    assert len(outputs) == 1
    assert outputs.pop().strip() == json.dumps([shard_of(key, 5) for key in keys])


def test_every_video_has_exactly_one_owner_and_shards_are_balanced():
    keys = [f"/videos/{index // 100 + 1:06d}/{index}.mp4" for index in range(4000)]
    shards = [Shard(index, 8) for index in range(8)]
    owners = Counter()
    for key in keys:
        owning = [shard for shard in shards if shard.owns(key)]
        assert len(owning) == 1
        owners[owning[0].index] += 1
    assert set(owners) == set(range(8))
    # 500 expected per shard; a hash split stays well within +-20% at this size
    assert all(400 <= count <= 600 for count in owners.values()), owners


def test_labels_sort_in_index_order_and_name_the_count():
    labels = [Shard(index, 12).label for index in range(12)]
    assert labels == sorted(labels)
    assert labels[3] == "shard-0003-of-0012"
    assert str(Shard(3, 12)) == "3/12"


def test_auto_refuses_an_array_with_gaps_unless_the_shard_count_is_given():
    gappy = {**array("2", "2", "0"), "SLURM_ARRAY_TASK_MAX": "2"}  # --array=0,2
    with pytest.raises(UsageError, match=r"the array has gaps .*RANKVIDEO_SHARDS"):
        parse_shard("auto", environ=gappy)
    assert parse_shard("auto", environ={**gappy, "RANKVIDEO_SHARDS": "3"}) == Shard(2, 3)
    contiguous = {**array("6", "8", "0", "2"), "SLURM_ARRAY_TASK_MAX": "14"}  # --array=0-14:2
    assert parse_shard("auto", environ=contiguous) == Shard(3, 8)
    with pytest.raises(UsageError, match="not an array job"):
        parse_shard("auto", environ={"RANKVIDEO_SHARDS": "3", "SLURM_JOB_ID": "7"})
    with pytest.raises(UsageError, match=r"out of range|must be in"):
        parse_shard("auto", environ={**gappy, "RANKVIDEO_SHARDS": "2"})
