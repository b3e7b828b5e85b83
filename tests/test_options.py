"""The option groups check themselves once, when made, and name the option as their reader spells it: the field
for a Python caller, the flag on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import FAKE, SAMPLE
from typer.testing import CliRunner

from rankvideo_cli.cli import app
from rankvideo_cli.jobs.request import RerankInputs, RerankJob, RerankOutputs
from rankvideo_cli.options import (
    DecodeOptions,
    Normalization,
    OptionError,
    RankingOptions,
    VideoPolicy,
    VideoSource,
    from_values,
)
from rankvideo_cli.scoring.options import ScorerOptions

VIDEOS = SAMPLE / "videos"


@pytest.mark.parametrize(
    ("make", "python", "command_line"),
    [
        (lambda: RankingOptions(depth=0), "depth must be at least 1, got 0", "--depth must be at least 1, got 0"),
        (
            lambda: RankingOptions(interpolate=1.5),
            "interpolate must be between 0 and 1, got 1.5",
            "--interpolate must be between 0 and 1, got 1.5",
        ),
        (
            lambda: RankingOptions(normalization="zscore"),
            "normalization applies to interpolate only; give interpolate ALPHA too",
            "--normalization applies to --interpolate only; give --interpolate ALPHA too",
        ),
        (
            lambda: RankingOptions(on_bad_video="skip"),
            "on_bad_video must be one of keep, drop, error, got 'skip'",
            "--on-bad-video must be one of keep, drop, error, got 'skip'",
        ),
        (
            lambda: RankingOptions(tag="a {b}"),
            "tag must be one word without spaces, got 'a {b}'",
            "--tag must be one word without spaces, got 'a {b}'",
        ),
        (
            lambda: DecodeOptions(prefetch=0),
            "prefetch must be at least 1, got 0",
            "--prefetch must be at least 1, got 0",
        ),
        (
            lambda: VideoSource(VIDEOS, video_pattern="{docid}.mkv", multivent=True),
            "video_pattern and multivent are exclusive: give one way to find the videos",
            "--video-pattern and --multivent are exclusive: give one way to find the videos",
        ),
        (
            lambda: VideoSource(VIDEOS, multivent=True, video_map=Path("map.tsv")),
            "multivent and video_map are exclusive: give one way to find the videos",
            "--multivent and --video-map are exclusive: give one way to find the videos",
        ),
        (
            lambda: VideoSource(Path("/no/such/dir")),
            "videos /no/such/dir: not a directory",
            "--videos /no/such/dir: not a directory",
        ),
    ],
)
def test_a_bad_value_is_refused_when_made_naming_the_field_or_the_flag(make, python: str, command_line: str) -> None:
    with pytest.raises(OptionError) as refused:
        make()
    assert isinstance(refused.value, ValueError)  # what a Python caller expects of a bad argument
    assert str(refused.value) == python
    assert refused.value.flag() == command_line


def test_the_command_line_prints_the_flag_and_builds_each_group_from_its_options(tmp_path: Path) -> None:
    inputs = [str(SAMPLE / "first_stage.trec"), str(SAMPLE / "queries.tsv"), "--videos", str(VIDEOS)]
    result = CliRunner().invoke(app, ["rerank", *inputs, "--video-pattern", "{docid}.mkv", "--multivent"])
    assert result.exit_code == 2
    assert result.stderr == (
        "rankvideo: --video-pattern and --multivent are exclusive: give one way to find the videos\n"
    )
    values = {"depth": 5, "on_bad_video": VideoPolicy.drop, "tag": "t", "decode_workers": 2, "unrelated": 1}
    assert from_values(RankingOptions, values) == RankingOptions(depth=5, on_bad_video="drop", tag="t")
    assert from_values(DecodeOptions, values) == DecodeOptions(decode_workers=2)


def test_policies_are_kept_as_their_enum_and_read_as_their_value() -> None:
    ranking = RankingOptions(normalization="zscore", interpolate=0.5, on_missing_video="drop")
    assert ranking.normalization is Normalization.zscore and ranking.on_missing_video is VideoPolicy.drop
    assert f"{ranking.on_missing_video}" == "drop" and ranking.on_missing_video == "drop"
    assert ranking.to_dict()["normalization"] == "zscore"


def test_a_job_travels_to_a_device_worker_and_back_unchanged(tmp_path: Path) -> None:
    job = RerankJob(
        inputs=RerankInputs(SAMPLE / "first_stage.trec", SAMPLE / "queries.tsv", measures=("nDCG@10",)),
        videos=VideoSource(VIDEOS, video_map=None),
        ranking=RankingOptions(depth=7, interpolate=0.3, normalization="none", on_bad_video="drop"),
        decode=DecodeOptions(decode_workers=3, frames_cache=tmp_path, retry_bad_videos=True),
        outputs=RerankOutputs(cache=tmp_path / "store", shard="1/2"),
        scorer=ScorerOptions(model=FAKE, device="cpu", batch_size=2),
    )
    sent = json.dumps(job.to_dict())
    assert RerankJob.from_dict(json.loads(sent)) == job
    assert job.settings()["videos"] == {
        "root": str(VIDEOS),
        "pattern": "{docid}.mp4",
        "multivent": False,
        "video_map": None,
    }
