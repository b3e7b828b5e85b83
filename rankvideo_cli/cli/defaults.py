"""Option defaults from the environment and a TOML file, so that array tasks need not repeat `--videos ...
--multivent --model ...`; precedence: command line > environment > file > built-in default.

- Environment: `RANKVIDEO_<COMMAND>_<OPTION>`, the option's long flag in capitals with underscores
  (`--model` of rerank: `RANKVIDEO_RERANK_MODEL`; `--frames-cache` of sample: `RANKVIDEO_SAMPLE_FRAMES_CACHE`), as
  click's `auto_envvar_prefix` would name them from the flag. The command in the name keeps them apart from the
  variables the tool already reads (`RANKVIDEO_CACHE`, `RANKVIDEO_SHARDS`, `RANKVIDEO_DEVICES`...).
- File: `$RANKVIDEO_CONFIG` when set (`/dev/null`: no file), else `rankvideo.toml` under the XDG config directory
  (`~/.config/rankvideo/rankvideo.toml`) overridden by `rankvideo.toml` in the working directory. Top-level keys
  apply to every command whose option takes that shape (`measure = ["P@5"]`: eval's list, not tune's one
  measure); a `[command]` table to that command only, over the top level.
  Keys are the long flags without their dashes (`frames-cache`, or `frames_cache`). A key no command has is
  refused, naming the file.

Every value that did not come from its default says where it came from (`value_sources`): `rankvideo doctor`
lists them, and a rerank's manifest records them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rankvideo_cli.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised by Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found]

ENV_PREFIX = "RANKVIDEO"
CONFIG_VARIABLE = "RANKVIDEO_CONFIG"
FILE_NAME = "rankvideo.toml"
# options that act once, on purpose: a default that forces a merge or plans instead of running would surprise
NOT_FROM_FILE = frozenset({"dry_run", "force", "help"})
# repeatable options whose values are shell lines (spaces inside): their variable holds one value a line
ONE_PER_LINE = frozenset({"setup"})


def env_variable(command: str, key: str) -> str:
    """The variable that sets the option `key` (its long flag, `frames-cache`) of `command`."""
    return f"{ENV_PREFIX}_{command}_{key}".replace("-", "_").upper()


def option_key(param: Any) -> str:
    """How a file and the environment name an option: its first long flag without the dashes, underscored
    (`--frames-cache` -> `frames_cache`; `--prefix-cache/--no-prefix-cache` -> `prefix_cache`)."""
    long_flags = [flag for flag in param.opts if flag.startswith("--")]
    return (long_flags[0] if long_flags else f"--{param.name}").lstrip("-").replace("-", "_")


def config_paths(cwd: Path | None = None) -> list[Path]:
    """The files read, lowest precedence first: `$RANKVIDEO_CONFIG` alone when set, else the user's file and the
    working directory's, those that exist."""
    explicit = os.environ.get(CONFIG_VARIABLE)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.exists():
            raise UsageError(f"{CONFIG_VARIABLE}={explicit}: no such file (unset it, or /dev/null for no file)")
        return [path]
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    candidates = [Path(xdg) / "rankvideo" / FILE_NAME, (cwd or Path.cwd()) / FILE_NAME]
    return [path for path in candidates if path.is_file()]


@dataclass(frozen=True)
class FileDefault:
    """One option's default from a file: its value and where it was written (`rankvideo.toml [rerank]`)."""

    value: Any
    origin: str


