"""Option defaults from the environment (`RANKVIDEO_<COMMAND>_<OPTION>`) and from rankvideo.toml (the XDG config
directory's, then the working directory's, or `$RANKVIDEO_CONFIG`): command line > environment > file > built-in
default; a file the tool cannot use is named in one line; every value says where it came from. And shell
completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from helpers import FIRST_STAGE, QRELS, VIDEOS, assert_refused, invoke, invoke_ok, manifest_of, sample_rerank_args

from rankvideo_cli.cli import app
from rankvideo_cli.cli.defaults import NOT_FROM_FILE, env_variable

EVAL = ("eval", FIRST_STAGE, QRELS)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory and an XDG config directory of the test's own, and no `$RANKVIDEO_CONFIG`."""
    monkeypatch.delenv("RANKVIDEO_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def user_file(home: Path, text: str) -> Path:
    path = home / "xdg" / "rankvideo" / "rankvideo.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def measures_of(result) -> list[str]:  # type: ignore[no-untyped-def]
    """The measures of eval's TSV output (what the runner's pipe gets)."""
    return [line.split("\t")[2] for line in result.stdout.splitlines()[1:]]


def test_an_environment_variable_sets_an_option_of_its_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANKVIDEO_EVAL_MEASURE", "P@5 RR")
    assert measures_of(invoke_ok(*EVAL)) == ["P@5", "RR"]


def test_the_variable_of_another_command_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANKVIDEO_RANK_MEASURE", "P@5")
    assert "P@5" not in measures_of(invoke_ok(*EVAL))


def test_top_level_keys_apply_to_every_command_with_the_option_and_a_table_to_its_command(home: Path) -> None:
    (home / "work" / "rankvideo.toml").write_text('measure = ["P@5"]\n[eval]\nformat = "json"\n')
    report = json.loads(invoke_ok(*EVAL).stdout)
    assert report["measures"] == ["P@5"]


def test_the_working_directory_file_overrides_the_users_and_a_table_overrides_the_top_level(home: Path) -> None:
    user_file(home, 'measure = ["P@5"]\n')
    (home / "work" / "rankvideo.toml").write_text('measure = ["RR"]\n[eval]\nmeasure = ["nDCG@10"]\n')
    assert measures_of(invoke_ok(*EVAL)) == ["nDCG@10"]
    (home / "work" / "rankvideo.toml").write_text('measure = ["RR"]\n')
    assert measures_of(invoke_ok(*EVAL)) == ["RR"]
    (home / "work" / "rankvideo.toml").unlink()
    assert measures_of(invoke_ok(*EVAL)) == ["P@5"]


def test_command_line_over_environment_over_file_over_default(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert invoke_ok(*EVAL).stdout.startswith("run\t")  # the default through a pipe: tsv
    (home / "work" / "rankvideo.toml").write_text('[eval]\nformat = "json"\n')
    assert invoke_ok(*EVAL).stdout.startswith("{")
    monkeypatch.setenv("RANKVIDEO_EVAL_FORMAT", "csv")
    assert invoke_ok(*EVAL).stdout.startswith("run,")
    assert invoke_ok(*EVAL, "--format", "tsv").stdout.startswith("run\t")


def test_rankvideo_config_names_the_only_file_read(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (home / "work" / "rankvideo.toml").write_text('[eval]\nformat = "json"\n')
    elsewhere = home / "job.toml"
    elsewhere.write_text('[eval]\nformat = "csv"\n')
    monkeypatch.setenv("RANKVIDEO_CONFIG", str(elsewhere))
    assert invoke_ok(*EVAL).stdout.startswith("run,")
    monkeypatch.setenv("RANKVIDEO_CONFIG", os.devnull)
    assert invoke_ok(*EVAL).stdout.startswith("run\t")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('vidoes = "/data"\n', "'vidoes' is not an option any command takes from a file"),
        ("[rerank]\nmulti-vent = true\n", "[rerank] 'multi-vent' is not an option of `rankvideo rerank`"),
        ("[rerank]\ndry-run = true\n", "[rerank] 'dry-run' is not an option of `rankvideo rerank`"),
        ("[merge]\nforce = true\n", "[merge] 'force' is not an option of `rankvideo merge`"),
        ('[rereank]\nmodel = "x"\n', "[rereank] is not a command"),
        ("[eval\n", "not valid TOML"),
    ],
    ids=["unknown-key", "unknown-option", "dry-run", "force", "unknown-command", "not-toml"],
)
def test_a_file_the_tool_cannot_use_is_one_line_naming_it(home: Path, text: str, fragment: str) -> None:
    path = home / "work" / "rankvideo.toml"
    path.write_text(text)
    assert_refused(invoke(*EVAL), str(path), fragment)


def test_a_missing_rankvideo_config_is_refused(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANKVIDEO_CONFIG", str(home / "nowhere.toml"))
    assert_refused(invoke(*EVAL), "RANKVIDEO_CONFIG=", "no such file")


def test_a_bad_value_names_where_it_came_from(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = home / "work" / "rankvideo.toml"
    path.write_text('[eval]\ncorrection = "bogus"\n')
    assert_refused(invoke(*EVAL), "--correction", f"(from {path} [eval])", prefix="rankvideo eval: ")
    monkeypatch.setenv("RANKVIDEO_EVAL_CORRECTION", "nope")
    assert_refused(invoke(*EVAL), "--correction", "(from RANKVIDEO_EVAL_CORRECTION)", prefix="rankvideo eval: ")


def test_no_options_variable_collides_with_the_variables_the_tool_reads() -> None:
    group = typer.main.get_command(app)
    variables = [
        env_variable(name, option)
        for name, options in group.option_specs().items()  # type: ignore[attr-defined]
        for option in options
    ]
    assert len(variables) == len(set(variables))
    own = {"RANKVIDEO_CACHE", "RANKVIDEO_CONFIG", "RANKVIDEO_SHARDS", "RANKVIDEO_REQUEUE", "RANKVIDEO_DEVICES"}
    own |= {"RANKVIDEO_VERBOSITY", "RANKVIDEO_REQUIRE_SLURM", "RANKVIDEO_REQUIRE_BROWSER", "RANKVIDEO_WRITE_GOLDENS"}
    assert own.isdisjoint(variables)
    assert "RANKVIDEO_RERANK_MODEL" in variables and "RANKVIDEO_SAMPLE_FRAMES_CACHE" in variables
    one_shot = [param for command in group.commands.values() for param in command.params if param.name in NOT_FROM_FILE]  # type: ignore[attr-defined]
    assert {param.name for param in one_shot} == {"dry_run", "force"}
    assert all(param.envvar is None for param in one_shot)  # --dry-run and --force only ever on the command line


def test_a_reruns_manifest_records_where_each_option_came_from(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (home / "work" / "rankvideo.toml").write_text("[rerank]\ndepth = 5\n")
    monkeypatch.setenv("RANKVIDEO_RERANK_TAG", "from-env")
    output = tmp_path / "run.trec"
    invoke_ok(*sample_rerank_args(VIDEOS, "-o", output))
    sources = manifest_of(output)["options_from"]
    assert sources["depth"] == f"{home / 'work' / 'rankvideo.toml'} [rerank]"
    assert sources["tag"] == "environment RANKVIDEO_RERANK_TAG"
    assert sources["model"] == sources["output"] == "command line"
    assert "normalization" not in sources  # at its default
    assert output.read_text().split("\n")[0].endswith(" from-env")


def completion(words: str) -> list[str]:
    """What bash completion offers after `words` (the real console entry point, as the shell runs it)."""
    environment = {
        **os.environ,
        "_RANKVIDEO_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    }
    command = [sys.executable, "-c", "from rankvideo_cli.cli import main; main()"]
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.split()


def test_shell_completion_offers_commands_options_and_choices() -> None:
    assert completion("rankvideo re") == ["rerank", "report"]
    assert "--frames-cache" in completion("rankvideo rerank --fr")
    assert completion("rankvideo rerank --reranker ") == ["rankvideo", "qwen3-vl-reranker"]


def test_the_completion_script_is_printed_for_a_shell() -> None:
    command = [sys.executable, "-c", "from rankvideo_cli.cli import main; main()", "--show-completion", "bash"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert "_RANKVIDEO_COMPLETE=complete_bash" in completed.stdout


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (b"depth = 5\n# \xff\n", "not UTF-8 text"),
        (b'[rerank]\nvideos = ["a", "b"]\n', "[rerank] 'videos' takes one value, not a list"),
        (b"[rerank.videos]\nx = 1\n", "[rerank] 'videos' takes one value, not a table"),
        (b"[rerank]\ndepth = true\n", "[rerank] 'depth' takes a value, not True"),
        (b'[rerank]\nmultivent = "yes"\n', "[rerank] 'multivent' is a flag: true or false"),
        (b"[eval]\nmeasure = [[1]]\n", "[eval] 'measure' takes a list of values"),
    ],
    ids=["not-utf8", "list-for-one", "table-for-one", "bool-for-a-number", "text-for-a-flag", "nested-list"],
)
def test_a_value_of_the_wrong_shape_is_one_line_naming_it(home: Path, text: bytes, fragment: str) -> None:
    path = home / "work" / "rankvideo.toml"
    path.write_bytes(text)
    assert_refused(invoke(*EVAL), str(path), fragment)


def test_one_value_for_a_repeatable_option_is_a_list_of_one(home: Path) -> None:
    (home / "work" / "rankvideo.toml").write_text('[eval]\nmeasure = "P@5"\n')
    assert measures_of(invoke_ok(*EVAL)) == ["P@5"]


def test_a_table_stays_out_of_the_other_commands(home: Path) -> None:
    (home / "work" / "rankvideo.toml").write_text('[rank]\nmeasure = ["P@5"]\n')
    assert "P@5" not in measures_of(invoke_ok(*EVAL))


def test_a_path_in_the_file_has_its_tilde_expanded(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(home))
    (home / "clips").symlink_to(VIDEOS)
    (home / "work" / "rankvideo.toml").write_text('videos = "~/clips"\nmodel = "fake-scorer"\n')
    result = invoke("rerank", FIRST_STAGE, QRELS.parent / "queries.tsv", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "12 found, 1 missing" in result.stderr


def test_a_refused_value_from_a_variable_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANKVIDEO_RERANK_DEPTH", "-3")
    refused = invoke(*sample_rerank_args(VIDEOS, "--dry-run"))
    assert_refused(refused, "--depth must be at least 1, got -3 (from RANKVIDEO_RERANK_DEPTH)")


def test_a_broken_file_leaves_help_version_and_completion_working(home: Path) -> None:
    (home / "work" / "rankvideo.toml").write_text("depht = 5\n")
    assert invoke_ok("--version").stdout.startswith("rankvideo ")
    assert "Usage: rankvideo rerank" in invoke_ok("rerank", "--help").stdout
    assert completion("rankvideo ev") == ["eval"]
    assert_refused(invoke(*EVAL), "'depht' is not an option")


def test_a_shell_line_variable_holds_one_line_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANKVIDEO_SLURM_SETUP", "module load cuda/12.4\nsource /x/venv/bin/activate\n")
    script = invoke_ok("slurm", "merge", "--partition", "cpu", "--account", "a", "--time", "1:00:00").stdout
    assert "module load cuda/12.4\nsource /x/venv/bin/activate\n" in script


def test_free_text_options_complete_their_usual_values() -> None:
    assert completion("rankvideo rerank --dtype ") == ["bf16", "fp16", "fp32"]
    assert completion("rankvideo doctor --attn-implementation f") == ["flash_attention_2"]
    assert completion("rankvideo slurm ") == ["array", "node", "sample", "merge"]
