"""A model's chat template, read from its files and rendered as its processor renders it, without transformers
(which imports torch, 2 s and half a gigabyte): what a fingerprint needs of the processor, since the prompt hash
is a hash of the probe prompt the template renders.

Both halves follow transformers 5's `ProcessorMixin` and are held equal to it by tests (`TemplateProcessor`
against the loaded processor for every prompt rankvideo renders, on tiny-random and hub cache snapshots):

- which template: `processor_config.json`'s `chat_template` key, else the legacy `chat_template.json`, else
  `chat_template.jinja` (the default) beside `additional_chat_templates/*.jinja` (named ones);
- how it renders (`transformers.utils.chat_template_utils`): a sandboxed Jinja2 environment with `trim_blocks`,
  `lstrip_blocks`, loop controls and the `{% generation %}` tag, the `tojson` filter that does not escape HTML,
  and the globals `raise_exception`, `strftime_now`, `dict` and `namespace`; messages without their None values.

The processor also passes its tokenizer's named special tokens (`bos_token`, `eos_token`...) to the template;
a template that reads one of them is not rendered here (`template_for` returns None, and the model loads).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

LEGACY_TEMPLATE_FILE = "chat_template.json"
TEMPLATE_FILE = "chat_template.jinja"
TEMPLATE_DIR = "additional_chat_templates"
PROCESSOR_CONFIG = "processor_config.json"
# what transformers' processor passes the template from its tokenizer (`special_tokens_map`)
TOKENIZER_TEMPLATE_VARIABLES = frozenset(
    {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}
)


def processor_chat_template(directory: Path) -> str | dict[str, str] | None:
    """The chat template(s) the Qwen3-VL processor loads from `directory` (transformers 5's rules, above)."""
    config_path = directory / PROCESSOR_CONFIG
    if config_path.is_file():
        in_config = json.loads(config_path.read_text(encoding="utf-8")).get("chat_template")
        if in_config is not None:
            return in_config  # JSON: a template, or templates by name
    named = {path.stem: path.read_text(encoding="utf-8") for path in sorted((directory / TEMPLATE_DIR).glob("*.jinja"))}
    legacy = directory / LEGACY_TEMPLATE_FILE
    if legacy.is_file():
        if named:
            return None  # transformers refuses the mix: loading says so
        return str(json.loads(legacy.read_text(encoding="utf-8"))["chat_template"])
    templates = dict(named)
    if (directory / TEMPLATE_FILE).is_file():
        templates["default"] = (directory / TEMPLATE_FILE).read_text(encoding="utf-8")
    if list(templates) == ["default"]:
        return templates["default"]
    return templates or None


def template_for(directory: Path) -> str | None:
    """The template `processor.apply_chat_template` renders by default, where it can be rendered here: None when
    the processor has none, has several without a default, or reads the tokenizer's special tokens."""
    found = processor_chat_template(directory)
    if isinstance(found, dict):
        found = found.get("default")
    if not isinstance(found, str):
        return None
    import jinja2.meta

    undeclared = jinja2.meta.find_undeclared_variables(_environment().parse(found))
    return None if undeclared & TOKENIZER_TEMPLATE_VARIABLES else found


class TemplateProcessor:
    """What a reranker's recipe reads of a processor to render its prompt (`apply_chat_template`), from the
    model's template alone: a recipe built on it gives the loaded recipe's `prompt_hash` and
    `fingerprint_fields` (its token ids and scores need the real processor)."""

    def __init__(self, template: str) -> None:
        self.chat_template = template
        self._compiled = _environment().from_string(template)

    def apply_chat_template(
        self, conversation: list[dict[str, Any]], *, tokenize: bool = False, add_generation_prompt: bool = False
    ) -> str:
        if tokenize:
            raise ValueError("a TemplateProcessor renders text only; tokenizing needs the model's processor")
        messages = [
            {key: _plain(value) for key, value in message.items() if value is not None} for message in conversation
        ]
        return self._compiled.render(
            messages=messages, tools=None, documents=None, add_generation_prompt=add_generation_prompt
        )


def _plain(value: Any) -> Any:
    """A copy of the message made of plain JSON types, as transformers gives the template (rankvideo's messages
    hold nothing else)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _environment() -> Any:
    """transformers' sandboxed template environment (`_cached_compile_jinja_template`), minus the assistant-mask
    tracking, which never changes the text."""
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationTag(jinja2.ext.Extension):
        """`{% generation %}...{% endgeneration %}` renders its body (transformers records where it is)."""

        tags = {"generation"}  # noqa: RUF012  # jinja2 declares it so

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller: Any) -> str:
            return str(caller())

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        value: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False
    ) -> str:
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    class TemplateDict:
        def __call__(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
            return dict(*args, **kwargs)

        def fromkeys(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
            return dict.fromkeys(*args, **kwargs)

    class TemplateNamespace(jinja2.utils.Namespace):
        """A namespace that refuses underscore names, as transformers' does (a template that sets one fails)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            attrs = dict(*args, **kwargs)
            for name in attrs:
                TemplateNamespace.check_name(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name: str, value: Any) -> None:
            TemplateNamespace.check_name(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def check_name(name: Any) -> None:
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(f"a chat template cannot set {name!r} on a namespace")

    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, jinja2.ext.loopcontrols]
    )
    environment.filters["tojson"] = tojson
    environment.globals["raise_exception"] = raise_exception
    environment.globals["strftime_now"] = lambda format: datetime.now().strftime(format)
    environment.globals["dict"] = TemplateDict()
    environment.globals["namespace"] = TemplateNamespace
    return environment
