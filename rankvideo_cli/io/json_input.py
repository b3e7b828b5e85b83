"""JSON from a user's files, read strictly: a key given twice in one object is an error, never a choice.

`json.loads` keeps the last of two equal keys without a word, so a qrels line with "relevance" twice would be
judged by whichever came second and a `--scores` line with "logit_delta" twice scored by it. Every reader of a
user's JSON or JSONL input parses through `parse_json_line` (one line of a JSONL file) or `loads_unique` (a
whole document), so the rule and its message live here only.

Speed: a JSONL file can have millions of lines, and `object_pairs_hook` calls Python for every object. So each
text is parsed with plain `json.loads` first, and again with the hook only when it could hold a repeat: every
member of an object has exactly one structural `:`, so a text whose count of `:` characters equals the number
of keys parsed (all objects, nested ones too) cannot have lost a key. Colons inside strings only make the count
larger, sending the text to the careful parse, never past it; escapes and whitespace do not matter.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rankvideo_cli.errors import InputError


class RepeatedKeyError(ValueError):
    """A key given twice in one JSON object: `key`, `depth` of that object (0: the outermost) and `line`, the
    1-based line of the text where the key's second occurrence most likely is (None when it cannot be told)."""

    def __init__(self, key: str, depth: int, line: int | None) -> None:
        super().__init__(f"key {key!r} appears twice in one object")
        self.key = key
        self.depth = depth
        self.line = line


def loads_unique(text: str) -> Any:
    """`json.loads(text)`, but a key repeated in one object raises `RepeatedKeyError` (invalid JSON raises
    `json.JSONDecodeError`, as `json.loads` does)."""
    value = json.loads(text)
    colons = text.count(":")
    if colons and not (type(value) is dict and len(value) == colons) and colons > _key_count(value):
        _refuse_repeats(text)
    return value


_decode = json.JSONDecoder().decode  # json.loads minus its per-call checks (a line's BOM is gone already)


def parse_json_line(path: str, number: int, line: str) -> Any:
    """The value of line `number` of the JSONL file `path`; `InputError` naming the file and line for invalid
    JSON or a key given twice in one object."""
    try:
        # loads_unique's steps inlined: a JSONL file can have millions of lines
        value = _decode(line)
        colons = line.count(":")
        if colons and not (type(value) is dict and len(value) == colons) and colons > _key_count(value):
            _refuse_repeats(line)
        return value
    except json.JSONDecodeError as error:
        raise InputError(path, number, f"invalid JSON: {error.msg} (column {error.colno})") from None
    except RepeatedKeyError as error:
        raise InputError(
            path, number, f"{repeated_key_problem('key', error.key)}; which value is meant cannot be told"
        ) from None


def repeated_key_problem(what: str, key: str) -> str:
    """The start of every message about a repeated key; `what` names the key's role ("key", "query id")."""
    return f"{what} {key!r} appears twice in one object"


def _key_count(value: object) -> int:
    """Keys of every object in a parsed JSON value, nested ones included."""
    count = 0
    pending = [value]
    while pending:
        node = pending.pop()
        if type(node) is dict:
            count += len(node)
            pending.extend(child for child in node.values() if type(child) in (dict, list))
        elif type(node) is list:
            pending.extend(child for child in node if type(child) in (dict, list))
    return count


def _refuse_repeats(text: str) -> None:
    """Parse `text` again noting repeats; raise `RepeatedKeyError` for the outermost object that has one."""
    repeated: dict[int, str] = {}  # id() of an object -> its first repeated key

    def noting_repeats(pairs: list[tuple[str, object]]) -> dict:
        result = dict(pairs)
        if len(result) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    repeated.setdefault(id(result), key)
                    break
                seen.add(key)
        return result

    payload = json.loads(text, object_pairs_hook=noting_repeats)
    if repeated:
        depth, key = _outermost_repeat(payload, repeated)
        raise RepeatedKeyError(key, depth, _line_of_second(text, key))


def _outermost_repeat(payload: object, repeated: dict[int, str]) -> tuple[int, str]:
    """(depth, key) of the outermost object that repeated a key (breadth first; arrays add no depth)."""
    depth, current = 0, _objects_in([payload])
    while current:
        for node in current:
            if id(node) in repeated:
                return depth, repeated[id(node)]
        current = _objects_in([child for node in current for child in node.values()])
        depth += 1
    return 0, next(iter(repeated.values()))  # pragma: no cover - every noted object is in the payload


def _objects_in(values: list[object]) -> list[dict]:
    """The objects among `values`, looking into arrays (an array is no level of its own)."""
    objects: list[dict] = []
    pending = values[::-1]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            objects.append(value)
        elif isinstance(value, list):
            pending.extend(value[::-1])
    return objects


def _line_of_second(text: str, key: str) -> int | None:
    """The line of the second `"key":` in the text (where the repeat most likely is)."""
    found = [match.start() for match in re.finditer(re.escape(json.dumps(key)) + r"\s*:", text)]
    return text.count("\n", 0, found[1]) + 1 if len(found) > 1 else None
