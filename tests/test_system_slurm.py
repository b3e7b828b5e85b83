"""The shipped SLURM scripts on a real SLURM: a one-node cluster on this machine (tests/slurm/start_cluster.sh)
runs the package's templates as `rankvideo slurm TEMPLATE` prints them, filled in for this cluster (partition,
account, time, and an environment-setup line activating this venv). The `array` script reranks the sample with
the fake scorer in 3 shards, then the `merge` script runs once they succeed, neither given the submitting
shell's environment (SBATCH_EXPORT=NONE: the setup line alone finds rankvideo). The merged run must be
byte-identical to a single-process `rankvideo rerank` of the same inputs. The other tests stop one task the way
SLURM warns of a time limit (SIGTERM to the batch shell), which must requeue itself and resume while the merge
waits for it, re-run chosen shards by hand (`RANKVIDEO_SHARDS=3 sbatch --array=0,2`; without it such a gappy
array is refused), feed the GPU array from a CPU `sample` array's frame cache, run the whole-node `node` script
(printed with `--account none`), and submit a script whose setup line was never filled in, which must stop before
it runs anything.

Needs Debian's slurm-wlm and munge, and root (the cluster's daemons are started here). Without them the tests
skip, unless RANKVIDEO_REQUIRE_SLURM=1 (CI sets it), when they fail instead. The cluster is left running:
starting it again is a no-op, and it can be inspected after a failure (tests/slurm/stop_cluster.sh stops it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import NoReturn

import pytest

from rankvideo_cli.pipeline.shards import shard_of

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_runs"
START_CLUSTER = ROOT / "tests" / "slurm" / "start_cluster.sh"
SLURM_TOOLS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo", "slurmctld", "slurmd", "munged")
JOB_TIMEOUT_S = 300.0
# The test cluster's answers to the templates' placeholders (its one partition; no account is enforced here).
CLUSTER = ["--partition", "debug", "--account", "rankvideo-test", "--time", "00:15:00"]
# Limits that fit any small CI machine (the templates ask for a GPU node), given to sbatch as a user overrides
# the #SBATCH lines; memory is not enforced on this cgroup-less cluster, it only decides how many tasks run at once.
SMALL_JOB = ["--gres=none", "--cpus-per-task=1", "--mem=1G"]
SHARDS = 3
# The model is not the subject here (the scripts, the scheduler, requeues and the store are): the fake scorer
# scores in no time, with the store keys and the byte-identical run a real model gives.
FAKE = "fake-scorer"


def slurm_required() -> bool:
    return os.environ.get("RANKVIDEO_REQUIRE_SLURM", "") not in ("", "0")


def find_tool(name: str) -> str | None:
    # The daemons live in /usr/sbin, which a non-login root shell may not have on PATH.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin")


def cannot_run_here(reason: str) -> NoReturn:
    if slurm_required():
        pytest.fail(f"{reason} (RANKVIDEO_REQUIRE_SLURM is set, so this is a failure, not a skip)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def slurm_cluster() -> None:
    """A running one-node cluster (started if needed, left running)."""
    missing = [tool for tool in SLURM_TOOLS if find_tool(tool) is None]
    if missing:
        cannot_run_here(f"SLURM is not installed ({', '.join(missing)} not found): apt-get install slurm-wlm munge")
    if os.geteuid() != 0:
        cannot_run_here("starting the test SLURM cluster needs root (it writes /etc/slurm and starts daemons)")
    started = subprocess.run([str(START_CLUSTER)], capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, f"{START_CLUSTER} failed:\n{started.stdout}{started.stderr}"


def job_environment() -> dict[str, str]:
    """The environment sbatch exports to the jobs: this one, with the venv's rankvideo."""
    # SLURM_*/SBATCH_* of an enclosing job (pytest run inside an allocation) would leak into the jobs and
    # override options; drop them.
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("SLURM_", "SBATCH_"))}
    executable = Path(sys.executable).parent / "rankvideo"  # not resolved: the venv's bin, not the base python's
    environ["RANKVIDEO"] = str(executable) if executable.exists() else f"{sys.executable} -m rankvideo_cli.cli"
    return environ


