"""`rankvideo slurm`: the sbatch scripts shipped in the package (`slurm_templates/`), filled in for a cluster.

The templates are the one source of the scripts: the docs' cluster guide prints them and the SLURM system tests
submit them as printed. A template marks what only its user knows with `@NAME@` tokens; each is filled from the
command's options, or becomes a placeholder (`<partition>`) on a line marked EDIT that sbatch or the script
itself refuses, so that an unedited script fails at submission or in its first line, never half-way.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rich.console import Console

from rankvideo_cli.errors import UsageError
from rankvideo_cli.io.atomic import atomic_write_text, write_stdout
from rankvideo_cli.messages import say


@dataclass(frozen=True)
class SlurmTemplate:
    name: str
    file: str  # in slurm_templates/, and the name its own usage comments give it
    summary: str
    uses_gpus: bool  # its cores follow the decode table, per GPU
    whole_node: bool = False  # all of one node's GPUs (--gpus)


TEMPLATES = {
    template.name: template
    for template in (
        SlurmTemplate(
            "array",
            "rerank-array.sbatch",
            "a GPU job array: task I of N reranks shard I/N into a shared score store",
            uses_gpus=True,
        ),
        SlurmTemplate(
            "node",
            "rerank-node.sbatch",
            "every GPU of one node in one job (rerank --devices all), no merge",
            uses_gpus=True,
            whole_node=True,
        ),
        SlurmTemplate(
            "sample",
            "sample-array.sbatch",
            "a CPU job array: decode the videos once into a frame cache",
            uses_gpus=False,
        ),
        SlurmTemplate(
            "merge",
            "merge.sbatch",
            "the array's score stores into the run, once every task succeeded",
            uses_gpus=False,
        ),
    )
}

# The cores that keep one GPU fed at MultiVENT's ~2.5 queries per video and 20 pairs/s (the analytic ceiling of
# an H100): benchmarks/README.md, "Frame cache against decoding", cores per GPU. Decoding a 720p video costs
# about 11x reading its frames from a frame cache made by `rankvideo sample`.
DECODE_CORES_PER_GPU = 34.3
CACHE_READ_CORES_PER_GPU = 3.1
DEFAULT_NODE_GPUS = 8

# What an unfilled token becomes. sbatch refuses the partition and the time; an account is only refused where
# the cluster enforces accounts; the unfilled setup line ends the script before it runs anything.
PLACEHOLDERS = {
    "partition": "<partition>",
    "account": "<account>",
    "time": "<time>",
    "environment setup": "<setup>",
}
OPTION_OF_PLACEHOLDER = {
    "partition": "--partition",
    "account": "--account",
    "time": "--time",
    "environment setup": "--setup",
}

SETUP_NOTE = """\
# EDIT: the environment the tasks run in. sbatch passes the submitting shell's environment only where the
# cluster lets it (not with SBATCH_EXPORT=NONE or --export=NONE): activate rankvideo's venv here, load
# modules, point at the model cache. For example:
#   module load cuda/12.4
#   source /path/to/venv/bin/activate
#   export HF_HOME=/shared/hf HF_HUB_OFFLINE=1
# (Before `set -u`: module and conda scripts read variables that may be unset.)"""

TOKEN = re.compile(r"@([A-Z_]+)@")


@dataclass(frozen=True)
class ClusterSettings:
    """What a template leaves to its user; None (or no setup line) leaves a marked placeholder."""

    partition: str | None = None
    account: str | None = None
    time: str | None = None
    setup: tuple[str, ...] = ()
    frames_cache: bool = False  # the GPUs read a frame cache instead of decoding
    gpus: int | None = None  # the node template's GPUs (default DEFAULT_NODE_GPUS)


def template_named(name: str) -> SlurmTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise UsageError(f"no SLURM template {name!r}: choose {', '.join(TEMPLATES)}") from None


def cores_per_gpu(*, frames_cache: bool) -> int:
    return math.ceil(CACHE_READ_CORES_PER_GPU if frames_cache else DECODE_CORES_PER_GPU)


def check_settings(template: SlurmTemplate, settings: ClusterSettings) -> None:
    """Refuse, in one line, what the template cannot take or an #SBATCH line cannot hold."""
    for option, value in (("--partition", settings.partition), ("--account", settings.account)):
        if value is not None and (value == "" or re.search(r"\s", value)):
            raise UsageError(f"{option}: {value!r} must be one word, as sbatch takes it")
    # sbatch's forms: minutes, [days-]hours[:minutes[:seconds]], minutes:seconds, or no limit
    if settings.time is not None and not re.fullmatch(r"[0-9][0-9:-]*|(?i:unlimited|infinite)", settings.time):
        raise UsageError(f"--time: {settings.time!r} is not a SLURM time limit (e.g. 12:00:00, 2-00:00:00, 90)")
    for line in settings.setup:
        if not line.strip() or "\n" in line:
            raise UsageError(f"--setup: {line!r} is not one shell line (repeat --setup for several)")
    if settings.frames_cache and not template.uses_gpus:
        raise UsageError(f"--frames-cache: the {template.name} template uses no GPU (it applies to array and node)")
    if settings.gpus is not None:
        if not template.whole_node:
            raise UsageError(
                f"--gpus: applies to the node template only (an array task has one GPU), not to {template.name}"
            )
        if settings.gpus < 1:
            raise UsageError(f"--gpus: {settings.gpus} GPUs; a node job needs at least 1")


