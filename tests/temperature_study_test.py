"""Tests of benchmarks.temperature_study: the grid and the statistics of
its report (no training; synthetic run records)."""

import argparse
import json
import os
import pathlib

import pytest

from benchmarks import common
from benchmarks import make_report
from benchmarks import temperature_study as ts


def test_schedule_is_unique_prioritised_and_seed_balanced():
  order = ts.schedule()
  names = [ts.run_name(*x) for x in order]
  assert len(set(names)) == len(names)
  # exp first, then inverse, before log and sqrt.
  first_kernel = [k for k, _, _ in order]
  assert first_kernel.index("inverse") > max(
    i for i, x in enumerate(order) if x[0] == "exp" and x[1] == "learn"
  )
  assert first_kernel.index("log") > first_kernel.index("inverse")
  # Inside the first group every setting gets seed 0 before any seed 1.
  group = [x for x in order if x[0] == "exp"][:9]
  assert [s for _, _, s in group] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
  # Fixed scales of the radius-1 kernels stay inside the radius.
  for kernel, setting, _ in order:
    if kernel in ("inverse", "log", "sqrt") and not isinstance(setting, str):
      assert setting**2 < 1.0


def test_run_command_sets_scale_seed_and_shared_data(tmp_path):
  cmd = ts.run_command(
    "inverse", 0.8, 2, str(tmp_path / "w"), str(tmp_path / "data"), 500
  )
  assert any(c.endswith("listops.py:macformer_inverse,smoke") for c in cmd)
  assert "--config.seed=2" in cmd
  assert "--config.attention.options.qk_scale=0.8" in cmd
  assert f"--config.data.data_dir={tmp_path / 'data'}" in cmd
  assert "--config.train.num_train_steps=500" in cmd
  learn = ts.run_command("exp", "learn", 0, "w", "d", 500)
  assert "--config.attention.options.learn_qk_scale=True" in learn
  softmax = ts.run_command("softmax", "default", 0, "w", "d", 500)
  assert not any("attention.options" in c for c in softmax)


def _record(kernel, setting, scale, seed, acc):
  return {
    "run": f"{kernel}_{setting}_{scale}_{seed}",
    "kernel": kernel,
    "setting": setting,
    "scale": scale,
    "seed": seed,
    "steps": 500,
    "test_accuracy": acc,
    "test_accuracy_best_eval": acc,
    "eval_curve": [[250, acc - 0.05], [500, acc]],
    "median_train_steps_per_sec": 1.0,
  }


def test_paired_difference_flags_only_a_consistent_gain():
  d = ts.DEFAULT_SCALE
  base = [0.25, 0.30, 0.28]
  records = [_record("exp", "default", d, s, a) for s, a in enumerate(base)]
  # +5 points on every seed (plus a little noise): beats the default.
  records += [
    _record("exp", "fixed", 1.0, s, a + 0.05 + 0.002 * s)
    for s, a in enumerate(base)
  ]
  # +4 points on average but with a sign change: not beyond noise.
  records += [
    _record("exp", "learn", d, s, a + g)
    for s, (a, g) in enumerate(zip(base, (0.15, -0.02, -0.01), strict=True))
  ]
  rows = {
    (r["setting"], round(r["scale"], 2)): r for r in ts.summarise(records)
  }
  fixed, learn = rows[("fixed", 1.0)], rows[("learn", round(d, 2))]
  assert fixed["paired_diff"]["mean"] == pytest.approx(0.052)
  assert fixed["beats_default"] and not fixed["worse_than_default"]
  assert not learn["beats_default"] and not learn["worse_than_default"]
  assert "paired_diff" not in rows[("default", round(d, 2))]
  assert rows[("default", round(d, 2))]["test_mean"] == pytest.approx(
    sum(base) / 3
  )
  text = "\n".join(ts.conclusions(list(rows.values())))
  assert "beyond seed noise" in text and "s = 1.00" in text


def test_render_without_variance_names_missing_runs():
  d = ts.DEFAULT_SCALE
  records = [_record("exp", "default", d, s, 0.3) for s in range(2)]
  data = {
    "setup": {
      "steps": 500,
      "warmup": ts.WARMUP,
      "data": ts.DATA,
      "num_draws": 16,
    },
    "runs": records,
    "summary": ts.summarise(records),
    "variance": [],
    "missing": ["inverse_default_seed0"],
    "machine": {"platform": "test", "cpus": 2},
  }
  text = ts.render(data)
  assert "| exp | default | 0.42 |" in text
  assert "30.0 ± 0.0" in text
  assert "inverse_default_seed0" in text


def test_benchmarks_report_summarises_the_study(tmp_path):
  assert make_report.temperature_section(str(tmp_path)) == []  # not run
  d = ts.DEFAULT_SCALE
  records = [_record("exp", "default", d, s, 0.25 + 0.01 * s) for s in range(3)]
  records += [
    _record("exp", "fixed", 1.0, s, 0.33 + 0.01 * s) for s in range(3)
  ]
  (tmp_path / "temperature.json").write_text(
    json.dumps({"setup": {"steps": 500}, "summary": ts.summarise(records)})
  )
  text = "\n".join(make_report.temperature_section(str(tmp_path)))
  assert "[TEMPERATURE.md](TEMPERATURE.md)" in text
  assert "| exp | default | 0.42 | 3 | 26.0 ± 1.0 | - |" in text
  assert "| exp | fixed | 1.00 | 3 | 34.0 ± 1.0 | +8.0 [+8.0, +8.0] |" in text


