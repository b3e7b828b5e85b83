"""`rankvideo explain`: the model's answer as text and as JSON lines, with the pair's score (generation itself:
test_scoring_generate.py)."""

from __future__ import annotations

import json

from helpers import FAKE, assert_refused, invoke
from test_scoring_generate import QUERIES, VIDEO
from typer.testing import CliRunner

from rankvideo_cli.cli import app


def test_explain_command_prints_text_and_json_lines(tiny_model_dir):
    args = ["explain", "-q", QUERIES[0], str(VIDEO), "--model", "tiny-random", "--max-new-tokens", "5"]
    as_text = CliRunner().invoke(app, args)
    assert as_text.exit_code == 0, as_text.output
    assert as_text.stdout.startswith(f"== {VIDEO}\nlogit_delta ")
    assert "(length, 5 tokens)" in as_text.stdout
    as_json = CliRunner().invoke(app, [*args, "--json"])
    assert as_json.exit_code == 0, as_json.output
    row = json.loads(as_json.stdout)
    scored = json.loads(
        CliRunner().invoke(app, ["score", "-q", QUERIES[0], str(VIDEO), "--model", "tiny-random", "--json"]).stdout
    )
    assert row["logit_delta"] == scored["logit_delta"]
    assert (row["tokens"], row["finish_reason"], row["generation"]) == (
        5,
        "length",
        {"greedy": True, "max_new_tokens": 5},
    )
    refused = CliRunner().invoke(app, [*args, "--seed", "3"])
    assert refused.exit_code == 2 and "give a temperature too" in refused.stderr


def test_the_fake_scorer_is_refused_before_anything_loads(no_model) -> None:
    refused = invoke("explain", VIDEO, "-q", "a dog", "--model", FAKE)
    assert_refused(refused, f"--model {FAKE}: the fake scorer writes no explanation")
