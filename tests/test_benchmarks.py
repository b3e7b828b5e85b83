"""The benchmarks under benchmarks/, each checked at a small size on the CPU (their full-size results are in
benchmarks/README.md; speed is never asserted here):

- gpu_plan.py and gpu_throughput.py: shapes, FLOP accounting, memory model, a CPU smoke run of it all, and the
  Qwen3-VL-Reranker plan (its prompt lengths recomputed with rankvideo's own recipe);
- rerankers.py: the --smoke configuration (Qwen3-VL-Reranker's batched path against one pair per forward: structure
  and score agreement);
- pipeline.py: the --smoke configuration end to end (structure and score agreement; the speed ratio is measured
  and recorded in benchmarks/README.md, not tested);
- prefix_cache.py's profile: what it counts as attention (by how it was called) and linear time;
- scale.py and eval_speed.py: end to end at a small size; light_commands.py once, against HEAD (a shallow clone
  may lack the commits it compares by default).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F

from rankvideo_cli.scoring.base import PairScore
from rankvideo_cli.scoring.memory import GIB, MAX_AUTO_BATCH, QWEN3_VL_8B, auto_batch_size, shape_from_config

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load_benchmark(file: str, name: str | None = None) -> ModuleType:
    """benchmarks/FILE.py imported as the module NAME (FILE by default; pipeline.py not as "pipeline": that would
    shadow nothing today, but reads like rankvideo_cli.pipeline.score)."""
    spec = importlib.util.spec_from_file_location(name or file, BENCHMARKS / f"{file}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


gt = load_benchmark("gpu_throughput")
gp = load_benchmark("gpu_plan")  # the shapes and FLOPs the throughput run measures against
pb = load_benchmark("pipeline", "pipeline_benchmark")
pc = load_benchmark("prefix_cache", "prefix_cache_benchmark")
rr = load_benchmark("rerankers", "rerankers_benchmark")
ALL_SHAPES = {**gp.SHAPES, **gp.RERANKER_SHAPES}


# ==============================================================================================================
# benchmarks/gpu_plan.py and gpu_throughput.py
# ==============================================================================================================


def _count_by_part(model: torch.nn.Module) -> dict[str, int]:
    """Parameter counts of a built model, grouped by module path (independent of the shape arithmetic)."""
    parts = {
        "model.language_model.layers.": "lm_layers",
        "model.language_model.norm.": "lm_final_norm",
        "model.language_model.embed_tokens.": "lm_embedding",
        "lm_head.": "lm_head",
        "model.visual.patch_embed.": "vision_patch_embed",
        "model.visual.pos_embed.": "vision_position_embed",
        "model.visual.blocks.": "vision_blocks",
        "model.visual.merger.": "vision_mergers",
        "model.visual.deepstack_merger_list.": "vision_mergers",
    }
    counts: dict[str, int] = {}
    for name, parameter in model.named_parameters():
        part = next(part for prefix, part in parts.items() if name.startswith(prefix))
        counts[part] = counts.get(part, 0) + parameter.numel()
    return counts


@pytest.mark.parametrize("shape_name", ["8b", "tiny", "2b"])
def test_parameter_counts_match_a_model_built_from_the_shape(shape_name: str) -> None:
    from transformers import Qwen3VLForConditionalGeneration

    shape = ALL_SHAPES[shape_name]
    with torch.device("meta"):  # no memory: the 8B shape is only counted, never materialised
        model = Qwen3VLForConditionalGeneration._from_config(shape.config(), dtype=torch.bfloat16)
    assert _count_by_part(model) == gp.parameter_counts(shape)


def test_8b_shape_is_qwen3_vl_8b_instruct() -> None:
    config = QWEN3_VL_8B.config()
    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads) == (
        4096,
        36,
        32,
        8,
    )
    assert (text.head_dim, text.intermediate_size, text.vocab_size, text.rms_norm_eps) == (
        128,
        12288,
        151936,
        1e-6,
    )
    assert text.rope_parameters["rope_theta"] == 5e6
    assert text.rope_parameters["mrope_section"] == [24, 20, 20]
    assert text.rope_parameters["mrope_interleaved"] is True
    assert config.tie_word_embeddings is False
    assert (vision.depth, vision.hidden_size, vision.intermediate_size, vision.num_heads) == (
        27,
        1152,
        4304,
        16,
    )
    assert (vision.patch_size, vision.temporal_patch_size, vision.spatial_merge_size) == (16, 2, 2)
    assert (vision.out_hidden_size, vision.num_position_embeddings) == (4096, 2304)
    assert list(vision.deepstack_visual_indexes) == [8, 16, 24]
    assert vision.hidden_act == "gelu_pytorch_tanh"
    # about 8.77e9 parameters, 6.95e9 of them in the language model's matmuls (REFERENCE.md section 7)
    assert sum(gp.parameter_counts(QWEN3_VL_8B).values()) == pytest.approx(8.77e9, rel=2e-3)
    assert gp.lm_matmul_parameters(QWEN3_VL_8B) == pytest.approx(6.95e9, rel=1e-3)


@pytest.mark.parametrize("shape_name", ["8b", "tiny", "2b"])
def test_shape_round_trips_through_a_config(shape_name: str) -> None:
    shape = ALL_SHAPES[shape_name]
    assert shape_from_config(shape.config(), name=shape.name) == shape


def test_tiny_shape_is_rankvideos_tiny_random(tiny_model_dir: Path) -> None:
    """The smoke run's model has the dimensions of the `tiny-random` model the rest of the suite uses."""
    from transformers import AutoConfig

    assert shape_from_config(AutoConfig.from_pretrained(tiny_model_dir), name="tiny") == gp.TINY