def test_run_resumes_from_the_runs_recorded_in_docs(tmp_path, monkeypatch):
  # A new checkout has no runs/ directory: the records committed in
  # docs/temperature.json are the runs already done.
  docs = tmp_path / "docs"
  docs.mkdir()
  done = [ts.run_name(*x) for x in ts.schedule()[:5]]
  (docs / "temperature.json").write_text(
    json.dumps({"runs": [{"run": name} for name in done]})
  )
  trained = []
  monkeypatch.setattr(ts, "ensure_data", lambda data_dir: None)
  monkeypatch.setattr(
    ts,
    "train",
    lambda jobs, args: trained.extend(
      os.path.basename(workdir) for workdir, _ in jobs
    ),
  )
  ts.main(
    [
      "run",
      "--runs",
      str(tmp_path / "runs"),
      "--docs",
      str(docs),
    ]
  )
  planned = [ts.run_name(*x) for x in ts.schedule()]
  assert trained == [n for n in planned if n not in done]
  assert trained and not set(trained) & set(done)


def test_report_merges_recorded_and_new_runs(tmp_path, monkeypatch):
  d = ts.DEFAULT_SCALE
  docs = tmp_path / "docs"
  docs.mkdir()
  old = [_record("exp", "default", d, s, 0.25) for s in range(3)]
  old[0]["run"] = "rerun"  # trained again: the new record wins
  (docs / "temperature.json").write_text(json.dumps({"runs": old}))
  new = [
    dict(_record("exp", "default", d, 0, 0.28), run="rerun"),
    dict(_record("exp", "fixed", 1.0, 0, 0.33), run="fresh"),
  ]
  monkeypatch.setattr(ts, "collect", lambda runs_dir: new)
  monkeypatch.setattr(ts, "variance_cost", lambda *a, **k: [])
  monkeypatch.setattr(ts, "make_plot", lambda data, path: None)
  monkeypatch.setattr(ts, "references", lambda *a: (None, None))
  (tmp_path / "runs").mkdir()
  ts.main(["report", "--runs", str(tmp_path / "runs"), "--docs", str(docs)])
  data = json.loads((docs / "temperature.json").read_text())
  assert data["recommendation"] == {}  # one seed per setting: no rule met
  by_run = {r["run"]: r["test_accuracy"] for r in data["runs"]}
  assert len(data["runs"]) == 4
  assert by_run["rerun"] == 0.28 and by_run["fresh"] == 0.33
  default = [r for r in data["summary"] if r["setting"] == "default"][0]
  assert default["seeds"] == [0, 1, 2]
  assert default["test_mean"] == pytest.approx((0.28 + 0.25 + 0.25) / 3)


def test_recommendation_rule():
  d = ts.DEFAULT_SCALE
  base = [0.25, 0.30, 0.28]
  records = [_record("log", "default", d, s, a) for s, a in enumerate(base)]
  # In range, every seed better: a candidate.
  records += [
    _record("log", "fixed", 0.6, s, a + 0.03) for s, a in enumerate(base)
  ]
  # In range, higher mean, but one seed worse: not a candidate.
  records += [
    _record("log", "fixed", 0.5, s, a + g)
    for s, (a, g) in enumerate(zip(base, (0.3, 0.1, -0.01), strict=True))
  ]
  # Best of all, but above sqrt(0.4) where the library warns: reported only.
  records += [
    _record("log", "fixed", 0.8, s, a + 0.2) for s, a in enumerate(base)
  ]
  # exp: nothing better than the default on every seed: no entry.
  records += [_record("exp", "default", d, s, 0.3) for s in range(3)]
  records += [
    _record("exp", "fixed", 1.0, s, 0.3 + g)
    for s, g in enumerate((0.1, 0.1, -0.1))
  ]
  rows = ts.summarise(records)
  rec = ts.recommendation(rows)
  assert set(rec) == {"log"} and rec["log"]["scale"] == 0.6
  text = "\n".join(ts.recommendation_lines(rows, []))
  assert "`qk_scale=0.6` (`macformer_log_tuned`)" in text
  assert "Above the range, s = 0.8 scored higher" in text
  assert "**exp**: no scale met the rule" in text


def test_train_runs_each_unfinished_job_once(tmp_path):
  done, todo = tmp_path / "done", tmp_path / "todo"
  done.mkdir()
  (done / "results.json").write_text("{}")  # finished: skipped
  ts.train(
    [(str(w), ["touch", str(w / "ran")]) for w in (done, todo)],
    argparse.Namespace(nice=0, parallel=2),
  )
  assert not (done / "ran").exists() and (todo / "ran").exists()
  assert json.loads((todo / "wall.json").read_text())["rc"] == 0


def test_reports_from_docs_rewrite_the_committed_files(tmp_path):
  """`report --from_docs` of both studies leaves their JSON as committed
  and writes the committed pages."""
  docs = pathlib.Path(common.REPO, "docs")
  names = ("temperature.json", "exact_kernel.json")
  for name in names:
    (tmp_path / name).write_bytes((docs / name).read_bytes())
  ts.main(["report", "--from_docs", "--docs", str(tmp_path)])
  ts.main(["--diagnostic", "report", "--from_docs", "--docs", str(tmp_path)])
  for name in names + ("TEMPERATURE.md", "DIAGNOSTIC.md"):
    assert (tmp_path / name).read_bytes() == (docs / name).read_bytes(), name
  assert (tmp_path / "temperature.png").stat().st_size > 10_000
  with pytest.raises(SystemExit, match="missing"):
    ts.main(["report", "--from_docs", "--docs", str(tmp_path / "none")])
