"""Tests of benchmarks/gpu_suite.sh and benchmarks.full_length on CPU.

The suite runs once at a tiny setting (module fixture): attention speed at
L = 64 in bfloat16 (linear, jax.nn.dot_product_attention xla and cudnn), 3
training steps of preset=macformer on a 64-example ListOps draw at L = 64.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from benchmarks import full_length
from benchmarks import lra_table
from benchmarks import make_report

REPO = pathlib.Path(__file__).resolve().parents[1]

TINY = {
  "SUITE_REQUIRE_GPU": "0",
  "SUITE_LENGTHS": "64",
  "SUITE_DTYPES": "bfloat16",
  "SUITE_VARIANTS": "linear,dpa_xla,dpa_cudnn",
  "SUITE_REPEATS": "1",
  "SUITE_ATTENTIONS": "softmax",
  "SUITE_STEPS": "3",
  "SUITE_TOTAL_S": "600",
  "SUITE_DATA_SIZES": (
    "num_train=64,num_val=32,num_test=32,min_length=20,"
    "max_length=60,max_depth=4"
  ),
  "SUITE_FLAGS": (
    "--config.data.max_len=64 --config.train.eval_frequency=3"
    " --config.optimizer.warmup_steps=2"
  ),
}


def _env(tmp_path, **extra):
  env = dict(
    os.environ,
    SUITE_OUT=str(tmp_path / "docs"),
    SUITE_WORKDIR=str(tmp_path / "runs"),
    PYTHON=sys.executable,
    JAX_PLATFORMS="cpu",
    XLA_FLAGS="",
  )  # one CPU device
  env.update(extra)
  return env


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
  tmp_path = tmp_path_factory.mktemp("gpu_suite")
  proc = subprocess.run(
    ["bash", str(REPO / "benchmarks" / "gpu_suite.sh")],
    env=_env(tmp_path, **TINY),
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  return tmp_path, proc


def test_suite_runs_every_stage_and_writes_json(suite):
  tmp_path, proc = suite
  assert proc.returncode == 0, proc.stdout + proc.stderr
  docs = tmp_path / "docs"
  summary = json.loads((docs / "gpu_suite.json").read_text())
  assert summary["device"] == "cpu:cpu" and summary["status"] == 0
  stages = {s["stage"]: s for s in summary["stages"]}
  assert list(stages) == [
    "attention_speed_bfloat16",
    "listops_data",
    "listops_softmax",
  ]
  assert all(s["rc"] == 0 for s in stages.values())

  speed = json.loads((docs / "gpu_attention_speed_bfloat16.json").read_text())
  assert speed["shapes"]["dtype"] == "bfloat16"
  (row,) = speed["rows"]
  assert row["length"] == 64
  for name in ("linear", "dpa_xla"):
    assert row[name]["median_ms"] > 0
  # No cuDNN on a CPU: recorded, not raised, and not timed.
  assert "dpa_cudnn" not in row and "dpa_cudnn" in row["errors"]

  progress = json.loads(
    (docs / "results" / "gpu_listops_softmax.json").read_text()
  )
  assert progress["preset"] == "macformer"
  assert progress["tokenizer"] == "legacy_alnum"  # the preset's
  assert progress["preset_steps"] == 10000
  assert progress["num_train_steps"] == 3 and progress["steps_done"] == 3
  assert progress["finished"] and progress["checkpoint_step"] == 3
  assert progress["eval_curve"][-1][0] == 3
  assert 0.0 <= progress["test_accuracy"] <= 1.0
  (session,) = progress["sessions"]
  assert session["rc"] == 0 and not session["cut_by_budget"]


def test_rerun_keeps_a_finished_run_and_its_sessions(suite):
  tmp_path, _ = suite
  out = tmp_path / "docs" / "results"
  rc = full_length.main(
    [
      "run",
      "--attentions",
      "softmax",
      "--workdir",
      str(tmp_path / "runs"),
      "--out",
      str(out),
      "--prefix",
      "gpu_listops_",
    ]
  )
  assert rc == 0
  progress = json.loads((out / "gpu_listops_softmax.json").read_text())
  assert progress["finished"] and len(progress["sessions"]) == 1


def test_reports_show_the_suite_and_the_progress(suite):
  tmp_path, _ = suite
  docs = tmp_path / "docs"
  lines = make_report.gpu_suite_section(str(docs))
  assert lines[0] == "## GPU suite"
  assert "| listops_softmax | 0 |" in "\n".join(lines)
  text = lra_table.main(
    ["--out", "-", "--progress", str(docs / "results" / "gpu_listops_*.json")]
  )
  sky = text.index("## Skyformer-family")
  row = next(
    line
    for line in text.splitlines()
    if line.startswith("| softmax (ours) | ListOps | 3/10000 steps")
  )
  assert text.index(row) > sky
  assert "38.37" in row  # Skyformer Table 1, Self-Attention, ListOps
  assert "after 3 steps" in row
  # The last train window beside the val curve: "<loss> / <acc> (step 3)".
  assert re.search(r"\| \d+\.\d{3} / \d+\.\d \(step 3\) \|", row), row

  # Written to a file: the curves are drawn beside it and linked under the
  # progress table.
  table = tmp_path / "table" / "lra.md"
  lra_table.main(
    [
      "--out",
      str(table),
      "--progress",
      str(docs / "results" / "gpu_listops_*.json"),
    ]
  )
  png = table.parent / "lra_progress.png"
  assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  text = table.read_text()
  assert text.index("(lra_progress.png)") > text.index(row)


def test_suite_fails_clearly_without_a_gpu(tmp_path):
  proc = subprocess.run(
    ["bash", str(REPO / "benchmarks" / "gpu_suite.sh")],
    env=_env(tmp_path),
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
  )
  assert proc.returncode == 2
  assert "JAX sees no GPU" in proc.stderr
  assert "SUITE_REQUIRE_GPU=0" in proc.stderr
  assert not (tmp_path / "docs").exists()


def test_full_length_rejects_unknown_data_key(tmp_path):
  with pytest.raises(SystemExit):
    full_length.main(
      ["data", "--workdir", str(tmp_path), "--data_sizes", "num_trees=3"]
    )


def test_a_new_checkout_resumes_from_the_resume_file(tmp_path):
  # Session 1 stops at step 3 of 6 (as a budget would); session 2 starts in
  # a new checkout (no runs/ directory) and continues from the resume file
  # and the carried text instead of step 0.
  out = tmp_path / "docs" / "results"
  state_dir = tmp_path / "results" / "state"
  common = [
    "--attentions",
    "softmax",
    "--out",
    str(out),
    "--prefix",
    "t_",
    "--state_dir",
    str(state_dir),
    "--checkpoint_every",
    "1",
    "--data_sizes",
    TINY["SUITE_DATA_SIZES"],
  ]
  common += [f"--flag={f}" for f in TINY["SUITE_FLAGS"].split()]
  assert (
    full_length.main(
      ["run", "--workdir", str(tmp_path / "a"), "--steps", "3"] + common
    )
    == 0
  )
  carry = out / "t_logs" / "softmax"
  state_file = state_dir / "t_softmax.msgpack.xz"
  assert sorted(os.listdir(carry)) == [
    "config.json",
    "metrics.jsonl",
    "results.json",
  ]
  assert not state_file.exists()  # finished: no resume file
  # As if the budget had cut the run at step 3: no results, a resume file.
  (carry / "results.json").unlink()
  from macformer_jax.training import resume_file  # pylint: disable=g-import-not-at-top

  assert (
    resume_file.export(str(tmp_path / "a" / "softmax"), str(state_file)) == 3
  )
  assert (
    full_length.main(
      ["run", "--workdir", str(tmp_path / "b"), "--steps", "6"] + common
    )
    == 0
  )
  log = (tmp_path / "b" / "softmax" / "log.txt").read_text()
  assert "resumed from" in log and "at step 3" in log
  progress = json.loads((out / "t_softmax.json").read_text())
  assert [s["from_step"] for s in progress["sessions"]] == [0, 3]
  assert progress["finished"] and progress["steps_done"] == 6
  # The carried metrics keep session 1's rows: one curve over both.
  assert [s for s, _ in progress["eval_curve"]] == [3, 6]
  assert not state_file.exists()  # deleted once the run finished
  assert (carry / "results.json").exists()
  # Nothing binary under docs: text only.
  assert not [
    p
    for p in (tmp_path / "docs").rglob("*")
    if p.is_file() and p.suffix not in (".json", ".jsonl")
  ]
  # A third checkout reports the finished run from the text, no retraining.
  assert (
    full_length.main(
      ["run", "--workdir", str(tmp_path / "c"), "--steps", "6"] + common
    )
    == 0
  )
  assert not (tmp_path / "c" / "softmax" / "log.txt").exists()
  progress = json.loads((out / "t_softmax.json").read_text())
  assert progress["finished"] and len(progress["sessions"]) == 2
