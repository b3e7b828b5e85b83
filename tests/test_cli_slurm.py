"""`rankvideo slurm [TEMPLATE]`: the sbatch scripts shipped in the package, printed to adapt and submit.

Each template prints a script that bash parses, with the lines only its user knows (partition, account, time,
the environment setup) marked EDIT or filled from options, the cores per GPU of the decode table in
benchmarks/README.md, and the requeue handling. tests/test_system_slurm.py submits them, as printed, to a real
SLURM; these tests run in a second.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
from importlib import resources
from pathlib import Path

import pytest
from helpers import assert_refused, invoke, invoke_ok

from rankvideo_cli.jobs.slurm import PLACEHOLDERS, TEMPLATES, cores_per_gpu

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("array", "node", "sample", "merge")
FILLED = ["--partition", "gpu-h100", "--account", "proj42", "--time", "12:00:00"]
SETUP = ["--setup", "module load cuda/12.4", "--setup", "source /opt/rankvideo/bin/activate"]
EDIT_HINT = "rankvideo: edit the lines marked EDIT before submitting"
# What the whole-node script says on stderr by default: it decodes, for 8 GPUs.
NODE_NOTE = {
    "node": [
        "rankvideo: the node script asks for 280 cores and 512G to decode for 8 GPUs, which most nodes cannot give:"
        " decode first with `rankvideo slurm sample` and print it with --frames-cache (32 cores), or with fewer GPUs"
        " (--gpus N)"
    ]
}
# An editor in an 80-column terminal shows every line of a printed script whole.
WIDTH = 80


def sbatch_option(script: str, option: str) -> str:
    [value] = re.findall(rf"^#SBATCH --{option}=(\S+)$", script, flags=re.MULTILINE)
    return value


def decode_table() -> dict[str, float]:
    """benchmarks/README.md's cores per GPU at ~2.5 queries per video (MultiVENT's), the most over its rows."""
    rows = re.findall(
        r"^\| [\d.]+ \| 2\.5 \| ([\d.]+) \| ([\d.]+) \|$", (ROOT / "benchmarks" / "README.md").read_text(), re.M
    )
    assert rows, "benchmarks/README.md has no row at 2.5 queries per video"
    return {"decoding": max(float(row[0]) for row in rows), "from the cache": max(float(row[1]) for row in rows)}


def run_script(script: str, tmp_path: Path, *arguments: str, **environment: str) -> subprocess.CompletedProcess:
    """The printed script run by bash outside SLURM (RANKVIDEO stands in for rankvideo)."""
    path = tmp_path / "job.sbatch"
    path.write_text(script)
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("SLURM_", "RANKVIDEO"))}
    return subprocess.run(
        ["bash", str(path), *arguments], env={**environ, **environment}, capture_output=True, text=True, timeout=60
    )


def test_alone_it_lists_the_templates_one_line_each() -> None:
    result = invoke_ok("slurm")
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(NAMES)
    assert all(len(line.split(None, 1)[1]) > 20 for line in lines)  # each says what it runs
    assert result.stderr == ""


@pytest.mark.parametrize("name", NAMES)
def test_each_template_prints_a_script_bash_parses_with_its_lines_to_edit_named(name: str, tmp_path: Path) -> None:
    result = invoke_ok("slurm", name)
    script = result.stdout
    assert script.startswith("#!/usr/bin/env bash\n")
    assert f"rankvideo slurm {name}" in script.splitlines()[1]  # where it came from
    parsed = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, timeout=60)
    assert parsed.returncode == 0, parsed.stderr
    assert not re.search(r"@[A-Z_]+@", script)  # every token of the template became a value or a placeholder
    for placeholder in ("<partition>", "<account>", "<time>", "<setup>"):
        assert placeholder in script
    assert sbatch_option(script, "partition") == "<partition>"
    assert result.stderr.splitlines() == [
        *NODE_NOTE.get(name, []),
        f"{EDIT_HINT}: partition, account, time, environment setup (or fill them: --partition, --account, --time,"
        " --setup; --account none where the cluster has no accounts)",
    ]


@pytest.mark.parametrize("name", NAMES)
def test_options_fill_every_placeholder(name: str) -> None:
    result = invoke_ok("slurm", name, *FILLED, *SETUP)
    script = result.stdout
    assert result.stderr.splitlines() == NODE_NOTE.get(name, [])  # nothing left to edit
    assert [placeholder for placeholder in PLACEHOLDERS.values() if placeholder in script] == []
    assert "EDIT" in script  # the lines stay marked: the values are the user's to change
    assert (sbatch_option(script, "partition"), sbatch_option(script, "account")) == ("gpu-h100", "proj42")
    assert sbatch_option(script, "time") == "12:00:00"
    # the setup lines, in order, before `set -u` (module and conda scripts read unset variables)
    lines = script.splitlines()
    setup = lines.index("module load cuda/12.4")
    assert lines[setup + 1] == "source /opt/rankvideo/bin/activate"
    assert setup < lines.index("set -uo pipefail")
    assert all(not line.startswith("#SBATCH") for line in lines[setup:])  # sbatch reads none after a command


def test_the_cores_per_gpu_are_the_decode_tables() -> None:
    cores = decode_table()
    array = invoke_ok("slurm", "array").stdout
    assert sbatch_option(array, "gres") == "gpu:1"
    assert int(sbatch_option(array, "cpus-per-task")) == math.ceil(cores["decoding"])
    cached = invoke_ok("slurm", "array", "--frames-cache").stdout
    assert int(sbatch_option(cached, "cpus-per-task")) == math.ceil(cores["from the cache"])

    node = invoke_ok("slurm", "node", "--gpus", "4", "--frames-cache").stdout
    assert sbatch_option(node, "gres") == "gpu:4"
    assert int(sbatch_option(node, "cpus-per-task")) == 4 * math.ceil(cores["from the cache"])
    whole = invoke_ok("slurm", "node").stdout
    assert sbatch_option(whole, "gres") == "gpu:8"
    assert int(sbatch_option(whole, "cpus-per-task")) == 8 * math.ceil(cores["decoding"])
    # the comment above says where the number comes from
    assert f"{cores['decoding']} in benchmarks/README.md" in array
    assert f"{cores['from the cache']} in benchmarks/README.md" in cached


def test_a_whole_node_that_decodes_says_plainly_that_few_nodes_can_give_it() -> None:
    cores = decode_table()
    result = invoke_ok("slurm", "node")
    script = result.stdout
    cpus, memory = sbatch_option(script, "cpus-per-task"), sbatch_option(script, "mem")
    assert (int(cpus), memory) == (8 * math.ceil(cores["decoding"]), "512G")  # the table's numbers, unchanged
    cached = 8 * math.ceil(cores["from the cache"])
    [note] = NODE_NOTE["node"]
    assert note in result.stderr.splitlines()
    assert f"asks for {cpus} cores and {memory} to decode for 8 GPUs, which most nodes cannot give" in note
    assert f"`rankvideo slurm sample` and print it with --frames-cache ({cached} cores)" in note
    # the comment above --cpus-per-task says it too, with what to do instead
    comment = " ".join(line.removeprefix("# ") for line in script.splitlines() if line.startswith("# "))
    assert f"Most nodes cannot give one job {cpus} cores and {memory}: decode on CPU nodes first" in comment
    assert f"(`rankvideo slurm sample`) and print this script with --frames-cache ({cached} cores for 8 GPUs)" in (
        comment
    )
    assert "or ask for fewer GPUs with --gpus N" in comment

    # one GPU: no fewer to ask for; reading a frame cache: nothing to say
    single = invoke_ok("slurm", "node", "--gpus", "1")
    assert "fewer GPUs" not in single.stderr and "fewer GPUs" not in single.stdout
    assert "the node script asks for 35 cores and 512G to decode for 1 GPU" in single.stderr
    cached_run = invoke_ok("slurm", "node", "--frames-cache", *FILLED, *SETUP)
    assert cached_run.stderr == "" and "Most nodes cannot give" not in cached_run.stdout


@pytest.mark.parametrize("account", ["none", "NONE"])
@pytest.mark.parametrize("name", NAMES)
def test_account_none_drops_the_account_line_and_its_warning(name: str, account: str) -> None:
    result = invoke_ok("slurm", name, "--account", account)
    script = result.stdout
    assert not re.search(r"^#SBATCH --account", script, flags=re.MULTILINE)
    assert "<account>" not in script and not re.search(r"@[A-Z_]+@", script)
    assert "print the script with --account none" in " ".join(script.split())  # where the EDIT comment says how
    parsed = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, timeout=60)
    assert parsed.returncode == 0, parsed.stderr
    assert result.stderr.splitlines() == [
        *NODE_NOTE.get(name, []),
        f"{EDIT_HINT}: partition, time, environment setup (or fill them: --partition, --time, --setup)",
    ]
    # every other line as with an account, which alone differs
    charged = invoke_ok("slurm", name, "--account", "proj42").stdout.splitlines()
    assert script.splitlines() == [line for line in charged if line != "#SBATCH --account=proj42"]
    filled = invoke_ok("slurm", name, "--partition", "gpu", "--time", "1:00:00", "--account", account, *SETUP)
    assert filled.stderr.splitlines() == NODE_NOTE.get(name, [])  # nothing left to edit, nothing to warn of


def printed_variants() -> list[tuple[str, list[str]]]:
    """Each template printed unfilled, filled with typical values, and with each option that changes its lines."""
    variants = []
    for name, template in TEMPLATES.items():
        variants += [(name, []), (name, [*FILLED, *SETUP]), (name, ["--account", "none"])]
        if template.uses_gpus:
            variants += [(name, ["--frames-cache"]), (name, [*FILLED, *SETUP, "--frames-cache"])]
        if template.whole_node:
            for gpus in ("1", "4", "16"):
                variants += [(name, ["--gpus", gpus]), (name, ["--gpus", gpus, "--frames-cache"])]
    return variants


@pytest.mark.parametrize(("name", "options"), printed_variants())
def test_every_printed_line_fits_80_columns(name: str, options: list[str]) -> None:
    script = invoke_ok("slurm", name, *options).stdout
    long = [f"{len(line)}: {line}" for line in script.splitlines() if len(line) > WIDTH]
    assert long == []


@pytest.mark.parametrize("name", ["array", "node", "sample"])
def test_the_long_running_scripts_keep_their_requeue_handling(name: str) -> None:
    script = invoke_ok("slurm", name).stdout
    assert "#SBATCH --requeue" in script.splitlines()
    assert re.search(r"^#SBATCH --signal=B:TERM@\d+$", script, flags=re.MULTILINE)
    assert "trap 'kill -TERM \"$child\" 2>/dev/null' TERM INT" in script  # the early warning reaches rankvideo
    assert '[ "$status" -eq 143 ] && [ "${RANKVIDEO_REQUEUE:-1}" != 0 ]' in script
    assert 'scontrol requeue "$SLURM_JOB_ID" && exit 0' in script
    if name != "node":
        assert "RANKVIDEO_SHARDS" in script and "--shard auto" in script


def test_the_merge_script_waits_for_the_array_with_afterok() -> None:
    script = invoke_ok("slurm", "merge").stdout
    assert "sbatch --dependency=afterok:" in script and "--kill-on-invalid-dep=yes" in script
    assert 'merge "$run" "$queries" --cache "$store" --output "$output" "$@"' in script


def test_an_unfilled_setup_line_stops_the_script_before_it_runs_anything(tmp_path: Path) -> None:
    script = invoke_ok("slurm", "array").stdout
    ran = run_script(script, tmp_path, "run.trec", "queries.tsv", "store", RANKVIDEO="echo")
    assert ran.returncode == 2
    assert (
        ran.stderr
        == "rankvideo-array: fill in the environment-setup line marked EDIT (or: rankvideo slurm array --setup LINE)\n"
    )
    assert ran.stdout == ""


def test_a_filled_array_task_reranks_its_shard_with_a_decode_thread_per_core(tmp_path: Path) -> None:
    script = invoke_ok("slurm", "array", *FILLED, "--setup", 'export RANKVIDEO="echo rankvideo"').stdout
    ran = run_script(script, tmp_path, "run.trec", "queries.tsv", "store", "--videos", "v", SLURM_CPUS_PER_TASK="35")
    assert ran.returncode == 0, ran.stderr
    assert (
        ran.stdout
        == "rankvideo rerank run.trec queries.tsv --cache store --shard auto --decode-workers 35 --videos v\n"
    )


def test_the_cluster_guide_prints_the_scripts_and_quotes_their_cores() -> None:
    guide = " ".join((ROOT / "docs" / "cluster.md").read_text().split())  # as read, not as wrapped
    assert [name for name in NAMES if f"rankvideo slurm {name}" not in guide] == []
    assert f"{cores_per_gpu(frames_cache=False)} per GPU when the task decodes" in guide
    assert f"{cores_per_gpu(frames_cache=True)} when it reads a frame cache" in guide
    assert "configs/slurm" not in guide


def test_output_writes_the_script_to_a_file(tmp_path: Path) -> None:
    output = tmp_path / "rerank-array.sbatch"
    output.write_text("an older script\n")
    result = invoke_ok("slurm", "array", *FILLED, *SETUP, "-o", output)
    assert result.stdout == "" and result.stderr == ""
    assert output.read_text() == invoke_ok("slurm", "array", *FILLED, *SETUP).stdout
    assert [path.name for path in tmp_path.iterdir()] == ["rerank-array.sbatch"]  # replaced whole: no temp left


def test_an_unknown_template_is_one_line() -> None:
    assert_refused(invoke("slurm", "arary"), "no SLURM template 'arary'", "array, node, sample, merge")


@pytest.mark.parametrize(
    ("arguments", "fragments"),
    [
        (["array", "--gpus", "2"], ["--gpus: applies to the node template only"]),
        (["node", "--gpus", "0"], ["--gpus: 0 GPUs"]),
        (["merge", "--frames-cache"], ["--frames-cache: the merge template uses no GPU"]),
        (["array", "--time", "twelve hours"], ["--time: 'twelve hours' is not a SLURM time limit"]),
        (["array", "--partition", "gpu a100"], ["--partition: 'gpu a100' must be one word"]),
        (["array", "--account", ""], ["--account: '' must be one word"]),
        (["array", "--setup", " "], ["--setup: ' ' is not one shell line"]),
        (["--partition", "gpu"], ["name a template to fill (array, node, sample, merge)"]),
    ],
)
def test_options_a_script_cannot_take_are_one_line(arguments: list[str], fragments: list[str]) -> None:
    assert_refused(invoke("slurm", *arguments), *fragments)


def test_the_templates_ship_in_the_package_and_nowhere_else() -> None:
    shipped = resources.files("rankvideo_cli.jobs") / "slurm_templates"
    assert sorted(template.file for template in TEMPLATES.values()) == sorted(
        path.name for path in shipped.iterdir() if path.name.endswith(".sbatch")
    )
    # a non-editable install carries them only if pyproject.toml declares them as package data
    declared = re.search(r'^"rankvideo_cli\.jobs" = \[(.*?)\]', (ROOT / "pyproject.toml").read_text(), re.M)
    assert declared is not None and '"slurm_templates/*.sbatch"' in declared.group(1)
    # one source of truth: no copy elsewhere in the checkout to drift from them
    copies = subprocess.run(["git", "ls-files", "*.sbatch"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert all(path.startswith("rankvideo_cli/jobs/slurm_templates/") for path in copies.stdout.split())