def test_flops_per_pair_reproduce_reference_md_figures() -> None:
    shape = QWEN3_VL_8B
    grid = gp.grid_for(32, 256, 480, shape)
    assert (grid.temporal, grid.height, grid.width) == (
        16,
        16,
        30,
    )  # video_grid_thw of REFERENCE.md section 3
    assert grid.merged_tokens(shape.merge) == 1920
    flops = gp.flops_per_pair(shape, 2168, grid, pairs_per_vision_pass=1, kept_logits=1)
    # REFERENCE.md section 7: ~30 TFLOP LM, 1.4 attention, 6.3 vision blocks, ~38 in all
    assert flops["lm_matmul"] == pytest.approx(2 * 6.95e9 * 2168, rel=1e-3)
    assert flops["lm_attention"] == pytest.approx(1.4e12, rel=0.02)
    assert gp.reference_md_flops(shape, 2168, grid) == pytest.approx(38e12, rel=0.01)
    # the full count adds the mergers, the patch embedding and vision attention on top of the blocks
    assert 6.3e12 < flops["vision_matmul"] < 7.3e12
    assert flops["total"] == pytest.approx(sum(v for k, v in flops.items() if k != "total"))


def test_flops_follow_the_fast_path_savings() -> None:
    shape = QWEN3_VL_8B
    grid = gp.grid_for(32, 256, 480, shape)
    reference = gp.flops_per_pair(shape, 2168, grid, pairs_per_vision_pass=1, kept_logits=2168)
    fast = gp.flops_per_pair(shape, 2168, grid, pairs_per_vision_pass=20, kept_logits=1)
    # the LM head over every position is 2 * 4096 * 151936 * 2168 = 2.7 TFLOP of waste
    assert reference["lm_head"] - fast["lm_head"] == pytest.approx(2 * 4096 * 151936 * 2167)
    assert fast["vision_matmul"] == pytest.approx(reference["vision_matmul"] / 20)
    # "Running the vision tower once per video ... lowers it toward ~32 TFLOP" (REFERENCE.md section 7)
    assert fast["total"] == pytest.approx(32e12, rel=0.03)


def _eager_worst_case_bytes(batch: int, tokens: int) -> int:
    """Independent bound for the 8B shape in bf16: weights + the biggest transients of eager attention."""
    weights = 8.77e9 * 2
    scores = batch * 32 * tokens * tokens * (2 + 2 + 4)  # bf16 scores, bf16 probs, fp32 softmax
    mlp = batch * 4 * tokens * 12288 * 2
    kv_cache = batch * 36 * 2 * 8 * 128 * tokens * 2
    return int(weights + scores + mlp + kv_cache)


def test_auto_batch_size_is_safe_on_an_80_gb_card() -> None:
    shape, dtype, tokens = QWEN3_VL_8B, torch.bfloat16, 2200
    card = 80 * 10**9
    free_after_weights = card - gp.weight_bytes(shape, dtype) - 2**30  # minus a CUDA context
    batch = auto_batch_size(free_after_weights, tokens, shape, dtype)
    assert 4 <= batch <= MAX_AUTO_BATCH  # batching is worth it, and capped
    # even if attention fell back to materialised scores, with a KV cache on, it fits with room to spare
    assert _eager_worst_case_bytes(batch, tokens) < 0.9 * card
    # keeping logits at every position costs 3.3 GB per pair more: the rule must shrink the batch
    full_logits = auto_batch_size(free_after_weights, tokens, shape, dtype, logit_positions=tokens)
    assert 1 <= full_logits < batch
    assert full_logits * tokens * shape.vocab * (2 + 4) < free_after_weights * 0.85


def test_auto_batch_size_is_monotone_and_never_zero() -> None:
    shape, dtype = QWEN3_VL_8B, torch.bfloat16
    assert auto_batch_size(0, 2200, shape, dtype) == 1
    assert auto_batch_size(4 * GIB, 2200, shape, dtype) == 1
    sizes = [auto_batch_size(gib * GIB, 2200, shape, dtype) for gib in (8, 16, 32, 64, 128)]
    assert sizes == sorted(sizes)
    assert sizes[-1] == MAX_AUTO_BATCH
    longer = [auto_batch_size(40 * GIB, tokens, shape, dtype) for tokens in (500, 1000, 2200, 4000)]
    assert longer == sorted(longer, reverse=True)
    with pytest.raises(ValueError):
        auto_batch_size(40 * GIB, 0, shape, dtype)


