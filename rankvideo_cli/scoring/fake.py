"""`fake-scorer`: a stand-in for the model that loads nothing, so that everything around the model (the CLI,
the store, resume, shards, device workers, SLURM) is tested in seconds, not in the minutes a real model takes.

Its scores are a hash of the query text and of the decoded pixels, so a wrong or missing decode, or a query
scored against another video, changes them; they mean nothing else. Like `tiny-random` it is reachable only by
its explicit name, and every load says so on stderr.

Tests inject latency and failures through the name, which the device workers and SLURM tasks receive as they
receive any model name: `fake-scorer:seconds=0.2,crash-after=5,oom-above=2`

- `seconds=S`: sleep S seconds per pair (slow enough to interrupt);
- `crash-after=N`: the process kills itself with SIGKILL when asked to score beyond its first N pairs;
- `oom-above=B`: raise torch's out-of-memory error when asked for more than B queries at once (what an
  accelerator does), so the pipeline's batch halving runs.

None of these is part of the fingerprint: a run resumed without them reuses what the failing one stored.
The prompt and score mode are, and they change the scores, as they change a real model's.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rankvideo_cli.errors import UsageError
from rankvideo_cli.messages import warn_loudly
from rankvideo_cli.scoring.base import INFERENCE_PROMPT, PairScore

if TYPE_CHECKING:
    from rankvideo_cli.videos.frames import SampledVideo

FAKE_MODEL_NAME = "fake-scorer"
FAKE_SCORER_VERSION = "fake-1"
FAKE_WARNING = "WARNING: model 'fake-scorer' loads no model; its scores are MEANINGLESS hashes"


@dataclass(frozen=True)
class FakeFailures:
    """What `fake-scorer:...` injects: latency, a hard crash, out-of-memory errors."""

    seconds_per_pair: float = 0.0
    crash_after: int | None = None
    oom_above: int | None = None


_SETTINGS = {"seconds": "seconds_per_pair", "crash-after": "crash_after", "oom-above": "oom_above"}


def is_fake_model(model: str) -> bool:
    return model == FAKE_MODEL_NAME or model.startswith(FAKE_MODEL_NAME + ":")


def parse_fake_model(model: str) -> FakeFailures:
    """`fake-scorer[:key=value,...]` -> its failures; a `UsageError` naming what is wrong otherwise."""
    _name, _colon, spec = model.partition(":")
    values: dict[str, float | int] = {}
    for item in filter(None, spec.split(",")):
        key, equals, text = item.partition("=")
        if not equals or key not in _SETTINGS:
            raise UsageError(f"--model {model}: {item!r} is not one of {', '.join(f'{k}=' for k in _SETTINGS)}")
        try:
            value: float | int = float(text) if key == "seconds" else int(text)
        except ValueError:
            raise UsageError(f"--model {model}: {key} takes a number, not {text!r}") from None
        if not math.isfinite(value):
            raise UsageError(f"--model {model}: {key} takes a finite number, not {text!r}")
        if value < 0:
            raise UsageError(f"--model {model}: {key} must be at least 0")
        values[_SETTINGS[key]] = value
    return FakeFailures(**values)  # type: ignore[arg-type]  # the keys are FakeFailures' fields, by _SETTINGS


def _softplus(value: float) -> float:
    return max(value, 0.0) + math.log1p(math.exp(-abs(value)))


def _unit(text: bytes) -> float:
    return int(hashlib.sha256(text).hexdigest()[:8], 16) / 0xFFFFFFFF


@dataclass
class FakeScorer:
    """The `Scorer` of `fake-scorer`, recording every call (the tests read `calls`)."""

    failures: FakeFailures = field(default_factory=FakeFailures)
    prompt: str = INFERENCE_PROMPT
    score_mode: str = "full"
    name: str = FAKE_MODEL_NAME
    calls: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    reranker: str = "rankvideo"  # whose prompt it stands for: another reranker's scores are other numbers
    instruction: str | None = None

    def fingerprint(self) -> dict[str, str]:
        fingerprint = {
            "scorer": FAKE_SCORER_VERSION,
            "model": self.name,
            "prompt_format": self.prompt,
            "score_mode": self.score_mode,
        }
        if self.reranker != "rankvideo":  # RankVideo's fingerprint as it was before there were others
            fingerprint.update(reranker=self.reranker, instruction=str(self.instruction))
        return fingerprint

    def describe(self) -> dict[str, str]:
        return {**self.fingerprint(), "device": "cpu", "batch_size": "any"}

    @property
    def pairs_scored(self) -> int:
        return sum(len(queries) for _path, queries in self.calls)

    def score_video(self, queries: list[str], video: SampledVideo) -> list[PairScore]:
        failures = self.failures
        if failures.oom_above is not None and len(queries) > failures.oom_above:
            import torch

            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (fake-scorer)")
        if failures.crash_after is not None and self.pairs_scored + len(queries) > failures.crash_after:
            os.kill(os.getpid(), signal.SIGKILL)
        self.calls.append((video.path, tuple(queries)))
        if failures.seconds_per_pair:
            time.sleep(failures.seconds_per_pair * len(queries))
        return [self.pair_score(query, video) for query in queries]

    def pair_score(self, query: str, video: SampledVideo) -> PairScore:
        """One pair's score, nothing recorded or injected. The query decides most of it (so the ranking differs
        from the first stage's), the video the rest: its pixels and what the processor is told of them (source
        fps, frame indices, frame count); the prompt and score mode move both."""
        salt = f"{self.prompt}/{self.score_mode}"
        if self.reranker != "rankvideo":
            salt += f"/{self.reranker}/{self.instruction}"
        query_part = _unit(f"{salt}\x00{query}".encode())
        told = json.dumps(video.processor_metadata(), sort_keys=True)
        video_part = _unit(f"{salt}\x00{told}\x00".encode() + video.frames.contiguous().numpy().tobytes())
        delta = 6.0 * (query_part - 0.5) + 2.0 * (video_part - 0.5)
        return PairScore.from_logprobs(-_softplus(-delta), -_softplus(delta))


def load_fake_scorer(
    model: str,
    *,
    prompt: str = INFERENCE_PROMPT,
    score_mode: str = "full",
    reranker: str = "rankvideo",
    instruction: str | None = None,
) -> FakeScorer:
    """The scorer `--model fake-scorer[:...]` names (standing for `reranker`'s prompt), after the one-line warning
    every load prints."""
    failures = parse_fake_model(model)
    warn_loudly(FAKE_WARNING, framed=False)  # one line at 80 columns, wrapped on a narrower terminal
    return FakeScorer(failures, prompt=prompt, score_mode=score_mode, reranker=reranker, instruction=instruction)