# What a user's environment-setup line does: make this venv's rankvideo the one on PATH. A job that is given no
# environment (SBATCH_EXPORT=NONE) starts from a login shell's, where no rankvideo is found without it.
VENV_BIN = Path(sys.executable).parent  # not resolved, as above
SETUP = f"source {VENV_BIN / 'activate'}" if (VENV_BIN / "activate").exists() else f'export PATH="{VENV_BIN}:$PATH"'


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each shipped template as `rankvideo slurm TEMPLATE` prints it for this cluster, by template name."""
    directory = tmp_path_factory.mktemp("sbatch")
    rankvideo = job_environment()["RANKVIDEO"].split()
    printed = {}
    for name in ("array", "merge", "sample", "node"):
        path = directory / f"{name}.sbatch"
        # The node script as for a cluster without accounts (this one enforces none): it has no account line.
        cluster = [*CLUSTER[:2], "--account", "none", *CLUSTER[4:]] if name == "node" else CLUSTER
        command = [*rankvideo, "slurm", name, *cluster, "--setup", SETUP, "-o", str(path)]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert completed.returncode == 0, completed.stderr
        notes = completed.stderr.splitlines()
        if name == "node":  # it decodes for 8 GPUs by default: one line says few nodes can give that
            assert len(notes) == 1 and "which most nodes cannot give" in notes[0], notes
        else:  # every placeholder filled: nothing left to edit
            assert notes == [], notes
        printed[name] = path
    return printed


def link_videos(directory: Path) -> None:
    """`directory/videos` -> the sample's videos, given to rankvideo as the relative `--videos videos`.

    A video's shard is a hash of its path as rankvideo names it; relative to the job's working directory the
    split is the same wherever the repository is checked out (an absolute path would move videos between
    shards from one checkout to another, and a shard could end up with no video and no store file).
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "videos").symlink_to(SAMPLE / "videos", target_is_directory=True)


def inputs() -> list[str]:
    return [str(SAMPLE / "first_stage.trec"), str(SAMPLE / "queries.tsv")]