def test_queries_are_distinct_and_deterministic() -> None:
    queries = gt.make_queries(20)
    assert len(set(queries)) == 20
    assert queries == gt.make_queries(20)
    assert len({len(query) for query in queries}) > 3  # varied lengths: batches need padding


def test_matmul_rate_is_measured_on_the_device() -> None:
    rate = gt.measure_matmul_tflops(torch.device("cpu"), torch.float32, size=128, repeats=3)
    assert 0 < rate < 100  # TFLOP/s: any CPU is far below this


def test_clip_and_variant_arguments_are_checked() -> None:
    assert gt.parse_clip("1280x720@24x16.5") == gt.ClipSpec(width=1280, height=720, fps=24, seconds=16.5)
    with pytest.raises(ValueError, match=r"1280x720@24x16\.5"):
        gt.parse_clip("1280x720")
    with pytest.raises(ValueError, match="unknown variant"):
        gt.apply_variant("turbo", torch.nn.Linear(1, 1), None, 1)
    options, args = gt.parse_args(["--cpu-smoke", "--variants", "none", "--queries-per-video", "2,4"])
    assert (options.shape, options.device, options.variants, options.queries_per_video) == (
        "tiny",
        "cpu",
        (),
        (2, 4),
    )
    assert args.json is None and not args.plan
    options, _ = gt.parse_args(["--batch-size", "auto", "--logits-to-keep", "off", "--compile"])
    assert (options.shape, options.batch_size, options.logits_to_keep, options.compile) == (
        "8b",
        "auto",
        False,
        True,
    )


# ------------------------------------------------------------------------------------------------------
# The whole benchmark, on the CPU, once for the module
# ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpu_smoke(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`gpu_throughput.py --cpu-smoke --json ...` run in-process; returns the JSON report and stdout."""
    import contextlib
    import io
    import json

    work = tmp_path_factory.mktemp("gpu-benchmark")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        exit_code = gt.main(["--cpu-smoke", "--work-dir", str(work), "--json", str(work / "report.json")])
    assert exit_code == 0
    report = json.loads((work / "report.json").read_text())
    return {"report": report, "stdout": stdout.getvalue()}


def _runs(report: dict) -> dict[str, dict]:
    return {f"{run['name']} q{run.get('queries_per_video')}": run for run in report["runs"]}


def test_smoke_report_has_every_run_and_figure(gpu_smoke: dict) -> None:
    report = gpu_smoke["report"]
    runs = _runs(report)
    assert list(runs) == [
        "reference q1",
        "rankvideo q1",
        "rankvideo q3",
        "rankvideo pipeline q3",
        "rankvideo attn=eager q3",
        "rankvideo sdpa_backend=math q3",
        "rankvideo logits=all q3",
        "rankvideo batch=2 q3",
    ]
    assert report["matmul_tflops"] > 0
    inputs = report["inputs"]
    grid = gp.VideoGrid(*inputs["video_grid_thw"])
    assert inputs["frames"] == 4 and inputs["videos"] == 2
    assert inputs["video_tokens_per_pair"] == grid.merged_tokens(2)
    assert report["parameters"]["total"] == sum(gp.parameter_counts(gp.TINY).values())
    for run in report["runs"]:
        assert "error" not in run, run
        assert {"decode", "preprocess_and_other", "vision", "language_model", "scoring"} <= set(run["seconds"])
        assert run["seconds"]["vision"] > 0 and run["seconds"]["language_model"] > 0
        assert run["pairs_per_s"] >= run["pairs_per_s_with_decode"] > 0
        assert run["mfu"] > 0 and run["flops_per_pair"] > 0
        assert run["peak_memory_bytes"] is None  # no CUDA: nothing invented
        assert run["predicted_peak_bytes"] > report["memory"]["weights_bytes"]
    assert runs["reference q1"]["pairs"] == 6 and runs["rankvideo q1"]["pairs"] == 2
    assert runs["rankvideo batch=2 q3"]["batch_size"] == 2
    assert "reference" in report["flops_per_pair_nominal"]
    assert report["memory"]["auto_batch_size"] >= 1


def test_smoke_paths_do_what_they_claim(gpu_smoke: dict) -> None:
    """The executed-FLOP accounting shows the structure of each path: vision passes and LM-head positions."""
    runs = _runs(gpu_smoke["report"])
    head_per_position = 2.0 * gp.TINY.text_hidden * gp.TINY.vocab
    reference, fast = runs["reference q1"], runs["rankvideo q3"]
    # reference: the vision tower once per pair, logits at every prompt position
    assert reference["vision_calls"] == reference["pairs"]
    assert reference["flops"]["lm_head"] == pytest.approx(
        head_per_position * reference["prompt_tokens_mean"] * reference["pairs"]
    )
    # rankvideo: once per video, the last position only, 3 queries in one forward per video
    assert fast["vision_calls"] == 2 and fast["lm_calls"] == 2
    assert fast["flops"]["lm_head"] == pytest.approx(head_per_position * fast["pairs"])
    assert fast["flops"]["lm_matmul"] == pytest.approx(reference["flops"]["lm_matmul"])
    assert fast["flops_per_pair"] < reference["flops_per_pair"]
    # logits=all computes the head at every position again (padding included)
    assert runs["rankvideo logits=all q3"]["flops"]["lm_head"] >= reference["flops"]["lm_head"]
    # batch=2 over 3 queries: two forwards per video
    assert runs["rankvideo batch=2 q3"]["lm_calls"] == 4
    # the pipeline decodes from the files in threads (decode time overlapped) and scores video by video
    pipeline = runs["rankvideo pipeline q3"]
    assert pipeline["vision_calls"] == 2 and pipeline["pairs"] == 6
    assert pipeline["decode_workers"] >= 1 and pipeline["seconds"]["decode"] > 0
    assert pipeline["pairs_per_s"] == pipeline["pairs_per_s_with_decode"]


