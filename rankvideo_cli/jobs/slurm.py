"""`rankvideo slurm`: the sbatch scripts shipped in the package (`slurm_templates/`), filled in for a cluster.

The templates are the one source of the scripts: the docs' cluster guide prints them and the SLURM system tests
submit them as printed. A template marks what only its user knows with `@NAME@` tokens; each is filled from the
command's options, or becomes a placeholder (`<partition>`) on a line marked EDIT that sbatch or the script
itself refuses, so that an unedited script fails at submission or in its first line, never half-way.
"""

from __future__ import annotations

import math
import re
import textwrap
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rich.console import Console

from rankvideo_cli.errors import UsageError
from rankvideo_cli.io.atomic import atomic_write_text, write_stdout
from rankvideo_cli.messages import plural, say


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
# EDIT: the environment the tasks run in. sbatch passes the submitting shell's
# environment only where the cluster lets it (not with SBATCH_EXPORT=NONE or
# --export=NONE): activate rankvideo's venv here, load modules, point at the
# model cache. For example:
#   module load cuda/12.4
#   source /path/to/venv/bin/activate
#   export HF_HOME=/shared/hf HF_HUB_OFFLINE=1
# (Before `set -u`: module and conda scripts read variables that may be unset.)"""

# `--account none`: the cluster has no accounts, and the script no account line (nor a placeholder to warn of).
NO_ACCOUNT = "none"
# The width of every line a script prints (but a user's own setup line), for an editor in an 80-column terminal.
SCRIPT_WIDTH = 80
NBSP = "\xa0"
ACCOUNT_LINE = re.compile(r"^#SBATCH --account=@ACCOUNT@\n", re.MULTILINE)
MEMORY_LINE = re.compile(r"^#SBATCH --mem=(\S+)$", re.MULTILINE)
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


def no_account(settings: ClusterSettings) -> bool:
    """`--account none`: the script is to have no account line."""
    return settings.account is not None and settings.account.lower() == NO_ACCOUNT


def render_template(name: str, settings: ClusterSettings = ClusterSettings()) -> str:
    """The sbatch script of template `name`, with the given settings filled in and placeholders for the rest.

    Every line it prints fits 80 columns (but a setup line longer than that), for an editor in a terminal."""
    template = template_named(name)
    check_settings(template, settings)
    gpus = node_gpus(template, settings)
    per_gpu = cores_per_gpu(frames_cache=settings.frames_cache)
    label = f"rankvideo-{template.name}"
    unfilled_setup = (
        f'echo "{label}: fill in the environment-setup line marked EDIT" \\\n'
        f'    "(or: rankvideo slurm {template.name} --setup LINE)" >&2; exit 2 # {PLACEHOLDERS["environment setup"]}'
    )
    text = template_text(template)
    if no_account(settings):
        text = ACCOUNT_LINE.sub("", text)
    values = {
        "PARTITION": settings.partition or PLACEHOLDERS["partition"],
        "ACCOUNT": settings.account or PLACEHOLDERS["account"],
        "TIME": settings.time or PLACEHOLDERS["time"],
        "SETUP_NOTE": SETUP_NOTE,
        "SETUP": "\n".join(settings.setup) if settings.setup else unfilled_setup,
        "GPUS": str(gpus),
        "CPUS_PER_TASK": str(per_gpu * gpus),
        "CORES_NOTE": cores_note(
            template, per_gpu, gpus, memory=template_memory(text), frames_cache=settings.frames_cache
        ),
    }
    return TOKEN.sub(lambda match: values[match.group(1)], text)


def node_gpus(template: SlurmTemplate, settings: ClusterSettings) -> int:
    """The GPUs one job of `template` asks for."""
    return (settings.gpus or DEFAULT_NODE_GPUS) if template.whole_node else 1


def template_text(template: SlurmTemplate) -> str:
    return (resources.files(__package__) / "slurm_templates" / template.file).read_text(encoding="utf-8")