def render_template(name: str, settings: ClusterSettings = ClusterSettings()) -> str:
    """The sbatch script of template `name`, with the given settings filled in and placeholders for the rest."""
    template = template_named(name)
    check_settings(template, settings)
    gpus = (settings.gpus or DEFAULT_NODE_GPUS) if template.whole_node else 1
    per_gpu = cores_per_gpu(frames_cache=settings.frames_cache)
    label = f"rankvideo-{template.name}"
    unfilled_setup = (
        f'echo "{label}: fill in the environment-setup line marked EDIT (or: rankvideo slurm {template.name}'
        f' --setup LINE)" >&2; exit 2 # {PLACEHOLDERS["environment setup"]}'
    )
    values = {
        "PARTITION": settings.partition or PLACEHOLDERS["partition"],
        "ACCOUNT": settings.account or PLACEHOLDERS["account"],
        "TIME": settings.time or PLACEHOLDERS["time"],
        "SETUP_NOTE": SETUP_NOTE,
        "SETUP": "\n".join(settings.setup) if settings.setup else unfilled_setup,
        "GPUS": str(gpus),
        "CPUS_PER_TASK": str(per_gpu * gpus),
        "CORES_NOTE": cores_note(per_gpu, gpus, frames_cache=settings.frames_cache),
    }
    text = (resources.files(__package__) / "slurm_templates" / template.file).read_text(encoding="utf-8")
    return TOKEN.sub(lambda match: values[match.group(1)], text)


def cores_note(per_gpu: int, gpus: int, *, frames_cache: bool) -> str:
    """The comment above --cpus-per-task: where its number comes from, and the other case's."""
    total = f" ({gpus} GPUs: {per_gpu * gpus})" if gpus > 1 else ""
    if frames_cache:
        return (
            f"# {per_gpu} cores a GPU{total}, the decode threads: what one GPU at 20 pairs/s needs to read the\n"
            f"# frames of MultiVENT's videos from a frame cache at ~2.5 queries per video ({CACHE_READ_CORES_PER_GPU}"
            " in benchmarks/README.md,\n# cores per GPU); decoding the videos instead needs"
            f" {cores_per_gpu(frames_cache=False)} a GPU (print this script without --frames-cache)."
        )
    return (
        f"# {per_gpu} cores a GPU{total}, the decode threads: what one GPU at 20 pairs/s needs to decode\n"
        f"# MultiVENT's videos at ~2.5 queries per video ({DECODE_CORES_PER_GPU} in benchmarks/README.md, cores per"
        " GPU). Few nodes\n# have that many: decode on CPU nodes first (`rankvideo slurm sample`) and read the frame"
        f" cache with {cores_per_gpu(frames_cache=True)} a GPU\n# (print this script with --frames-cache)."
    )


def unfilled_placeholders(script: str) -> list[str]:
    """The placeholders `script` still holds, by what they stand for."""
    return [what for what, placeholder in PLACEHOLDERS.items() if placeholder in script]


def template_list() -> str:
    """One line per template: its name and what it runs."""
    width = max(len(name) for name in TEMPLATES)
    return "".join(f"{name:<{width}}  {template.summary}\n" for name, template in TEMPLATES.items())


def run_slurm(name: str | None, settings: ClusterSettings, output: Path | None, console: Console) -> str:
    """Print (or write atomically to `output`) template `name` filled with `settings`, and say on `console` which
    lines are still to edit; without a name, list the templates. Returns what was written."""
    if name is None:
        if settings != ClusterSettings() or output is not None:
            raise UsageError(f"name a template to fill ({', '.join(TEMPLATES)}); alone, `rankvideo slurm` lists them")
        text = template_list()
        write_stdout(text)
        return text
    text = render_template(name, settings)
    if output is None:
        write_stdout(text)
    else:
        atomic_write_text(output, text)
    left = unfilled_placeholders(text)
    if left:
        options = ", ".join(OPTION_OF_PLACEHOLDER[what] for what in left)
        say(console, f"edit the lines marked EDIT before submitting: {', '.join(left)} (or fill them: {options})")
    return text