def test_smoke_fast_path_scores_equal_reference_scores(gpu_smoke: dict) -> None:
    for run in gpu_smoke["report"]["runs"]:
        if "agreement" not in run:
            continue
        agreement = run["agreement"]
        assert agreement["pairs"] == 6
        assert agreement["max_abs_logit_delta"] < 1e-4, run["name"]
        assert agreement["max_abs_logprob_yes"] < 1e-4, run["name"]
        assert agreement["max_abs_logprob_no"] < 1e-4, run["name"]
        # the comparison has teeth: the scores themselves differ across pairs far more than the tolerance
        assert agreement["reference_logit_delta_spread"] > 1e-2
    assert sum("agreement" in run for run in gpu_smoke["report"]["runs"]) == 6


def test_smoke_prints_the_summary_table(gpu_smoke: dict) -> None:
    out = gpu_smoke["stdout"]
    assert out.startswith("GPU throughput: ")
    assert gt.RUN_HEADER in out
    assert "rankvideo vs reference over 6 pairs: max |d logit_delta|" in out
    assert "auto batch size:" in out
    assert out.count("\nrankvideo ") >= 7


def test_plan_needs_no_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert gt.main(["--plan", "--json", str(tmp_path / "plan.json")]) == 0
    result = json.loads((tmp_path / "plan.json").read_text())
    assert result["video_tokens"] == 1920 and result["prompt_tokens"] == 2168
    flops = result["flops_per_pair"]
    order = ["reference", "rankvideo_q1", "rankvideo_q5", "rankvideo_q20"]
    assert set(flops) == set(order)
    totals = [flops[name]["total"] for name in order]
    assert totals == sorted(totals, reverse=True)  # each saving shows
    # floor = FLOPs / assumed rate
    assert result["floor_ms_per_pair"]["reference"] == pytest.approx(flops["reference"]["total"] / 790e12 * 1e3)
    prompts = result["prompts"]
    rows = {(row["queries_per_video"], row["prompt"], row["prefix_cache"]): row for row in prompts["rows"]}
    assert {count for count, _, _ in rows} == {1.0, 2.3, 10.0, 23.0} and len(rows) == 12
    for count in (1.0, 2.3, 10.0, 23.0):
        inference = rows[(count, "inference", False)]["tflop_per_pair"]
        # the training prompt is 47 tokens shorter; without reuse it costs what the inference prompt costs
        assert rows[(count, "training", False)]["tflop_per_pair"] == pytest.approx(inference, rel=0.03)
    reused = [rows[(count, "training", True)]["pairs_per_s"] for count in (1.0, 2.3, 10.0, 23.0)]
    assert reused == sorted(reused)
    # one query per video: nothing to share; 2.3 halves the work; 23 cuts it more than tenfold
    assert rows[(1.0, "training", True)]["tflop_per_pair"] == pytest.approx(
        rows[(1.0, "training", False)]["tflop_per_pair"], rel=0.01
    )
    assert rows[(2.3, "training", False)]["tflop_per_pair"] / rows[(2.3, "training", True)]["tflop_per_pair"] > 1.8
    assert rows[(23.0, "training", False)]["tflop_per_pair"] / rows[(23.0, "training", True)]["tflop_per_pair"] > 10
    assert 300e6 < prompts["prefix_cache_bytes"] < 320e6
    assert result["auto_batch_size"]["24GB"] == 1  # 16.3 GiB of weights leave room for one pair only
    out = capsys.readouterr().out
    assert "ASSUMED rate, not measured" in out
    assert "80GB card -> " in out


# ------------------------------------------------------------------------------------------------------
# Qwen3-VL-Reranker in the plan (issue 35)
# ------------------------------------------------------------------------------------------------------


def test_2b_shape_counts_its_tied_head_once() -> None:
    shape = gp.QWEN3_VL_2B
    config = shape.config()
    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads) == (
        2048,
        28,
        16,
        8,
    )
    assert (text.head_dim, text.intermediate_size, text.vocab_size) == (128, 6144, 151936)
    assert (vision.depth, vision.hidden_size, vision.intermediate_size, vision.num_heads) == (24, 1024, 4096, 16)
    assert (vision.out_hidden_size, list(vision.deepstack_visual_indexes)) == (2048, [5, 11, 17])
    counts = gp.parameter_counts(shape)
    assert gp.weight_bytes(shape, torch.bfloat16) == 2 * (sum(counts.values()) - counts["lm_head"])
    assert gp.weight_bytes(QWEN3_VL_8B, torch.bfloat16) == 2 * sum(gp.parameter_counts(QWEN3_VL_8B).values())
    assert 2.0e9 < sum(counts.values()) - counts["lm_head"] < 2.3e9  # a "2B" model