def score_records(path: Path) -> list[dict]:
    records = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record.get("kind") == "score":
            records.append(record)
    return records


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[dict]]:
    """A single-process `rankvideo rerank` of the sample: its run file and its score records."""
    directory = tmp_path_factory.mktemp("single-process")
    link_videos(directory)
    environ = job_environment()
    command = [*environ["RANKVIDEO"].split(), "rerank", *inputs(), "--videos", "videos", "--model", FAKE]
    command += ["--output", "reference.trec", "--cache", "store"]
    completed = subprocess.run(command, cwd=directory, env=environ, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr
    records = score_records(directory / "store" / "scores.jsonl")
    assert len(records) == 36  # 4 queries x 9 candidates with a video (one docid has no file)
    # The store-file checks need every shard to own a video; a changed sample should say so plainly.
    owners = {shard_of(record["video"], SHARDS) for record in records}
    assert owners == set(range(SHARDS)), f"with this sample only shards {sorted(owners)} own a video"
    return (directory / "reference.trec").read_bytes(), records


def sbatch(
    arguments: list[str],
    directory: Path,
    extra_environment: dict[str, str] | None = None,
    export_environment: bool = True,
) -> str:
    """Submit; without `export_environment` the job gets none of this one (SBATCH_EXPORT=NONE), not RANKVIDEO."""
    environ = {**job_environment(), **(extra_environment or {})}
    if not export_environment:
        environ = {key: value for key, value in environ.items() if not key.startswith("RANKVIDEO")}
        environ["SBATCH_EXPORT"] = "NONE"
    completed = subprocess.run(
        ["sbatch", "--parsable", f"--chdir={directory}", *arguments],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, f"sbatch {' '.join(arguments)}:\n{completed.stderr}"
    return completed.stdout.strip().split(";")[0]  # "JOBID" or "JOBID;CLUSTER"


def submit_array(
    scripts: dict[str, Path],
    directory: Path,
    array: str,
    extra_environment: dict[str, str] | None = None,
    extra_options: list[str] | None = None,
    after: str | None = None,
    model: str = FAKE,
    export_environment: bool = True,
) -> str:
    """The array script over the sample (tasks `array`, store `directory/store`): the array job id."""
    rerank_options = ["--videos", "videos", "--model", model, *(extra_options or [])]
    arguments = [f"--array={array}", *SMALL_JOB, f"--output={directory}/rerank-%A_%a.log", str(scripts["array"])]
    if after is not None:
        arguments.insert(0, f"--dependency=afterok:{after}")
    submitted = [*arguments, *inputs(), "store", *rerank_options]
    return sbatch(submitted, directory, extra_environment, export_environment)


def submit_merge(scripts: dict[str, Path], directory: Path, after: list[str], export_environment: bool = True) -> str:
    """The merge script of `directory/store` into `directory/merged.trec`, once the jobs `after` succeeded."""
    dependency = "afterok:" + ":".join(after)
    arguments = [f"--dependency={dependency}", "--kill-on-invalid-dep=yes", *SMALL_JOB]
    arguments += [f"--output={directory}/merge-%j.log", str(scripts["merge"])]
    return sbatch([*arguments, *inputs(), "store", "merged.trec"], directory, None, export_environment)


def show_jobs(job_id: str) -> list[dict[str, str]]:
    """`scontrol show job` of a job (every task of an array job), one dict of fields per job."""
    completed = subprocess.run(
        ["scontrol", "--oneliner", "show", "job", job_id], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    # Values with spaces (none in the fields read here) would be cut; `--oneliner` keeps one job per line.
    return [dict(field.partition("=")[::2] for field in line.split()) for line in completed.stdout.splitlines()]


def logs(directory: Path) -> str:
    paths = sorted(directory.glob("*.log"))
    return "".join(f"==> {path.name} <==\n{path.read_text(errors='replace')}" for path in paths)


def wait_for(job_ids: list[str], directory: Path, timeout_s: float = JOB_TIMEOUT_S) -> None:
    """Until none of the jobs is pending or running (accounting is off: squeue, not sacct)."""
    deadline = time.monotonic() + timeout_s
    while True:
        listed = subprocess.run(
            ["squeue", "--noheader", f"--jobs={','.join(job_ids)}", "--format=%i %T %r"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        if not listed.stdout.strip():
            return
        if time.monotonic() > deadline:
            subprocess.run(["scancel", *job_ids], timeout=60)
            pytest.fail(f"jobs not done after {timeout_s:.0f}s (cancelled):\n{listed.stdout}\n{logs(directory)}")
        time.sleep(1.0)


def assert_completed(job_id: str, directory: Path) -> list[dict[str, str]]:
    jobs = show_jobs(job_id)
    for job in jobs:
        assert (job["JobState"], job["ExitCode"]) == ("COMPLETED", "0:0"), f"{job}\n{logs(directory)}"
    return jobs


def assert_merged_equals_reference(directory: Path, reference: tuple[bytes, list[dict]]) -> None:
    expected_run, expected_records = reference
    merged = directory / "merged.trec"
    assert merged.exists(), logs(directory)
    assert merged.read_bytes() == expected_run
    assert (directory / "merged.trec.manifest.json").exists()

    store = directory / "store"
    names = sorted(path.name for path in store.glob("scores*.jsonl"))
    assert names == [f"scores.shard-{index:04d}-of-{SHARDS:04d}.jsonl" for index in range(SHARDS)]
    pairs: list[tuple[str, str]] = []
    for index, name in enumerate(names):
        records = score_records(store / name)
        assert records, f"shard {index} stored no score"
        # Each shard scored only its own videos.
        assert {shard_of(record["video"], SHARDS) for record in records} == {index}
        pairs += [(record["qid"], record["docid"]) for record in records]
    assert [pair for pair, count in Counter(pairs).items() if count > 1] == [], "a pair was scored twice"
    assert sorted(pairs) == sorted((record["qid"], record["docid"]) for record in expected_records)

    for path in directory.glob("*.log"):
        assert "Traceback" not in path.read_text(errors="replace"), logs(directory)


def test_array_job_then_merge_equals_a_single_process_run_with_no_environment_exported(
    slurm_cluster: None, scripts: dict[str, Path], reference: tuple[bytes, list[dict]], tmp_path: Path
) -> None:
    link_videos(tmp_path)
    array_id = submit_array(scripts, tmp_path, f"0-{SHARDS - 1}", export_environment=False)
    merge_id = submit_merge(scripts, tmp_path, [array_id], export_environment=False)
    wait_for([array_id, merge_id], tmp_path)

    tasks = assert_completed(array_id, tmp_path)
    assert sorted(int(task["ArrayTaskId"]) for task in tasks) == list(range(SHARDS))
    assert_completed(merge_id, tmp_path)
    for index in range(SHARDS):
        log = (tmp_path / f"rerank-{array_id}_{index}.log").read_text()
        assert f"rankvideo-array: task {index} of {SHARDS}" in log
        assert f"rankvideo: shard {index}/{SHARDS}:" in log
    assert_merged_equals_reference(tmp_path, reference)


def test_a_task_warned_of_its_time_limit_requeues_itself_and_the_merge_waits_for_it(
    slurm_cluster: None, scripts: dict[str, Path], reference: tuple[bytes, list[dict]], tmp_path: Path
) -> None:
    link_videos(tmp_path)
    # slow enough (a dozen pairs a task, 0.4 s each) to be signalled while it scores
    array_id = submit_array(scripts, tmp_path, f"0-{SHARDS - 1}", model=f"{FAKE}:seconds=0.4")
    merge_id = submit_merge(scripts, tmp_path, [array_id])
    task_log = tmp_path / f"rerank-{array_id}_0.log"
    deadline = time.monotonic() + JOB_TIMEOUT_S
    # Signal once rankvideo is scoring: its handler is set, and SLURM has long finished launching the task (a
    # task still launching answers scancel "try again later", and scancel's retries can hit the requeued task).
    while not (task_log.exists() and " to score over " in task_log.read_text()):
        assert time.monotonic() < deadline, f"task 0 never started scoring:\n{logs(tmp_path)}"
        time.sleep(0.1)
    # `--batch` signals the batch shell alone, as `--signal=B:TERM@300` does before a time limit.
    subprocess.run(["scancel", "--batch", "--signal=TERM", f"{array_id}_0"], check=True, timeout=60)
    wait_for([array_id, merge_id], tmp_path)

    tasks = {task["ArrayTaskId"]: task for task in assert_completed(array_id, tmp_path)}
    assert tasks["0"]["Restarts"] == "1", tasks["0"]
    assert {tasks[str(index)]["Restarts"] for index in range(1, SHARDS)} == {"0"}
    assert_completed(merge_id, tmp_path)
    log = task_log.read_text()
    assert "rankvideo-array: interrupted; requeueing task 0 to resume" in log, log
    assert f"rankvideo-array: task 0 of {SHARDS} (job {tasks['0']['JobId']}, restart 1)" in log, log
    assert_merged_equals_reference(tmp_path, reference)


def test_shards_rerun_by_hand_need_rankvideo_shards_and_complete_the_store(
    slurm_cluster: None, scripts: dict[str, Path], reference: tuple[bytes, list[dict]], tmp_path: Path
) -> None:
    link_videos(tmp_path)
    # SLURM gives `--array=0,2` a task count of 2: without the shard count, the tasks refuse to start.
    gappy = submit_array(scripts, tmp_path, "0,2")
    wait_for([gappy], tmp_path)
    for task in show_jobs(gappy):
        assert (task["JobState"], task["ExitCode"]) == ("FAILED", "2:0"), task
        assert "the array has gaps" in (tmp_path / f"rerank-{gappy}_{task['ArrayTaskId']}.log").read_text()
    assert not (tmp_path / "store").exists()

    shards = {"RANKVIDEO_SHARDS": str(SHARDS)}
    first = submit_array(scripts, tmp_path, "0,2", shards)
    second = submit_array(scripts, tmp_path, "1", shards)
    merge_id = submit_merge(scripts, tmp_path, [first, second])
    wait_for([first, second, merge_id], tmp_path)

    assert sorted(task["ArrayTaskId"] for task in assert_completed(first, tmp_path)) == ["0", "2"]
    assert [task["ArrayTaskId"] for task in assert_completed(second, tmp_path)] == ["1"]
    assert_completed(merge_id, tmp_path)
    assert f"rankvideo-array: task 2 of {SHARDS}" in (tmp_path / f"rerank-{first}_2.log").read_text()
    assert_merged_equals_reference(tmp_path, reference)


def test_a_cpu_sample_array_feeds_the_gpu_array_through_the_frame_cache(
    slurm_cluster: None, scripts: dict[str, Path], reference: tuple[bytes, list[dict]], tmp_path: Path
) -> None:
    link_videos(tmp_path)
    arguments = ["--array=0-3", *SMALL_JOB, f"--output={tmp_path}/sample-%A_%a.log", str(scripts["sample"])]
    sampled = sbatch([*arguments, str(SAMPLE / "first_stage.trec"), "frames", "--videos", "videos"], tmp_path)
    cached = ["--frames-cache", "frames"]
    array_id = submit_array(scripts, tmp_path, f"0-{SHARDS - 1}", extra_options=cached, after=sampled)
    merge_id = submit_merge(scripts, tmp_path, [array_id])
    wait_for([sampled, array_id, merge_id], tmp_path)

    assert len(assert_completed(sampled, tmp_path)) == 4
    assert_completed(array_id, tmp_path)
    assert_completed(merge_id, tmp_path)
    assert len(list((tmp_path / "frames").rglob("*.rvf"))) == 12  # every video, once, by the 4 sample tasks
    sample_logs = "".join(path.read_text() for path in tmp_path.glob("sample-*.log"))
    assert "rankvideo-sample: task 3 of 4" in sample_logs and "Traceback" not in sample_logs
    rerank_logs = "".join(path.read_text() for path in tmp_path.glob("rerank-*.log"))
    from_cache = [int(count) for count in re.findall(r"(\d+) of them from the frame cache", rerank_logs)]
    assert len(from_cache) == SHARDS and sum(from_cache) == 12, rerank_logs
    assert_merged_equals_reference(tmp_path, reference)


def test_a_whole_node_job_scores_on_every_device_and_writes_the_run(
    slurm_cluster: None, scripts: dict[str, Path], reference: tuple[bytes, list[dict]], tmp_path: Path
) -> None:
    """The node script: one task, one worker per device (two CPU workers stand in for the GPUs), printed with
    `--account none` as for a cluster without accounts."""
    assert "#SBATCH --account" not in scripts["node"].read_text()
    link_videos(tmp_path)
    arguments = [*SMALL_JOB, "--cpus-per-task=2", f"--output={tmp_path}/node-%j.log", str(scripts["node"])]
    options = ["--videos", "videos", "--model", FAKE]
    job_id = sbatch([*arguments, *inputs(), "node.trec", *options], tmp_path, {"RANKVIDEO_DEVICES": "cpu,cpu"})
    wait_for([job_id], tmp_path)
    assert_completed(job_id, tmp_path)
    expected_run, expected_records = reference
    assert (tmp_path / "node.trec").read_bytes() == expected_run, logs(tmp_path)
    log = logs(tmp_path)
    assert "rankvideo-node: devices cpu,cpu" in log
    assert "rankvideo: worker 1 (shard 1/2 on cpu, 1 decode thread)" in log
    assert "Traceback" not in log
    store = tmp_path / "node.trec.scores"
    pairs = [(r["qid"], r["docid"]) for path in store.glob("scores*.jsonl") for r in score_records(path)]
    assert sorted(pairs) == sorted((record["qid"], record["docid"]) for record in expected_records)


def test_a_script_whose_setup_line_was_never_filled_in_stops_before_running_anything(
    slurm_cluster: None, tmp_path: Path
) -> None:
    """Placeholders left in a printed template fail loudly: sbatch refuses `<partition>` (a user may also give it
    on the command line, which overrides it), and the unfilled setup line ends the task before it runs anything.
    (An unfilled `<time>` is refused even with --time on the command line: sbatch checks every #SBATCH line.)"""
    script = tmp_path / "array.sbatch"
    rankvideo = job_environment()["RANKVIDEO"].split()
    printed = subprocess.run(
        [*rankvideo, "slurm", "array", "--time", "00:05:00", "-o", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert printed.returncode == 0, printed.stderr
    assert "edit the lines marked EDIT before submitting: partition, account, environment setup" in printed.stderr

    submit = ["sbatch", "--parsable", f"--chdir={tmp_path}", "--array=0", *SMALL_JOB]
    submit += [f"--output={tmp_path}/unfilled-%A_%a.log", str(script), "run", "queries", "store"]
    refused = subprocess.run(submit, env=job_environment(), capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "invalid partition specified: <partition>" in refused.stderr

    job_id = sbatch(["--partition=debug", *submit[3:]], tmp_path)
    wait_for([job_id], tmp_path)
    [task] = show_jobs(job_id)
    assert (task["JobState"], task["ExitCode"]) == ("FAILED", "2:0"), task
    log = logs(tmp_path)
    assert "rankvideo-array: fill in the environment-setup line marked EDIT" in log
    assert "rankvideo-array: task" not in log  # it stopped before the script's first step