def template_memory(text: str) -> str:
    """The memory a template's `#SBATCH --mem` line asks for."""
    [memory] = MEMORY_LINE.findall(text)
    return str(memory)


def comment(text: str) -> str:
    """`text` as `# ` comment lines that fit the scripts' 80 columns; a no-break space (`\\xa0`) joins what must
    stay on one line (a command, a figure and its source) and prints as a space."""
    lines = textwrap.wrap(
        text,
        width=SCRIPT_WIDTH,
        initial_indent="# ",
        subsequent_indent="# ",
        break_long_words=False,
        break_on_hyphens=False,
    )
    return "\n".join(lines).replace(NBSP, " ")


def keep(text: str) -> str:
    """`text` kept on one line by `comment`."""
    return text.replace(" ", NBSP)


def cores_note(template: SlurmTemplate, per_gpu: int, gpus: int, *, memory: str, frames_cache: bool) -> str:
    """The comment above --cpus-per-task: where its number comes from, the other case's, and for a whole node that
    decodes, that few nodes can give it."""
    total = f" ({gpus} GPUs: {per_gpu * gpus})" if gpus > 1 else ""
    sample = keep("`rankvideo slurm sample`")
    if frames_cache:
        return comment(
            f"{per_gpu} cores a GPU{total}, the decode threads: what one GPU at 20 pairs/s needs to read the frames of"
            f" MultiVENT's videos from a frame cache at ~2.5 queries per video"
            f" ({keep(f'{CACHE_READ_CORES_PER_GPU} in benchmarks/README.md')}, cores per GPU); decoding the videos"
            f" instead needs {cores_per_gpu(frames_cache=False)} a GPU (print this script without --frames-cache)."
        )
    source = (
        f"{per_gpu} cores a GPU{total}, the decode threads: what one GPU at 20 pairs/s needs to decode MultiVENT's"
        f" videos at ~2.5 queries per video ({keep(f'{DECODE_CORES_PER_GPU} in benchmarks/README.md')}, cores per"
        " GPU)."
    )
    cached = cores_per_gpu(frames_cache=True)
    if not template.whole_node:
        return comment(
            f"{source} Few nodes have that many: decode on CPU nodes first ({sample}) and read the frame cache with"
            f" {cached} a GPU (print this script with --frames-cache)."
        )
    fewer = f", or ask for fewer GPUs with {keep('--gpus N')}" if gpus > 1 else ""
    return (
        comment(source)
        + "\n"
        + comment(
            f"Most nodes cannot give one job {per_gpu * gpus} cores and {memory}: decode on CPU nodes first ({sample})"
            f" and print this script with --frames-cache ({cached * gpus} cores for {plural(gpus, 'GPU')}){fewer};"
            f" give sbatch --mem where the node has less than {memory}."
        )
    )


def node_note(name: str, settings: ClusterSettings) -> str | None:
    """The one stderr line for a whole-node script that decodes: what it asks for, and what most nodes can give."""
    template = template_named(name)
    if not template.whole_node or settings.frames_cache:
        return None
    gpus = node_gpus(template, settings)
    memory = template_memory(template_text(template))
    cores = cores_per_gpu(frames_cache=False) * gpus
    cached = cores_per_gpu(frames_cache=True) * gpus
    fewer = ", or with fewer GPUs (--gpus N)" if gpus > 1 else ""
    return (
        f"the node script asks for {cores} cores and {memory} to decode for {plural(gpus, 'GPU')},"
        f" which most nodes cannot give: decode first with `rankvideo slurm sample` and print it with"
        f" --frames-cache ({cached} cores){fewer}"
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
    note = node_note(name, settings)
    if note is not None:
        say(console, note)
    left = unfilled_placeholders(text)
    if left:
        options = ", ".join(OPTION_OF_PLACEHOLDER[what] for what in left)
        if "account" in left:
            options += f"; --account {NO_ACCOUNT} where the cluster has no accounts"
        say(console, f"edit the lines marked EDIT before submitting: {', '.join(left)} (or fill them: {options})")
    return text