def _reranker_prompt_ids(processor, sampling, fit: bool) -> tuple[tuple[int, int], int, list[int]]:
    """(frame size, video tokens, prompt ids per query) of the plan's 70 s 1280x720 1 fps video, through rankvideo's
    own Qwen3-VL-Reranker recipe (the placeholder from the processor's own expansion; no pixels needed)."""
    import dataclasses

    from transformers.video_utils import VideoMetadata

    from rankvideo_cli.scoring.options import ScorerOptions
    from rankvideo_cli.scoring.prompt import VideoInputs
    from rankvideo_cli.scoring.rerankers import get_reranker
    from rankvideo_cli.videos.sampling import output_size, sample_count, sample_indices, video_tokens

    config = sampling if fit else dataclasses.replace(sampling, fit_total_pixels=None)
    total = gp.RERANKER_SOURCE_SECONDS  # 1 fps: one frame a second
    count = sample_count(total, 1.0, config)
    size = output_size(gp.RERANKER_SOURCE_HEIGHT, gp.RERANKER_SOURCE_WIDTH, count, config)
    grid = torch.tensor([[count // 2, size[0] // 16, size[1] // 16]])
    metadata = VideoMetadata(total_num_frames=total, fps=1.0, frames_indices=sample_indices(total, count))
    placeholder = processor.replace_video_token({"video_grid_thw": grid, "video_metadata": [metadata]}, video_idx=0)
    inputs = VideoInputs(pixel_values_videos=torch.empty(0), video_grid_thw=grid, placeholder=placeholder)
    recipe = get_reranker("qwen3-vl-reranker").build_recipe(processor, ScorerOptions(reranker="qwen3-vl-reranker"))
    batch = recipe.prompt_batch([gp.RERANKER_QUERY, "the election results in Ohio"], inputs)
    return size, video_tokens(count, size, config), batch.attention_mask.sum(dim=1).tolist()


def test_reranker_plan_prompts_are_the_recipes(tiny_loaded) -> None:
    """The plan's prompt lengths are what rankvideo's recipe builds for the plan's video (and, unfitted, what the
    reference's own run measured: 23,112 ids after its cut, REFERENCE.md section 11)."""
    from rankvideo_cli.scoring.rerankers import get_reranker

    sampling = get_reranker("qwen3-vl-reranker").sampling
    shapes = gp.reranker_video_shapes()
    size, tokens, ids = _reranker_prompt_ids(tiny_loaded.processor, sampling, fit=False)
    assert (size, tokens) == ((640, 1152), 23040)
    assert list(size) == shapes["unfitted"]["frame_size"] and tokens == shapes["unfitted"]["video_tokens"]
    # the cut keeps every special id: every query's prompt is the same length, the query gone
    assert ids == [gp.RERANKER_REFERENCE_PROMPT_TOKENS] * 2
    size, tokens, ids = _reranker_prompt_ids(tiny_loaded.processor, sampling, fit=True)
    assert (size, tokens) == ((352, 640), 7040) and tokens <= 7680
    assert list(size) == shapes["fitted"]["frame_size"] and tokens == shapes["fitted"]["video_tokens"]
    assert ids[0] == gp.RERANKER_FITTED_PROMPT_TOKENS and ids[1] != ids[0]  # nothing cut: the query counts
    assert shapes["unfitted"]["frames"] == shapes["fitted"]["frames"] == 64


def test_reranker_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert gt.main(["--plan", "--json", str(tmp_path / "plan.json")]) == 0
    result = json.loads((tmp_path / "plan.json").read_text())["rerankers"]
    assert set(result["models"]) == {"RankVideo 8B", "Qwen3-VL-Reranker-2B", "Qwen3-VL-Reranker-8B"}
    rows: dict[tuple[str, str, str, float], dict] = {
        (row["model"], row["video"], row["path"], row["queries_per_video"]): row for row in result["rows"]
    }
    assert len(rows) == len(result["rows"]) == 4 + 5 + 5
    # RankVideo's rows are the plan above's
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert rows[("RankVideo 8B", "rankvideo", "reference", 1.0)]["flops_per_pair"]["total"] == pytest.approx(
        plan["flops_per_pair"]["reference"]["total"]
    )
    for model in ("Qwen3-VL-Reranker-2B", "Qwen3-VL-Reranker-8B"):
        unfit = rows[(model, "unfitted", "reference", 1.0)]
        fit = rows[(model, "fitted", "reference", 1.0)]
        batched = [rows[(model, "fitted", "rankvideo", q)] for q in (1.0, 2.3, 10.0)]
        assert unfit["prompt_tokens"] == 23112 and fit["prompt_tokens"] == 7395
        # fitting cuts the work about fourfold; one query per video gains nothing from batching; more do
        assert fit["pairs_per_s"] / unfit["pairs_per_s"] > 3.5
        assert batched[0]["tflop_per_pair"] == pytest.approx(fit["tflop_per_pair"], rel=1e-4)
        assert [row["pairs_per_s"] for row in batched] == sorted(row["pairs_per_s"] for row in batched)
        assert batched[2]["pairs_per_s"] > 1.15 * fit["pairs_per_s"]
        # the reference reads one row of the head; rankvideo also the LM head's log-probabilities
        assert (
            unfit["flops_per_pair"]["lm_head"] == 2 * gp.RERANKER_SHAPES[result["models"][model]["shape"]].text_hidden
        )
        # one pair per forward for the reference; the memory without the T x T scores is far below the bound
        assert unfit["pairs_per_forward"] == {"80GB": 1, "141GB": 1}
        assert unfit["predicted_peak_without_scores_bytes"][0] < 0.5 * unfit["predicted_peak_bytes"][0]
        assert all(1 <= count <= 10 for row in batched for count in row["pairs_per_forward"].values())
        # a padded batch through a masked kernel pays the whole attention square: one pair per forward does not
        assert unfit["pairs_per_s_padded_square"] == unfit["pairs_per_s"]
        assert batched[0]["pairs_per_s_padded_square"] == batched[0]["pairs_per_s"]
        for row in batched[1:]:
            assert fit["pairs_per_s"] * 0.99 < row["pairs_per_s_padded_square"] < row["pairs_per_s"]
    small, large = (rows[(m, "fitted", "rankvideo", 2.3)] for m in ("Qwen3-VL-Reranker-2B", "Qwen3-VL-Reranker-8B"))
    assert small["pairs_per_s"] > 3 * large["pairs_per_s"]
    assert result["models"]["Qwen3-VL-Reranker-2B"]["tied_embeddings"] is True
    assert result["models"]["Qwen3-VL-Reranker-2B"]["weights_bytes"] == pytest.approx(4.0 * GIB, rel=0.03)
    out = capsys.readouterr().out
    section = out[out.index("Qwen3-VL-Reranker at MultiVENT's shapes") :]
    assert max(len(line) for line in section.splitlines()) <= 80
    assert "ASSUMED rate, not measured" in section
    assert section.count("  fit   rankvideo ") == 6 and section.count("  unfit reference ") == 2


# ==============================================================================================================
# benchmarks/pipeline.py
# ==============================================================================================================


@pytest.fixture(scope="module")
def pipeline_smoke(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`pipeline.py --smoke --json ...` in-process (the tiny model comes from the session cache)."""
    work = tmp_path_factory.mktemp("pipeline-benchmark")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        exit_code = pb.main(["--smoke", "--cache-dir", str(work / "clips"), "--json", str(work / "report.json")])
    assert exit_code == 0
    return {"report": json.loads((work / "report.json").read_text()), "stdout": stdout.getvalue()}


def test_smoke_report_structure(pipeline_smoke: dict) -> None:
    report = pipeline_smoke["report"]
    assert report["options"]["smoke"] is True
    assert report["pairs"] == 6 and report["queries_per_video"] == 3
    assert len(report["videos"]) == 2
    for video in report["videos"]:
        assert video["sampled_frames"] >= 4 and video["sampled_frames"] % 2 == 0
        assert video["video_tokens"] > 0
    assert report["videos"][0]["name"].startswith("carphone_distorted.mp4")  # a real clip, not only synthesized
    assert report["model"]["model"] == "tiny-random" and report["model"]["dtype"] == "float32"
    assert {"cpu", "cores", "torch", "transformers", "pyav"} <= set(report["machine"])
    assert report["decode_workers"] >= 1
    assert report["ways"] == ["reference", "reference_last_position", "pipeline"]
    (record,) = report["rounds"]
    seconds = record["seconds"]
    for name in ("reference", "reference_last_position"):
        # each reference way decodes for every pair and scores every pair; both are measured, nothing invented
        assert seconds[name]["decode"] > 0 and seconds[name]["scoring"] > 0
        assert seconds[name]["wall"] >= seconds[name]["decode"] + seconds[name]["scoring"] - 1e-6
        assert record["ratio"][name] == pytest.approx(seconds[name]["wall"] / seconds["pipeline"]["wall"])
        assert report["ratio"][name] == record["ratio"][name]
    pipeline = seconds["pipeline"]
    assert pipeline["wall"] > 0 and pipeline["decode_threads"] > 0 and pipeline["scoring"] > 0
    for name, per_s in record["pairs_per_s"].items():
        assert per_s == pytest.approx(6 / seconds[name]["wall"])
    assert report["pairs_per_s"] == record["pairs_per_s"]


def test_smoke_scores_agree(pipeline_smoke: dict) -> None:
    agreements = pipeline_smoke["report"]["agreement"]
    assert set(agreements) == {"reference", "reference_last_position"}
    for agreement in agreements.values():
        assert agreement["pairs"] == 6
        for field in ("logit_delta", "p_yes", "logprob_yes", "logprob_no"):
            assert agreement[f"max_abs_{field}"] < 1e-4, field
        # the comparison has teeth: the scores differ across pairs far more than the tolerance
        assert agreement["reference_logit_delta_spread"] > 1e-2


def test_smoke_prints_the_summary(pipeline_smoke: dict) -> None:
    out = pipeline_smoke["stdout"]
    assert out.startswith("machine: ")
    assert "6 pairs: 2 videos x 3 queries per video" in out
    assert "ratio pipeline / reference way: " in out
    assert "ratio pipeline / reference way, last-position logits: " in out
    assert "pipeline vs reference way over 6 pairs: max |d logit_delta|" in out


def _score(delta: float) -> PairScore:
    return PairScore.from_logprobs(-1.0 + delta, -1.0)


def test_agreement_compares_the_same_pairs() -> None:
    reference = {("q1", "v1"): _score(0.5), ("q2", "v1"): _score(-0.5)}
    nearly = {("q2", "v1"): _score(-0.5), ("q1", "v1"): _score(0.5 + 3e-7)}  # order does not matter
    deltas = pb.agreement(nearly, reference)
    assert deltas["pairs"] == 2
    assert deltas["max_abs_logit_delta"] == pytest.approx(3e-7, abs=1e-9)
    with pytest.raises(AssertionError, match="scored 1 pairs"):
        pb.agreement({("q1", "v1"): _score(0.5)}, reference)


def test_arguments() -> None:
    options, args = pb.parse_args(["--smoke"])
    assert (options.videos, options.queries_per_video, options.smoke) == (2, 3, True)
    assert args.json is None
    options, _ = pb.parse_args([])
    assert (options.videos, options.queries_per_video, options.rounds, options.last_position) == (6, 10, 1, True)
    assert pb.parse_args(["--no-last-position"])[0].last_position is False
    with pytest.raises(ValueError, match="--videos"):
        pb.run_benchmark(pb.Options(videos=len(pb.VIDEO_SOURCES) + 1))


# ==============================================================================================================
# benchmarks/rerankers.py
# ==============================================================================================================


@pytest.fixture(scope="module")
def reranker_smoke(tiny_loaded, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`rerankers.py --smoke` in-process, on the session's tiny-random (not modified by it)."""
    work = tmp_path_factory.mktemp("reranker-benchmark")
    options, _ = rr.parse_args(["--smoke", "--cache-dir", str(work / "clips")])
    report = rr.run_benchmark(options, loaded=tiny_loaded)
    return {"report": json.loads(json.dumps(report, default=str)), "text": rr.format_report(report)}


def test_reranker_smoke_report(reranker_smoke: dict) -> None:
    report = reranker_smoke["report"]
    assert report["reranker"] == "qwen3-vl-reranker" and report["model"]["reranker"] == "qwen3-vl-reranker"
    assert report["model"]["model"] == "tiny-random" and report["model"]["dtype"] == "float32"
    assert report["clips"]["count"] == 4 and report["clips"]["video_tokens"] > 0
    assert [row["queries_per_video"] for row in report["rows"]] == [1.0, 3.0]
    for row in report["rows"]:
        pairs, videos = row["pairs"], row["videos"]
        assert pairs == sum(row["query_counts"])
        reference, batched = row["stages"]["reference"], row["stages"]["rankvideo"]
        # the reference runs the vision tower and the backbone once per pair; rankvideo once per video
        assert reference["vision_calls"] == reference["lm_calls"] == pairs
        assert batched["vision_calls"] == batched["lm_calls"] == videos
        assert reference["prompt_tokens_mean"] == pytest.approx(batched["prompt_tokens_mean"])
        for stage in (reference, batched):
            assert stage["seconds"]["total"] >= stage["seconds"]["vision"] + stage["seconds"]["language_model"]
        assert row["speedup"] == pytest.approx(row["pairs_per_s"]["rankvideo"] / row["pairs_per_s"]["reference"])
        assert row["flop_model_speedup"] >= row["flop_model_speedup_padded_square"] > 0
        # the scores agree, and the comparison has teeth: they differ across pairs far more than the tolerance
        assert row["agreement"]["pairs"] == pairs
        assert row["agreement"]["max_abs_logit"] < 1e-5 and row["agreement"]["max_abs_p_yes"] < 1e-5
        assert row["agreement"]["reference_logit_spread"] > 1e-2
    assert report["reference_prompts_cut"] == 0
    text = reranker_smoke["text"]
    assert text.startswith("machine: ")
    assert "| queries per video | pairs | pairs/s reference | pairs/s rankvideo |" in text


def test_reranker_benchmark_fails_loudly_when_scores_differ() -> None:
    rows = [{"queries_per_video": 2.3, "agreement": {"max_abs_logit": 2e-5, "max_abs_p_yes": 1e-7}}]
    with pytest.raises(AssertionError, match="differ from the reference's"):
        rr.check_agreement(rows)
    rr.check_agreement([{"queries_per_video": 1.0, "agreement": {"max_abs_logit": 9e-6, "max_abs_p_yes": 0.0}}])


def test_reranker_benchmark_arguments_and_workloads() -> None:
    options, args = rr.parse_args([])
    assert (options.clip, options.queries_per_video, options.repeats) == ("640x360@8x70", (1.0, 2.3, 10.0), 1)
    assert args.json is None
    options, _ = rr.parse_args(["--smoke", "--queries-per-video", "1,4", "--batch-size", "2"])
    assert (options.smoke, options.queries_per_video, options.batch_size) == (True, (1.0, 4.0), 2)
    counts = rr.workload(2.3)
    assert len(counts) == 10 and sum(counts) / len(counts) == pytest.approx(2.3) and set(counts) == {2, 3}
    assert rr.workload(10.0) == [10] and rr.workload(4.0) == [4, 4]
    pool = gt.make_queries(rr.QUERY_POOL)
    assert len(set(rr.queries_for(0, 10, pool))) == 10 and rr.queries_for(0, 3, pool) != rr.queries_for(1, 3, pool)


# ==============================================================================================================
# benchmarks/prefix_cache.py
# ==============================================================================================================


def test_op_seconds_sorts_attention_by_how_it_was_called_and_restores_torch() -> None:
    attention, linear = F.scaled_dot_product_attention, F.linear
    query = torch.randn(1, 2, 16, 8)
    mask = torch.ones(16, 16, dtype=torch.bool).tril()
    with pc.op_seconds() as seconds:
        masked = F.scaled_dot_product_attention(query, query, query, attn_mask=mask)
        causal = F.scaled_dot_product_attention(query, query, query, is_causal=True)
        F.scaled_dot_product_attention(query, query, query)
        F.linear(query, torch.randn(4, 8))
    assert set(seconds) == {"attention_masked", "attention_causal", "attention_plain", "linear"}
    assert all(value > 0 for value in seconds.values())
    # the wrappers return what torch returns, and are gone afterwards
    torch.testing.assert_close(masked, causal)
    assert F.scaled_dot_product_attention is attention and F.linear is linear


def test_op_seconds_restores_torch_when_the_block_fails() -> None:
    attention = F.scaled_dot_product_attention
    with pytest.raises(RuntimeError, match="boom"), pc.op_seconds():
        raise RuntimeError("boom")
    assert F.scaled_dot_product_attention is attention


def test_masked_vs_causal_attention_times_both_calls() -> None:
    result = pc.masked_vs_causal_attention(2, 2, 32, 8, repeats=1)
    assert result["shape"] == [2, 2, 32, 8]
    assert result["masked_s"] > 0 and result["causal_s"] > 0
    assert result["ratio"] == pytest.approx(result["masked_s"] / result["causal_s"])


def test_attention_share_is_the_flop_models() -> None:
    flops = pc.lm_flops(pc.QWEN3_VL_8B, 2121, kept_logits=1)
    share = pc.attention_share(pc.QWEN3_VL_8B, 2121)
    assert share == pytest.approx(flops["lm_attention"] / sum(flops.values()))
    # the 8B model's attention is a small share at ~2.1k tokens, the mid shape's a larger one at ~1.1k
    assert 0.03 < share < 0.06
    assert 0.10 < pc.attention_share(pc.MID, 1095) < 0.20


# ==============================================================================================================
# benchmarks/scale.py and eval_speed.py
# ==============================================================================================================


def test_scale_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    command = [sys.executable, str(BENCHMARKS / "scale.py"), "--queries", "40", "--depth", "150"]
    subprocess.run([*command, "--store-pairs", "2000", "--json", str(out)], check=True, capture_output=True)
    results = json.loads(out.read_text())
    assert results["lines"] == 40 * 150 - 150  # one query in a hundred is judged but never retrieved
    assert results["results"]["phases"]["store_pairs"] == 39 * 51
    assert {"rerank", "dry_run", "merge"} <= set(results["results"])


def test_eval_speed_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    command = [sys.executable, str(BENCHMARKS / "eval_speed.py"), "--queries", "30", "--depth", "50"]
    subprocess.run([*command, "--repeats", "1", "--json", str(out)], check=True, capture_output=True)
    results = json.loads(out.read_text())
    assert results["lines"] == 30 * 50 - 50
    assert set(results["ratios"]) == {"wall", "peak_rss", "sample_wall"}


# --------------------------------------------------------------------------------------------------
# benchmarks/light_commands.py
# --------------------------------------------------------------------------------------------------


def test_light_commands_benchmark_smoke(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Once against HEAD's tree: both trees' reruns answer every pair from the store (the benchmark stops
    otherwise), and every figure and target is reported."""
    out = tmp_path / "light.json"
    command = [sys.executable, str(BENCHMARKS / "light_commands.py"), "--base", "HEAD", "--frames-base", "HEAD"]
    completed = subprocess.run([*command, "--repeats", "1", "--json", str(out)], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-2000:]
    results = json.loads(out.read_text())
    assert set(results["medians"]) == {"stored_rerun", "frames", "eval_baseline", "ir_measures"}
    assert set(results["medians"]["frames"]) == {"base", "current", "frames_base"}
    assert all(figures["wall_s"] > 0 for by_tree in results["medians"].values() for figures in by_tree.values())
    assert set(results["speedup_over_base"]) == {"stored_rerun", "frames", "eval_baseline", "frames_over_frames_base"}
    assert set(results["targets_met"]) == {"stored_rerun", "frames", "eval_baseline"}
    assert "eval --baseline / ir_measures" in completed.stdout
