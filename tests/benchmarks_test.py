"""Tests of benchmarks.common, kernel_error, lra_table and make_report, and
that the studies' pages regenerate from their committed JSON.

kernel_error runs once at `--quick` (module fixture, ~15 s on 2 CPU cores);
the other scripts are pure file processing.
"""

import glob
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from benchmarks import common
from benchmarks import kernel_error
from benchmarks import lra_table
from benchmarks import make_report
from benchmarks import temperature_study
from configs import listops as listops_config
from macformer_jax import features

DATA = pathlib.Path(__file__).parent / "data"


def _strict_json(path):
  """json.load that rejects NaN/Infinity tokens (not JSON)."""

  def reject(token):
    raise ValueError(f"non-standard JSON token {token} in {path}")

  with open(path) as f:
    return json.load(f, parse_constant=reject)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("kernel_error")
  json_path = out / "kernel_error.json"
  kernel_error.main(["--quick", "--out", str(out)])
  return out, _strict_json(json_path)


# ----------------------------------------------------------------------------
# kernel_error.py
# ----------------------------------------------------------------------------
def test_kernel_error_json_has_every_curve_and_key(quick_run):
  out, result = quick_run
  for key in (
    "command",
    "date",
    "machine",
    "settings",
    "curves",
    "variance",
    "fraction_outside_radius",
    "runtime_s",
  ):
    assert key in result, key
  assert result["command"].startswith("python -m benchmarks.kernel_error")
  assert result["machine"]["device"].startswith("cpu")
  dims = result["settings"]["D"]
  labels = {
    (c["method"], c["kernel"], c["allocation"], c["projection"], c["inputs"])
    for c in result["curves"]
  }
  expected = {
    ("rmf", k, a, p, i)
    for k in kernel_error.KERNELS
    for a in kernel_error.ALLOCATIONS
    for p in kernel_error.PROJECTIONS
    for i in kernel_error.INPUTS
  }
  expected |= {
    (m, "exp", None, None, i)
    for m in kernel_error.BASELINES
    for i in kernel_error.INPUTS
  }
  assert labels == expected
  for curve in result["curves"]:
    assert curve["D"] == dims
    for metric in kernel_error.METRICS:
      summary = curve[metric]
      assert len(summary["mean"]) == len(summary["std"]) == len(dims)
      assert len(summary["per_seed"][0]) == result["settings"]["seeds"]
      assert "slope" in summary and "nonfinite" in summary
  assert (out / "kernel_error.png").stat().st_size > 10_000


def test_kernel_error_slopes_and_presbn_errors(quick_run):
  """Monte Carlo error ~ D^-1/2: the fitted slope of the default map is
  about -0.5 (3 seeds, D = 16..256); with PreSBN every error is finite and
  small, exp/log/inverse within 5 % of each other (an earlier numpy
  measurement: 3 %)."""
  _, result = quick_run
  curve = kernel_error.find_curve(
    result["curves"],
    kernel="exp",
    allocation="stratified",
    projection="chained",
  )
  assert -0.65 <= curve["kernel_error"]["slope"] <= -0.35
  assert -0.65 <= curve["attention_error"]["slope"] <= -0.35
  at_256 = {}
  for kernel in ("exp", "inverse", "log"):
    c = kernel_error.find_curve(
      result["curves"],
      kernel=kernel,
      allocation="stratified",
      projection="chained",
    )
    assert c["attention_error"]["nonfinite"] == 0
    at_256[kernel] = c["attention_error"]["mean"][-1]
    assert 0.003 < at_256[kernel] < 0.05  # D = 256
  assert max(at_256.values()) / min(at_256.values()) < 1.05


def test_kernel_error_records_nonfinite_honestly(quick_run):
  """Raw inputs leave the radius of convergence of log: the exact kernel is
  NaN there, which the JSON records as the string 'nan'."""
  _, result = quick_run
  assert result["fraction_outside_radius"]["presbn"]["log"] == 0.0
  c = kernel_error.find_curve(
    result["curves"],
    kernel="log",
    allocation="sampled",
    projection="independent",
    inputs="raw",
  )
  if result["fraction_outside_radius"]["raw"]["log"] > 0:
    assert "nan" in c["attention_error"]["mean"]
    assert c["attention_error"]["slope"] is None
  assert all(
    isinstance(x, float) for x in c["attention_error_truncated"]["mean"]
  )


