"""Every device of one node in one command: `rerank --devices cuda:0,cuda:1` (or `all`).

One worker process per device, each the shard I/N of a SLURM array (`--shard I/N`: the same split by video,
the same score store files and shard manifests), all writing into the one score store; the parent then
builds the run from the store exactly as `rankvideo merge` does, so the run is byte-identical to a
single-device run. Processes, not threads: each worker owns its CUDA context, its decode threads and its
store file, and a worker that dies (out of memory, a driver fault, `kill -9`) takes no other worker's scores
with it. A rerun scores only what is missing.

The parent validates everything before any worker starts, never imports torch unless a GPU has to be
counted, relays each worker's stderr prefixed with its shard and device, forwards SIGINT/SIGTERM to the
workers (which flush their stores and stop), and reports a dead worker with its device and shard.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from rankvideo_cli.errors import RankVideoError, UsageError
from rankvideo_cli.messages import plural, say
from rankvideo_cli.pipeline.shards import Shard

if TYPE_CHECKING:
    from rankvideo_cli.jobs.request import RerankJob
    from rankvideo_cli.pipeline.request import PreparedInputs
    from rankvideo_cli.pipeline.result import PipelineResult

_STDERR_TAIL = 5  # lines of a failed worker's stderr kept for the report


class WorkersStopped(RankVideoError):
    """The workers did not all finish. `manifests`: those the workers wrote (a worker killed before it loaded
    its inputs writes none); `result`: what the store holds, for the parent's manifest."""

    manifests: list[dict[str, Any]]
    result: PipelineResult | None = None


class WorkerFailed(WorkersStopped):
    """One or more workers did not finish; the others' scores are in the store (exit 1)."""

    exit_code = 1


class WorkersInterrupted(WorkersStopped):
    """SIGINT/SIGTERM stopped every worker after they flushed their stores; exit 128 + signal."""

    def __init__(self, signum: int, store_dir: Path) -> None:
        self.exit_code = 128 + signum
        super().__init__(
            f"interrupted by {signal.Signals(signum).name}: every worker stopped; all scores are saved in "
            f"{store_dir}: run the same command again to resume"
        )


ALL_DEVICES = "all"
_CUDA_DEVICE = re.compile(r"^cuda:(\d+)$")


def parse_devices(spec: str | None) -> list[str] | None:
    """`--devices`: None (one device, as `--device` says), `all` (every visible GPU, counted when the workers
    start), or a comma-separated list of `cuda:N`, bare `N` (= `cuda:N`) and `cpu` (several `cpu` workers
    run on the processor: how the tests exercise the machinery). A GPU named twice is refused: two workers
    would compete for its memory and speed nothing up."""
    if spec is None:
        return None
    text = spec.strip()
    if text.lower() == ALL_DEVICES:
        return [ALL_DEVICES]
    devices: list[str] = []
    for token in (part.strip() for part in text.split(",")):
        device = f"cuda:{token}" if token.isdigit() else token.lower()
        if device == "cuda":
            raise UsageError(f"--devices {spec}: name the GPU's index (cuda:0, cuda:1...) or use 'all'")
        if device != "cpu" and not _CUDA_DEVICE.match(device):
            raise UsageError(f"--devices {spec}: {token!r} is not a device (cpu, cuda:N, N or 'all')")
        if device != "cpu" and device in devices:
            raise UsageError(f"--devices {spec}: {device} is named twice (one worker per GPU)")
        devices.append(device)
    return devices


def expand_devices(devices: list[str]) -> list[str]:
    """`all` to every visible GPU (`cuda:0`...); each `cuda:N` checked against the visible GPUs. Imports torch
    only when a GPU is named (counting them needs it), after every other check has passed."""
    if devices == [ALL_DEVICES] or any(device.startswith("cuda") for device in devices):
        import torch

        visible = torch.cuda.device_count()
        restricted = os.environ.get("CUDA_VISIBLE_DEVICES")
        where = f" (CUDA_VISIBLE_DEVICES={restricted})" if restricted is not None else ""
        if devices == [ALL_DEVICES]:
            if visible == 0:
                raise UsageError(f"--devices all: no GPU is visible{where}")
            return [f"cuda:{index}" for index in range(visible)]
        for device in devices:
            if device.startswith("cuda") and int(device.split(":")[1]) >= visible:
                raise UsageError(f"--devices: {device} does not exist: {visible} GPUs are visible{where}")
    return list(devices)


