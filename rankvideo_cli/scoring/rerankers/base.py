"""What a reranker is to rankvideo: `Reranker` (its light facts: name, the hub ids that select it, its frame
sampling, the options it takes) and `Recipe` (what it does with a loaded processor: its prompt, its yes/no ids,
its score rule, the fingerprint fields of its settings). Importing this module imports no torch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from rankvideo_cli.errors import PromptOptionError
from rankvideo_cli.videos.config import SamplingConfig

if TYPE_CHECKING:
    import torch

    from rankvideo_cli.scoring.base import PairScore
    from rankvideo_cli.scoring.prompt import PromptBatch, VideoInputs


class RecipeSettings(Protocol):
    """The options a recipe reads (`ScorerOptions` has them)."""

    @property
    def prompt(self) -> str: ...
    @property
    def score_mode(self) -> str: ...
    @property
    def instruction(self) -> str | None: ...


class Recipe(Protocol):
    """A reranker's prompt and score for one loaded processor (built by `Reranker.recipe`; imports torch)."""

    @property
    def yes_ids(self) -> list[int]: ...
    @property
    def no_ids(self) -> list[int]: ...

    def check_template(self, model_id: str) -> None:
        """Refuse (`FidelityError`) or warn about a chat template that does not render the reranker's prompt."""
        ...

    def prompt_hash(self) -> str:
        """Short hash of everything textual the model sees (the fingerprint's `prompt`)."""
        ...

    def fingerprint_fields(self) -> dict[str, str]:
        """What of the reranker's settings the fingerprint adds (nothing for RankVideo's inference prompt)."""
        ...

    def video_processor_options(self) -> dict[str, Any]:
        """What the reranker's reference passes to the Qwen3-VL processor beyond the frames and their metadata."""
        ...

    def prompt_batch(self, queries: list[str], video_inputs: VideoInputs) -> PromptBatch:
        """The whole prompts of `queries` against one video, left-padded."""
        ...

    def scores(self, hidden: torch.Tensor, lm_head: Any) -> list[PairScore]:
        """The scores from the (B, 1, D) hidden states at the last prompt position and the model's LM head."""
        ...

    def describe(self) -> dict[str, str]:
        """What the run's manifest records beside the fingerprint (counts of what the recipe had to do)."""
        ...


@dataclass(frozen=True)
class Reranker:
    """One reranker: `recipe` builds its `Recipe` from a processor (its recipe class, whose torch imports wait
    until it is built)."""

    name: str
    summary: str  # one line, for --help and `--dry-run`
    hub_ids: tuple[str, ...]  # model ids that select it (any case); a hub cache snapshot of one does too
    sampling: SamplingConfig
    recipe: Callable[[Any, RecipeSettings], Recipe]
    prompts: tuple[str, ...] = ("inference",)  # the --prompt formats it has
    score_modes: tuple[str, ...] = ("full",)
    default_instruction: str | None = None  # None: it takes no --instruction
    explains: bool = True  # whether its answer has reasoning for `explain` to show (not only yes or no)

    def check(self, settings: RecipeSettings) -> None:
        """Refuse options this reranker does not have, in one line, before anything loads."""
        if settings.prompt not in self.prompts:
            raise PromptOptionError(
                f"--prompt {settings.prompt} is RankVideo's; {self.name} has one prompt (leave --prompt out)"
                if settings.prompt == "training"
                else f"--prompt must be one of {', '.join(self.prompts)} for {self.name}, got {settings.prompt!r}"
            )
        if settings.score_mode not in self.score_modes:
            raise PromptOptionError(
                f"--score-mode {settings.score_mode} is not one of {self.name}'s ({', '.join(self.score_modes)})"
            )
        if settings.instruction is not None:
            if self.default_instruction is None:
                raise PromptOptionError(f"--instruction applies to rerankers with an instruction; {self.name} has none")
            if not settings.instruction.strip():
                raise PromptOptionError("--instruction is empty: leave it out for the reranker's own")

    def instruction(self, settings: RecipeSettings) -> str | None:
        """The instruction the prompt carries: the user's, else the reranker's own (None: it has none)."""
        return settings.instruction if settings.instruction is not None else self.default_instruction

    def build_recipe(self, processor: Any, settings: RecipeSettings) -> Recipe:
        return self.recipe(processor, settings)


@dataclass(frozen=True)
class Selection:
    """Which reranker scores a model, and why (the summary, `--dry-run` and the manifest say so)."""

    reranker: Reranker
    chosen_by: str  # "--reranker", "the model id", "the hub cache's repo id", "default"
    note: str | None = None  # a line to show the user (a local model of unknown origin)

    def describe(self) -> dict[str, str]:
        return {"name": self.reranker.name, "chosen_by": self.chosen_by}