@dataclass
class Defaults:
    """The file defaults of every command: {command: {option: FileDefault}}, and the files they came from."""

    by_command: dict[str, dict[str, FileDefault]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def default_map(self) -> dict[str, dict[str, Any]]:
        """click's `default_map`: {command: {option: value}}."""
        return {
            command: {name: entry.value for name, entry in options.items()}
            for command, options in self.by_command.items()
        }

    def origin(self, command: str, option: str) -> str | None:
        entry = self.by_command.get(command, {}).get(option)
        return entry.origin if entry is not None else None


@dataclass(frozen=True)
class OptionSpec:
    """What a file's value for an option must be: its parameter `name` (click's `default_map` key), a list when
    `repeatable`, true or false when a `flag`, else one value; a `path` has its `~` expanded (no shell does it
    in a file)."""

    name: str
    repeatable: bool = False
    flag: bool = False
    path: bool = False


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise UsageError(f"{path}: unreadable ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text (TOML files are UTF-8)") from None
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{path}: not valid TOML ({error})") from None


def load_defaults(specs: Mapping[str, Mapping[str, OptionSpec]], paths: list[Path]) -> Defaults:
    """The defaults `paths` give the commands of `specs` ({command: {option key: its OptionSpec}}); later files
    win, and within a file a command's table wins over the top level. Kept by parameter name, as click's
    `default_map` wants them."""
    defaults = Defaults(files=list(paths))
    every_option = {key for keys in specs.values() for key in keys}
    for path in paths:
        document = _read_toml(path)
        shared = {key: value for key, value in document.items() if not isinstance(value, dict)}
        tables = {key: value for key, value in document.items() if isinstance(value, dict)}
        for key, value in shared.items():
            name = _option_key(key)
            if name not in every_option or name in NOT_FROM_FILE:
                raise UsageError(f"{path}: {key!r} is not an option any command takes from a file")
            # every command whose option takes this shape (`measure`: eval's list, tune's one measure)
            fitting: list[tuple[str, OptionSpec, Any]] = []
            refusal = None
            for command, keys in specs.items():
                if name in keys:
                    try:
                        fitting.append((command, keys[name], _checked(value, keys[name], f"{path}: {key!r}")))
                    except UsageError as error:
                        refusal = error
            if not fitting and refusal is not None:
                raise refusal
            for command, spec, checked in fitting:
                defaults.by_command.setdefault(command, {})[spec.name] = FileDefault(checked, str(path))
        for command, table in tables.items():
            if command not in specs:
                known = ", ".join(sorted(specs))
                raise UsageError(f"{path}: [{command}] is not a command (one of: {known})")
            for key, value in table.items():
                name = _option_key(key)
                if name not in specs[command] or name in NOT_FROM_FILE:
                    raise UsageError(f"{path}: [{command}] {key!r} is not an option of `rankvideo {command}`")
                spec = specs[command][name]
                checked = _checked(value, spec, f"{path}: [{command}] {key!r}")
                defaults.by_command.setdefault(command, {})[spec.name] = FileDefault(checked, f"{path} [{command}]")
    return defaults


def _checked(value: Any, spec: OptionSpec, where: str) -> Any:
    """`value` in the shape its option takes (a list for a repeatable option: one value becomes a list of one),
    or the one-line refusal naming `where`."""
    if spec.repeatable:
        values = value if isinstance(value, list) else [value]
        if any(isinstance(item, (list, dict, bool)) for item in values):
            raise UsageError(f"{where} takes a list of values (strings or numbers)")
        return [_expanded(item, spec) for item in values]
    if isinstance(value, (list, dict)):
        raise UsageError(f"{where} takes one value, not a {'list' if isinstance(value, list) else 'table'}")
    if spec.flag != isinstance(value, bool):
        raise UsageError(f"{where} is a flag: true or false" if spec.flag else f"{where} takes a value, not {value}")
    return _expanded(value, spec)


def _expanded(value: Any, spec: OptionSpec) -> Any:
    return os.path.expanduser(value) if spec.path and isinstance(value, str) else value


def _option_key(key: str) -> str:
    return key.strip().lstrip("-").replace("-", "_")


def origin(context: Any, name: str) -> str:
    """` (from RANKVIDEO_...)` or ` (from FILE [table])` when the option `name` of the running command took its
    value from the environment or a file; empty when from the command line or its default. For a refusal."""
    try:
        kind = getattr(context.get_parameter_source(name), "name", None)
    except (AttributeError, KeyError):
        return ""
    if kind == "ENVIRONMENT":
        param = next((param for param in context.command.params if param.name == name), None)
        return f" (from {env_variable(context.info_name, option_key(param))})" if param is not None else ""
    if kind == "DEFAULT_MAP" and isinstance(context.obj, Defaults):
        return f" (from {context.obj.origin(context.info_name, name) or 'a rankvideo.toml'})"
    return ""


def value_sources(context: Any, defaults: Defaults) -> dict[str, str]:
    """{option: where its value came from} for each option of the running command whose value is not its
    built-in default: `command line`, `environment RANKVIDEO_...` or the file (and table)."""
    command = context.info_name
    sources: dict[str, str] = {}
    for param in context.command.params:
        if param.param_type_name != "option":
            continue  # an argument is always on the command line
        source = context.get_parameter_source(param.name)
        kind = getattr(source, "name", None)
        if kind == "COMMANDLINE":
            sources[param.name] = "command line"
        elif kind == "ENVIRONMENT":
            sources[param.name] = f"environment {env_variable(command, option_key(param))}"
        elif kind == "DEFAULT_MAP":
            sources[param.name] = defaults.origin(command, param.name) or "file"
    return sources


def configured_value(command: str, key: str, spec: OptionSpec, defaults: Defaults) -> tuple[Any, str] | None:
    """What `command` would take for the option `key` from outside the command line, and from where: its variable
    over its file default; None when neither sets it."""
    variable = env_variable(command, key)
    if variable in os.environ:
        return os.environ[variable], variable
    entry = defaults.by_command.get(command, {}).get(spec.name)
    return (entry.value, entry.origin) if entry is not None else None


def configured(specs: Mapping[str, Mapping[str, OptionSpec]], defaults: Defaults) -> list[dict[str, Any]]:
    """Every default set outside the command line, for `doctor`: one row per (command, option) with its value
    and source; the environment over the file, as a command would take them."""
    rows = []
    for command in sorted(specs):
        for key, spec in sorted(specs[command].items()):
            found = configured_value(command, key, spec, defaults)
            if found is not None:
                rows.append({"command": command, "option": key, "value": found[0], "from": found[1]})
    return rows