def mixed_devices_warning(devices: list[str]) -> str | None:
    """Why a run on these devices cannot be byte-identical to a one-device run, or None: the CPU and a GPU do
    their arithmetic differently, so a run whose videos are split between them equals neither device's."""
    if "cpu" in devices and any(device != "cpu" for device in devices):
        return (
            f"--devices {','.join(devices)}: the CPU and the GPUs compute the scores with different arithmetic, so "
            "this run is not byte-identical to a run on one device"
        )
    return None


@dataclass(frozen=True)
class WorkerPlan:
    shard: Shard
    device: str
    decode_workers: int

    @property
    def name(self) -> str:
        return f"shard {self.shard} on {self.device}"


def plan_workers(devices: list[str], decode_workers: int) -> list[WorkerPlan]:
    """One worker per device, shard I of N; the decode threads split between them (at least one each)."""
    count = len(devices)
    per_worker = max(1, decode_workers // count)
    return [WorkerPlan(Shard(index, count), device, per_worker) for index, device in enumerate(devices)]


def worker_job(job: RerankJob, plan: WorkerPlan, store_dir: Path) -> RerankJob:
    """The shard run a worker does: on its device, scores into the shared store only, its manifest in the store."""
    return replace(
        job,
        inputs=replace(job.inputs, qrels=None, measures=None),
        decode=replace(job.decode, decode_workers=plan.decode_workers),
        outputs=replace(
            job.outputs,
            shard=str(plan.shard),
            devices=None,
            output=None,
            scores=None,
            manifest=None,
            dry_run=False,
            cache=store_dir.resolve(),
        ),
        scorer=job.scorer.on_device(plan.device),
    )


def _worker_environment() -> dict[str, str]:
    """The parent's environment, thread settings untouched: a CPU worker must compute with the intra-op thread
    count a one-device run would (torch's default, or OMP_NUM_THREADS), because its float32 sums are added in
    an order that can depend on it. N CPU workers thus run N times that many threads on the cores: oversubscribed,
    but the bits of a one-device run. GPU workers do their arithmetic on the GPU either way."""
    environ = dict(os.environ)
    environ["PYTHONUNBUFFERED"] = "1"
    return environ


@dataclass
class _Worker:
    plan: WorkerPlan
    process: subprocess.Popen
    tail: deque = field(default_factory=lambda: deque(maxlen=_STDERR_TAIL))
    relay: threading.Thread | None = None

    def describe_exit(self) -> str:
        code = self.process.returncode
        if code is not None and code < 0:
            return f"killed by {signal.Signals(-code).name}"
        last = next((line for line in reversed(self.tail) if line.strip()), "")
        return f"exited with code {code}" + (f": {last.strip()}" if last else "")


def _relay(worker: _Worker, console: Console, lock: threading.Lock) -> None:
    """Each line of a worker's stderr, prefixed with its shard and device, on the parent's stderr."""
    prefix = f"rankvideo [{worker.plan.name}]:"
    assert worker.process.stderr is not None
    for line in worker.process.stderr:
        text = line.rstrip("\n")
        worker.tail.append(text)
        shown = text[len("rankvideo:") :] if text.startswith("rankvideo:") else " " + text
        with lock:
            console.print(prefix + shown, markup=False, soft_wrap=True, highlight=False)


def _start(spec: dict[str, Any]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "rankvideo_cli.jobs.worker", json.dumps(spec)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,  # a worker writes no run; the parent's stdout may be the run's pipe
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=_worker_environment(),
    )


@contextlib.contextmanager
def _forwarding_signals(workers: list[_Worker]):
    """SIGINT/SIGTERM to the parent reach every worker as SIGTERM (each flushes its store and stops); yields
    a list holding the first signal received, if any."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        for worker in workers:
            if worker.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_workers(job: RerankJob, devices: list[str], store_dir: Path, console: Console) -> list[dict[str, Any]]:
    """Start one worker per device, relay their stderr, wait for all; their shard manifests, in shard order.

    Raises `WorkersInterrupted` after a signal, `WorkerFailed` when a worker did not finish (after the others
    finished theirs, so their scores are in the store).
    """
    from rankvideo_cli.pipeline.manifest import default_manifest_path
    from rankvideo_cli.pipeline.score import default_decode_workers

    plans = plan_workers(devices, job.decode.decode_workers or default_decode_workers())
    reranker = job.scorer.selection().reranker.name
    manifests = [default_manifest_path(None, store_dir, plan.shard, reranker) for plan in plans]
    for path in manifests:  # a manifest left by an earlier run of these shards must not pass for this run's
        path.unlink(missing_ok=True)
    store_dir.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    workers: list[_Worker] = []
    with _forwarding_signals(workers) as received:
        for plan in plans:
            worker = _Worker(plan, _start(worker_job(job, plan, store_dir).to_dict()))
            worker.relay = threading.Thread(target=_relay, args=(worker, console, lock), daemon=True)
            worker.relay.start()
            workers.append(worker)
            with lock:
                say(
                    console,
                    f"worker {plan.shard.index} ({plan.name}, {plural(plan.decode_workers, 'decode thread')}): "
                    f"pid {worker.process.pid}",
                )
            if received:  # stopped while starting: start no more
                break
        while any(worker.process.poll() is None for worker in workers):
            time.sleep(0.1)
    for worker in workers:
        if worker.relay is not None:
            worker.relay.join()
    written = [json.loads(path.read_text(encoding="utf-8")) for path in manifests if path.is_file()]
    stopped: WorkersStopped | None = None
    failed = [worker for worker in workers if worker.process.returncode != 0]
    if received:
        stopped = WorkersInterrupted(received[0], store_dir)
    elif failed:
        described = "; ".join(f"worker {w.plan.shard.index} ({w.plan.name}) {w.describe_exit()}" for w in failed)
        finished = len(workers) - len(failed)
        stopped = WorkerFailed(
            f"{described}; the scores of the {plural(finished, 'worker')} that finished, and every score stored "
            "before, "
            f"are in {store_dir}: run the same command again to score what is missing"
        )
    if stopped is not None:
        stopped.manifests = written
        raise stopped
    return written


def combine_worker_counts(result: PipelineResult, manifests: list[dict[str, Any]]) -> None:
    """The merged result counts every pair as read from the store: put back what the workers scored and
    decoded in this run, and how long their models waited, so the summary and manifest tell the truth."""
    counts, timings = result.counts, result.timings
    summed = ("pairs_scored", "pairs_cached", "videos_decoded", "videos_cached", "videos_from_frame_cache")
    for name in (*summed, "frame_cache_corrupt", "oom_splits"):
        setattr(counts, name, sum(manifest["counts"].get(name, 0) for manifest in manifests))
    counts.videos_fitted = sum((manifest.get("reranker") or {}).get("videos_fitted", 0) for manifest in manifests)
    for ours, theirs in (("decode_s", "decode_s"), ("score_s", "score_s"), ("wait_s", "wait_for_decode_s")):
        setattr(timings, ours, sum(manifest["timings"].get(theirs, 0.0) for manifest in manifests))
    result.settings.update(
        {
            "devices": [manifest.get("device") for manifest in manifests],
            "decode_workers": sum(manifest["pipeline"].get("decode_workers", 0) for manifest in manifests),
            "frame_cache": manifests[0]["pipeline"].get("frame_cache") if manifests else None,
            "torch_threads": [manifest.get("torch_threads") for manifest in manifests],
        }
    )


def score_on_devices(
    job: RerankJob, inputs: PreparedInputs, store_dir: Path, console: Console
) -> tuple[PipelineResult, dict[str, Any]]:
    """Score on every device of `job.outputs.devices`, then answer every pair from the store (as `merge`): the
    result, and the model's description for the manifest."""
    started = time.monotonic()
    devices = expand_devices(parse_devices(job.outputs.devices) or [])
    if (warning := mixed_devices_warning(devices)) is not None:
        say(console, warning)
    try:
        manifests = run_workers(job, devices, store_dir, console)
    except WorkersStopped as stopped:
        if stopped.manifests:  # what the store holds now, for the parent's manifest
            stopped.result = _answer_from_store(job, inputs, store_dir, stopped.manifests, started, partial=True)
        raise
    models = {manifest["model_fingerprint"] for manifest in manifests}
    if len(models) > 1:
        described = ", ".join(f"{manifest.get('dtype')} on {manifest.get('device')}" for manifest in manifests)
        raise UsageError(
            f"--devices {job.outputs.devices}: the workers loaded the model differently ({described}), so their scores "
            "cannot make one run; give --dtype (and --attn-implementation) so every device runs alike"
        )
    return _answer_from_store(job, inputs, store_dir, manifests, started, partial=False), manifests[0]["model"]


def _answer_from_store(
    job: RerankJob,
    inputs: PreparedInputs,
    store_dir: Path,
    manifests: list[dict[str, Any]],
    started: float,
    *,
    partial: bool,
) -> PipelineResult:
    from rankvideo_cli.pipeline.merge import merge_scores
    from rankvideo_cli.pipeline.store import ScoreStore

    result = merge_scores(
        inputs.pairs(job.ranking.depth),
        ScoreStore(store_dir),
        model_fingerprint=manifests[0]["model_fingerprint"],
        settings_fingerprint=manifests[0]["sampling_fingerprint"],
        allow_missing=partial,
    )
    combine_worker_counts(result, manifests)
    result.timings.wall_s = time.monotonic() - started
    return result
