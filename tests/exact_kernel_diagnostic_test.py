"""Tests of benchmarks.temperature_study --diagnostic (no training:
synthetic run records)."""

import json

from benchmarks import temperature_study as ts
from configs import common


def test_commands_use_the_exact_presets_and_the_temperature_setting():
  for setting, (preset, _, scale) in ts.SETTINGS.items():
    core, options = common.ATTENTION_PRESETS[preset]
    assert core == "exact_kernel" and options["kernel"] == "exp"
    assert options.get("qk_scale", ts.DEFAULT_SCALE) == scale
    cmd = ts.commands(True)[ts.diagnostic_name(setting, 1)]("/w", "/d")
    assert cmd[2].endswith(f"listops.py:{preset},smoke")
    reference = ts.run_command("exp", "default", 1, "/w", "/d", 500)
    # Everything but the attention flags equals the temperature study's.
    assert cmd[3:] == [f for f in reference[3:] if "attention" not in f]


def _write_run(root, setting, seed, acc, curve):
  workdir = root / ts.diagnostic_name(setting, seed)
  workdir.mkdir(parents=True)
  (workdir / "results.json").write_text(
    json.dumps(
      {
        "steps": 500,
        "test_accuracy": acc,
        "test_accuracy_best_eval": acc,
        "majority_class_accuracy": 0.17,
      }
    )
  )
  rows = [{"step": s, "split": "eval", "accuracy": a} for s, a in curve]
  rows.append(
    {
      "step": 500,
      "split": "train",
      "loss": 2.0,
      "accuracy": 0.3,
      "steps_per_sec": 2.0,
    }
  )
  (workdir / "metrics.jsonl").write_text(
    "".join(json.dumps(r) + "\n" for r in rows)
  )
  return str(workdir)


def _temperature(default, tuned, softmax):
  runs = {}
  for seed in ts.SEEDS:
    runs[ts.run_name("exp", "default", seed)] = {"test_accuracy": default}
    runs[ts.run_name("exp", 0.7, seed)] = {"test_accuracy": tuned}
    runs[ts.run_name("softmax", "default", seed)] = {"test_accuracy": softmax}
  return runs


def test_record_escape_step_and_both_conclusions(tmp_path):
  workdir = _write_run(
    tmp_path, "exact_default", 0, 0.25, [(100, 0.18), (200, 0.21), (300, 0.25)]
  )
  record = ts.diagnostic_record(workdir, "exact_default", 0)
  assert record["escape_step"] == 300  # first val acc > 0.17 + 0.05
  assert record["median_train_steps_per_sec"] == 2.0
  assert (
    ts.diagnostic_record(str(tmp_path / "none"), "exact_default", 1) is None
  )

  runs = [dict(record, seed=s) for s in ts.SEEDS]
  uniform = ts.compare(runs, _temperature(0.256, 0.341, 0.337))
  assert uniform[0]["exact_minus_rmfa"][0] == 0.25 - 0.256
  text = ts.conclusion(uniform)
  assert "near-uniform attention" in text and "25.0" in text
  assert "not random-feature noise" in text
  noise = ts.conclusion(ts.compare(runs, _temperature(0.17, 0.34, 0.26)))
  assert "the features' noise" in noise
  page = ts.render_diagnostic(
    {
      "conclusion": text,
      "comparison": uniform,
      "runs": runs,
      "machine": "m",
      "nice": 10,
      "parallel": 2,
    }
  )
  assert page.startswith("# Diagnostic")
  assert "| 0.42 | 25.0 ± 0.0 | 25.6 ± 0.0 | 33.7 ± 0.0 |" in page


def test_report_merges_recorded_and_new_runs(tmp_path):
  """Runs recorded in docs/exact_kernel.json count as done; a run finished
  under --runs replaces the record of the same name."""
  docs, runs = tmp_path / "docs", tmp_path / "runs"
  docs.mkdir()
  workdir = _write_run(runs, "exact_default", 1, 0.3, [(100, 0.3)])
  fresh = ts.diagnostic_record(workdir, "exact_default", 1)
  old = [
    dict(
      fresh,
      seed=s,
      run=ts.diagnostic_name("exact_default", s),
      test_accuracy=0.2,
    )
    for s in (1, 0)
  ]
  (docs / "exact_kernel.json").write_text(json.dumps({"runs": old}))
  ts.main(["--diagnostic", "report", "--docs", str(docs), "--runs", str(runs)])
  data = json.loads((docs / "exact_kernel.json").read_text())
  runs = [(r["seed"], r["test_accuracy"]) for r in data["runs"]]
  assert runs == [(0, 0.2), (1, 0.3)]  # in grid order
  assert data["comparison"][0]["exact"] == {"0": 0.2, "1": 0.3}
  assert (docs / "DIAGNOSTIC.md").read_text() == ts.render_diagnostic(data)