def test_variance_table_matches_formulas(quick_run):
  """Empirical variance over 300 draws within 25 % of the exact formulas
  (the relative s.e. of a variance estimate over 300 draws is ~8 %)."""
  _, result = quick_run
  rows = result["variance"]["rows"]
  assert {(r["kernel"], r["pairs"]) for r in rows} == {
    (k, p) for k in kernel_error.KERNELS for p in ("random", "near")
  }
  for r in rows:
    for empirical, formula in (
      ("empirical_sampled_independent", "formula_sampled_independent"),
      ("empirical_stratified_independent", "formula_stratified_independent"),
      ("empirical_stratified_chained", "formula_stratified_chained"),
    ):
      assert r[empirical] == pytest.approx(r[formula], rel=0.25), (r, empirical)


@pytest.mark.parametrize("projection", ["chained", "independent"])
def test_embed_reproduces_library_features(projection):
  """A sample_rmf draw embedded in a larger superset plan gives the same
  phi(x).phi(y) as features.rmf on the draw itself (the benchmark's trick)."""
  d, num_features = 8, 40
  plans, draws = [], []
  for seed in range(3):
    params = features.sample_rmf(
      jax.random.key(seed),
      d,
      num_features,
      "inverse",
      "sampled",
      projection=projection,
      allocation_seed=seed,
    )
    plans.append(params.plan)
    draws.append(params)
  sup = kernel_error.superset_plan(plans)
  x, y = 0.3 * jax.random.normal(jax.random.key(9), (2, 5, d))
  for params in draws:
    plan = params.plan
    proj = kernel_error.move(params.projections, plan.widths, sup.widths)
    scales = kernel_error.move(params.scales, plan.counts, sup.counts)
    embedded = features.RMFParams(proj, scales, sup)
    want = np.sum(
      np.asarray(features.rmf(params, x)) * np.asarray(features.rmf(params, y)),
      -1,
    )
    got = np.sum(
      np.asarray(features.rmf(embedded, x))
      * np.asarray(features.rmf(embedded, y)),
      -1,
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_stratified_variance_formula_matches_monte_carlo():
  """`features.stratified_variance`, chained covariance included, vs 4000
  numpy draws of a tiny stratified chained map, on nearly parallel x, y
  (large t)."""
  rng = np.random.default_rng(0)
  d, counts = 6, (4, 2, 1)
  x = rng.normal(size=d)
  x /= np.linalg.norm(x) * 1.5
  y = x + 0.05 * rng.normal(size=d)
  a = np.array([1.0, 1.0, 1.0, 1.0])  # inverse kernel
  draws = 4000
  est = np.empty(draws)
  for i in range(draws):
    w = rng.choice([-1.0, 1.0], size=(len(counts), max(counts), d))
    u = (w @ x) * (w @ y)  # [levels, chains]
    prefix = np.cumprod(u, axis=0)
    est[i] = sum(
      a[n + 1] / c * prefix[n, :c].sum() for n, c in enumerate(counts)
    )
  for projection, factor in (("chained", 1.0), ("independent", None)):
    plan = features.FeaturePlan("inverse", 1.0, counts, projection)
    formula = features.stratified_variance(plan, x[None], y[None])[0]
    if factor:
      assert np.var(est) == pytest.approx(formula, rel=0.1)
    else:
      assert formula < np.var(est)  # chaining adds positive covariance here


def test_fit_slope():
  dims = [16, 64, 256]
  assert common.fit_slope(dims, [1.0, 0.5, 0.25]) == pytest.approx(-0.5)
  assert common.fit_slope(dims, ["nan", "inf", 0.2]) is None
  assert common.fit_slope(dims, [9.0, 0.5, 0.25], above=32) == pytest.approx(
    -0.5
  )


def test_templates_are_the_sections_of_a_template_file():
  sections = common.templates("temperature")
  assert {"page", "rule", "above", "variance_row"} <= set(sections)
  assert sections["page"].startswith("# The temperature question")
  assert not any(t != t.strip() or "<!--" in t for t in sections.values())


def test_read_run(tmp_path):
  assert common.read_run(str(tmp_path / "none")) == (None, [], [])
  (tmp_path / "results.json").write_text(json.dumps({"steps": 2}))
  rows = (
    {"step": 1, "split": "train", "steps_per_sec": 3.0},
    {"step": 2, "split": "eval", "accuracy": 0.5},
  )
  (tmp_path / "metrics.jsonl").write_text(
    "".join(json.dumps(r) + "\n" for r in rows)
  )
  assert common.read_run(str(tmp_path)) == ({"steps": 2}, [[2, 0.5]], [3.0])


def test_study_pages_regenerate_from_their_json(tmp_path):
  """docs/TEMPERATURE.md, DIAGNOSTIC.md and RESULTS.md are their renderers'
  output on the committed JSON, byte for byte."""
  docs = os.path.join(common.REPO, "docs")
  page = lambda name: pathlib.Path(docs, name).read_text()
  data, _ = common.load_json(os.path.join(docs, "temperature.json"))
  assert temperature_study.render(data) == page("TEMPERATURE.md")
  data, _ = common.load_json(os.path.join(docs, "exact_kernel.json"))
  assert temperature_study.render_diagnostic(data) == page("DIAGNOSTIC.md")
  assert make_report.results_page(docs) == page("RESULTS.md")


def test_report_and_lra_table_regenerate_from_docs(tmp_path, monkeypatch):
  """docs/BENCHMARKS.md is make_report's output on the committed docs/, and
  docs/lra_table.md the README command's output (but for its date)."""
  docs = pathlib.Path(common.REPO, "docs")
  shutil.copytree(docs, tmp_path / "docs")  # make_report redraws PNGs there
  text = make_report.build(str(tmp_path / "docs"))
  assert text == (docs / "BENCHMARKS.md").read_text()
  monkeypatch.chdir(common.REPO)  # the page names the files relative to it
  results = "docs/results/reduced_listops_*.json"
  running = "docs/results/full_length_listops_*.json"
  runs = [lra_table.load_run(p) for p in lra_table.find_results([results])]
  progress = [lra_table.load_progress(p) for p in sorted(glob.glob(running))]
  command = f"python -m benchmarks.lra_table '{results}' --progress '{running}'"
  published = lra_table.load_published()
  text = lra_table.render(
    runs, published, command, progress, "lra_progress.png"
  )
  date = re.compile(r" on \d{4}-\d{2}-\d{2}\.$", re.M)
  committed = (docs / "lra_table.md").read_text()
  assert date.sub("", text) == date.sub("", committed)
  assert len(date.findall(committed)) == 1


# ----------------------------------------------------------------------------
# lra_table.py
# ----------------------------------------------------------------------------
def _write_results(path, arg, last, best, **overrides):
  config = listops_config.get_config(arg)
  data = {
    "task": "listops",
    "attention": config.attention.variant,
    "preset": config.preset,
    "smoke": config.smoke,
    "steps": config.train.num_train_steps,
    "test_accuracy": last,
    "test_accuracy_best_eval": best,
    "best_eval_step": 500,
    "config": json.loads(config.to_json_best_effort()),
  }
  data.update(overrides)
  path.mkdir(parents=True, exist_ok=True)
  with open(path / "results.json", "w") as f:
    json.dump(data, f)
  return path / "results.json"


@pytest.fixture
def two_runs(tmp_path):
  full = _write_results(
    tmp_path / "runs" / "full", "macformer_exp,preset=macformer", 0.371, 0.375
  )
  reduced = _write_results(
    tmp_path / "runs" / "reduced", "softmax,smoke", 0.30, 0.3125
  )
  return tmp_path, full, reduced


def test_lra_table_renders_runs_beside_published(two_runs):
  tmp_path, _, _ = two_runs
  out = tmp_path / "lra_table.md"
  text = lra_table.main(
    [str(tmp_path / "runs" / "*" / "results.json"), "--out", str(out)]
  )
  assert out.read_text() == text
  lines = text.splitlines()
  # Our runs: scale marker, last / best, the generated-data mark.
  assert (
    "| macformer_exp (ours) | this repo | **full** | 37.10 / 37.50† "
    "| – | – | – | – | – |"
  ) in lines
  assert (
    "| softmax (ours) | this repo | *reduced* | 30.00 / 31.25† "
    "| – | – | – | – | – |"
  ) in lines
  # Published rows of both harness families, each in its own section.
  assert (
    "| Transformer | [tay2021_table1](#sources) | published | 36.37 | "
    "64.27 | 57.46 | 42.44 | 71.40 | 54.39 |"
  ) in lines
  assert (
    "| Skyformer | [skyformer2021_table1](#sources) | published | "
    "38.69 | 64.70 | 82.06 | 40.77 | 70.73 | 59.39 |"
  ) in lines
  sky = text.index("## Skyformer-family")
  assert text.index("macformer_exp (ours)") > sky > text.index("softmax (ours)")
  # The run list says why the smoke run is reduced.
  assert "smoke; data.max_len=256 (preset: 2000)" in text
  assert "matches the preset" in text


def test_lra_table_full_scale_rule(tmp_path):
  ok = lra_table.load_run(
    _write_results(tmp_path / "a", "macformer_exp,preset=macformer", 0.4, 0.4)
  )
  assert ok["full_scale"] and ok["family"] == "skyformer_pytorch"
  config = listops_config.get_config("macformer_exp,preset=macformer")
  cfg = json.loads(config.to_json_best_effort())
  cfg["train"]["num_train_steps"] = 2000
  short = lra_table.load_run(
    _write_results(
      tmp_path / "b", "macformer_exp,preset=macformer", 0.4, 0.4, config=cfg
    )
  )
  assert short["full_scale"] is False
  assert short["differences"] == ["train.num_train_steps=2000 (preset: 10000)"]


def test_lra_table_missing_file(tmp_path):
  (tmp_path / "empty_run").mkdir()
  for arg in ("nope/results.json", "*/results.json", "empty_run"):
    with pytest.raises(
      lra_table.ResultsError,
      match=re.escape(f"{tmp_path / arg}: no results.json here"),
    ):
      lra_table.find_results([str(tmp_path / arg)])


@pytest.mark.parametrize("field", ["test_accuracy", "task", "config"])
def test_lra_table_missing_field(tmp_path, field):
  path = _write_results(tmp_path, "softmax,smoke", 0.3, 0.3)
  data = json.loads(path.read_text())
  del data[field]
  path.write_text(json.dumps(data))
  with pytest.raises(
    lra_table.ResultsError, match=f"{path}: missing field '{field}'"
  ):
    lra_table.load_run(str(path))


def test_lra_table_missing_nested_field_and_bad_values(tmp_path):
  path = _write_results(tmp_path, "softmax,smoke", 0.3, 0.3)
  data = json.loads(path.read_text())
  del data["config"]["train"]["num_train_steps"]
  path.write_text(json.dumps(data))
  with pytest.raises(
    lra_table.ResultsError, match="missing field 'config.train.num_train_steps'"
  ):
    lra_table.load_run(str(path))
  _write_results(tmp_path, "softmax,smoke", 37.1, 0.3)
  with pytest.raises(
    lra_table.ResultsError, match="'test_accuracy' = 37.1 is not a fraction"
  ):
    lra_table.load_run(str(path))
  path.write_text("{not json")
  with pytest.raises(lra_table.ResultsError, match=f"{path}: not valid JSON"):
    lra_table.load_run(str(path))


def test_lra_table_command_line_error_is_one_line(tmp_path):
  missing = tmp_path / "missing.json"
  proc = subprocess.run(
    [sys.executable, "-m", "benchmarks.lra_table", str(missing), "--out", "-"],
    capture_output=True,
    text=True,
    cwd=common.REPO,
    env={**os.environ, "PYTHONPATH": common.REPO},
    check=False,
  )
  assert proc.returncode != 0
  assert proc.stderr.strip().startswith(
    f"lra_table: {missing}: no results.json here (no such file"
  )


def test_published_data_cites_sources():
  published = lra_table.load_published()
  families = {t["harness"] for t in published["tables"]}
  assert families == {"lra_original", "skyformer_pytorch"}
  for table in published["tables"]:
    assert table["source"] and table["rows"]
    for row in table["rows"].values():
      assert len(row) == len(published["columns"])
      # avg = mean of the five tasks (Tay et al.'s Sinkhorn row excepted).
      if table["id"] != "tay2021_table1" or row[-1] != 51.39:
        assert np.mean(row[:5]) == pytest.approx(row[-1], abs=0.06)


# ----------------------------------------------------------------------------
# make_report.py
# ----------------------------------------------------------------------------
def test_report_without_inputs_says_not_run_yet(tmp_path):
  text = make_report.build(str(tmp_path))
  assert text.count("Not run yet") == 4
  assert len(make_report.COMMANDS) == 4
  for command in make_report.COMMANDS.values():
    assert f"    {command}" in text


def _speed_json(path):
  rows = []
  for length, rmfa, perf, soft in (
    (128, 2.0, 1.5, 1.0),
    (256, 3.0, 2.5, 4.0),
    (512, 5.0, 5.5, 16.0),
  ):
    rows.append(
      {
        "length": length,
        "rmfa": {"median_ms": rmfa},
        "performer": {"median_ms": perf},
        "softmax": {"median_ms": soft},
      }
    )
  path.write_text(
    json.dumps(
      {
        "device": "cpu:cpu",
        "host": "x86_64",
        "jax": "0.10.2",
        "shapes": {"batch": 2, "heads": 2, "head_dim": 32, "num_features": 128},
        "measure": "fwd+bwd",
        "rows": rows,
      }
    )
  )
  return rows


def test_crossover():
  rows = [
    {"length": 128, "a": {"median_ms": 2.0}, "b": {"median_ms": 1.0}},
    {"length": 512, "a": {"median_ms": 2.0}, "b": {"median_ms": 4.0}},
  ]
  length, text = make_report.crossover(rows, "a", "b")
  # log(a/b) goes from log 2 to -log 2: halfway in log L, L = 256.
  assert length == pytest.approx(256.0)
  assert "overtakes b at L ≈ 256" in text
  assert make_report.crossover(rows[1:], "a", "b")[0] is None


def test_report_with_inputs(quick_run, tmp_path):
  out, _ = quick_run
  docs = tmp_path / "docs"
  docs.mkdir()
  for name in ("kernel_error.json", "kernel_error.png"):
    (docs / name).write_bytes((out / name).read_bytes())
  _speed_json(docs / "attention_speed.json")
  # Written by benchmarks.train_step_speed (tests/speed_reports_test.py).
  (docs / "train_step_speed.json").write_bytes(
    (DATA / "train_step_speed.json").read_bytes()
  )
  _write_results(tmp_path / "runs" / "a", "softmax,smoke", 0.3, 0.3)
  lra_table.main(
    [str(tmp_path / "runs" / "a"), "--out", str(docs / "lra_table.md")]
  )
  text = make_report.main(["--docs", str(docs)])
  assert (docs / "BENCHMARKS.md").read_text() == text
  assert "Not run yet" not in text
  assert "Command: `python -m benchmarks.kernel_error --quick" in text
  assert "![kernel and attention error vs D](kernel_error.png)" in text
  assert "| RMF exp | stratified/chained (default) |" in text
  assert "| exp | near |" in text  # variance table
  assert "| 256 | 3.0 | 2.5 | 4.0 | 1.33× | 1.60× | 0.83× |" in text
  assert "it overtakes softmax at L ≈" in text
  assert "| linear | before | 4 | 128 |" in text  # the training step
  assert "| linear | after | 4 | 128 |" in text
  assert (docs / "attention_speed.png").stat().st_size > 5_000
  assert "### Original LRA harness" in text  # lra_table demoted one level
  assert "| softmax (ours) | this repo | *reduced* |" in text
