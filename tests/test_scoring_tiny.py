"""The tiny-random model: Qwen's real vocabulary and ids, Qwen3-VL's processor and template, a deterministic
build cached atomically."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from rankvideo_cli.errors import ModelLoadError
from rankvideo_cli.scoring import tiny
from rankvideo_cli.scoring.tiny import (
    QWEN3_VL_CHAT_TEMPLATE,
    TINY_MODEL_DIRNAME,
    build_tiny_model,
    cache_root,
    ensure_tiny_model,
)

# Qwen3-VL's tokenizer_config.json: id -> (token, special)
QWEN3_VL_ADDED = {
    151643: ("<|endoftext|>", True),
    151644: ("<|im_start|>", True),
    151645: ("<|im_end|>", True),
    151646: ("<|object_ref_start|>", True),
    151647: ("<|object_ref_end|>", True),
    151648: ("<|box_start|>", True),
    151649: ("<|box_end|>", True),
    151650: ("<|quad_start|>", True),
    151651: ("<|quad_end|>", True),
    151652: ("<|vision_start|>", True),
    151653: ("<|vision_end|>", True),
    151654: ("<|vision_pad|>", True),
    151655: ("<|image_pad|>", True),
    151656: ("<|video_pad|>", True),
    151657: ("<tool_call>", False),
    151658: ("</tool_call>", False),
    151659: ("<|fim_prefix|>", False),
    151660: ("<|fim_middle|>", False),
    151661: ("<|fim_suffix|>", False),
    151662: ("<|fim_pad|>", False),
    151663: ("<|repo_name|>", False),
    151664: ("<|file_sep|>", False),
    151665: ("<tool_response>", False),
    151666: ("</tool_response>", False),
    151667: ("<think>", False),
    151668: ("</think>", False),
}
# Qwen/Qwen3-VL-8B-Instruct's chat template (also shipped in its GGUF): 5,292 bytes with this SHA-256.
TEMPLATE_SHA256 = "3636d0f0bd6bef02654cdffdc447b79cb2cef8ab02cc75267345946291a489e4"


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_added_tokens_have_their_real_ids(tiny_loaded) -> None:
    tokenizer = tiny_loaded.processor.tokenizer
    decoder = tokenizer.added_tokens_decoder
    assert {i: (str(t), t.special) for i, t in decoder.items()} == QWEN3_VL_ADDED
    assert tokenizer.vocab_size == 151643 and len(tokenizer) == 151669
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.bos_token is None


def test_text_tokenises_as_qwen(tiny_loaded) -> None:
    tokenizer = tiny_loaded.processor.tokenizer
    ids = tokenizer("<|im_start|>user\nYes yes NO\tno<|im_end|>")["input_ids"]
    # <|im_start|> user \n Yes ' yes' ' NO' '\tno' <|im_end|>
    assert ids == [151644, 872, 198, 9454, 9834, 5664, 72104, 151645]
    text = "Café 東京 — 🐶 surfing\n\n\tdone 12345"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_model_shape_keeps_what_the_prompt_depends_on(tiny_loaded) -> None:
    config = tiny_loaded.model.config
    text, vision = config.text_config, config.vision_config
    assert tiny_loaded.model.get_input_embeddings().weight.shape[0] == 151936
    assert tiny_loaded.model.lm_head.weight.shape[0] == 151936
    assert (config.image_token_id, config.video_token_id) == (151655, 151656)
    assert (config.vision_start_token_id, config.vision_end_token_id) == (151652, 151653)
    assert (vision.patch_size, vision.temporal_patch_size, vision.spatial_merge_size) == (16, 2, 2)
    assert all(0 <= index < vision.depth for index in vision.deepstack_visual_indexes)
    assert vision.out_hidden_size == text.hidden_size
    rope = text.rope_parameters
    assert rope["mrope_interleaved"] and sum(rope["mrope_section"]) == text.head_dim // 2
    assert config.tie_word_embeddings is False


def test_processor_matches_qwen3_vl_8b_instruct(tiny_loaded, tiny_model_dir: Path) -> None:
    processor = tiny_loaded.processor
    assert type(processor).__name__ == "Qwen3VLProcessor"
    video = processor.video_processor
    assert (video.patch_size, video.temporal_patch_size, video.merge_size) == (16, 2, 2)
    assert list(video.image_mean) == [0.5, 0.5, 0.5] and list(video.image_std) == [0.5, 0.5, 0.5]
    assert video.size["shortest_edge"] == 4096 and video.size["longest_edge"] == 25165824
    image = processor.image_processor
    assert (image.patch_size, image.merge_size) == (16, 2)
    on_disk = json.loads((tiny_model_dir / "video_preprocessor_config.json").read_text())
    assert on_disk["video_processor_type"] == "Qwen3VLVideoProcessor"


def test_chat_template_is_qwen3_vl_instruct_byte_for_byte(tiny_loaded, tiny_model_dir: Path) -> None:
    for template in (QWEN3_VL_CHAT_TEMPLATE, (tiny_model_dir / "chat_template.jinja").read_text("utf-8")):
        assert len(template.encode()) == 5292
        assert hashlib.sha256(template.encode()).hexdigest() == TEMPLATE_SHA256
    assert tiny_loaded.processor.chat_template == QWEN3_VL_CHAT_TEMPLATE


def test_build_is_deterministic(tiny_model_dir: Path, tmp_path: Path) -> None:
    build_tiny_model(tmp_path / "again")
    assert _digests(tmp_path / "again") == _digests(tiny_model_dir)


def test_cache_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RANKVIDEO_CACHE", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "explicit"
    monkeypatch.delenv("RANKVIDEO_CACHE")
    assert cache_root() == tmp_path / "xdg" / "rankvideo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "rankvideo"


def test_cached_model_is_reused_without_building(tiny_model_dir: Path, monkeypatch) -> None:
    def must_not_build(_: Path) -> None:
        raise AssertionError("rebuilt a cached model")

    monkeypatch.setattr(tiny, "build_tiny_model", must_not_build)
    assert ensure_tiny_model(tiny_model_dir.parent) == tiny_model_dir
    assert tiny_model_dir.name == TINY_MODEL_DIRNAME


def test_build_goes_through_a_temporary_directory(tmp_path: Path, monkeypatch) -> None:
    seen: list[Path] = []

    def fake_build(target: Path) -> None:
        seen.append(target)
        assert target.parent == tmp_path and target.name != TINY_MODEL_DIRNAME
        assert not (tmp_path / TINY_MODEL_DIRNAME).exists()  # nothing visible while building
        (target / "config.json").write_text("{}")

    monkeypatch.setattr(tiny, "build_tiny_model", fake_build)
    assert ensure_tiny_model(tmp_path) == tmp_path / TINY_MODEL_DIRNAME
    assert [p.name for p in tmp_path.iterdir()] == [TINY_MODEL_DIRNAME]  # staging renamed, none left


def test_a_concurrent_builder_that_finished_first_wins(tmp_path: Path, monkeypatch) -> None:
    final = tmp_path / TINY_MODEL_DIRNAME

    def racing_build(target: Path) -> None:
        (target / "config.json").write_text('{"ours": true}')
        final.mkdir()
        (final / "config.json").write_text('{"theirs": true}')

    monkeypatch.setattr(tiny, "build_tiny_model", racing_build)
    assert ensure_tiny_model(tmp_path) == final
    assert json.loads((final / "config.json").read_text()) == {"theirs": True}
    assert [p.name for p in tmp_path.iterdir()] == [TINY_MODEL_DIRNAME]


def test_a_failed_build_leaves_nothing_behind(tmp_path: Path, monkeypatch) -> None:
    def failing_build(target: Path) -> None:
        (target / "half").write_text("x")
        raise RuntimeError("disk full")

    monkeypatch.setattr(tiny, "build_tiny_model", failing_build)
    with pytest.raises(RuntimeError, match="disk full"):
        ensure_tiny_model(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_incomplete_cached_directory_is_reported(tmp_path: Path) -> None:
    (tmp_path / TINY_MODEL_DIRNAME).mkdir()
    with pytest.raises(ModelLoadError, match="delete it"):
        ensure_tiny_model(tmp_path)
