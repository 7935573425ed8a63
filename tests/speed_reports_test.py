"""Tests of benchmarks.attention_pareto and the speed sections of
benchmarks.make_report (Pareto, training step).

attention_pareto runs once at a tiny setting (module fixture, a few
seconds); the training-step section renders tests/data/train_step_speed.json,
written by `python -m benchmarks.train_step_speed --preset=lra --max_len=128
--batch_size=4 --steps=5 --attentions=linear --baseline=<old checkout>
--rounds=1 --profile=DIR --first_step` (trimmed to one attention).
"""

import json
import math
import pathlib
import shutil

import numpy as np
import pytest

from benchmarks import attention_pareto
from benchmarks import attention_speed
from benchmarks import make_report

DATA = pathlib.Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def pareto(tmp_path_factory):
  docs = tmp_path_factory.mktemp("pareto")
  out = attention_pareto.main(
    [
      "--lengths",
      "64",
      "--num_features",
      "8,128",
      "--methods",
      "rmfa,favor,rfa",
      "--draws",
      "2",
      "--repeats",
      "1",
      "--rows",
      "32",
      "--out",
      str(docs / "attention_pareto.json"),
    ]
  )
  return docs, out


def test_pareto_json_has_every_cell(pareto):
  docs, out = pareto
  assert json.loads((docs / "attention_pareto.json").read_text()) == out
  assert {(r["method"], r["num_features"]) for r in out["results"]} == {
    (m, n) for m in ("rmfa", "favor", "rfa") for n in (8, 128)
  }
  assert out["scales"] == [32**-0.25, 0.7]
  for r in out["results"]:
    assert r["length"] == 64 and r["ms"] > 0 and r["temp_bytes"] >= 0
    assert len(r["times"]) == 1 and set(r["errors"]) == {"0.420448", "0.7"}
    assert all(0 < e < 2 for e in r["errors"].values())
  # Monte Carlo: the error falls as M^-1/2, so 16x the features gives about
  # a quarter of the error; at half of that the check is far from noise.
  by = {(r["method"], r["num_features"]): r["errors"] for r in out["results"]}
  for method in ("rmfa", "favor", "rfa"):
    for s in ("0.420448", "0.7"):
      assert by[method, 128][s] < 0.5 * by[method, 8][s], (method, s)


def test_exact_rows_is_softmax_of_the_dot_products():
  rng = np.random.default_rng(0)
  q, k, v = (rng.normal(size=(1, 5, 2, 3)) for _ in range(3))
  out = attention_pareto.exact_rows(q, k, v, np.array([1, 3]))
  for r, row in enumerate((1, 3)):
    for h in range(2):
      w = np.exp(k[0, :, h] @ q[0, row, h])
      np.testing.assert_allclose(
        out[0, r, h], w @ v[0, :, h] / w.sum(), rtol=1e-12
      )


def test_time_to_reach():
  # Errors 0.1 at 1 ms, 0.01 at 100 ms: log-log halfway, 0.0316 at 10 ms.
  pts = [(1.0, 0.1), (100.0, 0.01)]
  assert make_report.time_to_reach(pts, 0.2) == 1.0
  assert make_report.time_to_reach(pts, 0.1 / math.sqrt(10)) == (
    pytest.approx(10.0)
  )
  assert make_report.time_to_reach(pts, 0.005) is None
  # A slower point with a higher error is off the front and ignored.
  assert make_report.time_to_reach(pts + [(50.0, 0.5)], 0.01) == (
    pytest.approx(100.0)
  )


def test_pareto_section_renders_the_json(pareto):
  docs, out = pareto
  text = "\n".join(make_report.pareto_section(str(docs)))
  assert (docs / "attention_pareto.png").read_bytes()[:4] == b"\x89PNG"
  assert "Command: `python -m benchmarks.attention_pareto --lengths 64" in text
  assert "![time vs error](attention_pareto.png)" in text
  assert text.count("| method | 0.1 | 0.07 |") == 2  # one per scale
  rmfa = {r["num_features"]: r for r in out["results"] if r["method"] == "rmfa"}
  favor = {
    r["num_features"]: r for r in out["results"] if r["method"] == "favor"
  }
  m = 128
  assert (
    f"| 64 | {m} | {rmfa[m]['ms']:.1f} | {favor[m]['ms']:.1f} | "
    f"{favor[m]['ms'] / rmfa[m]['ms']:.2f}x |"
  ) in text


def test_train_step_section_renders_before_and_after(tmp_path):
  shutil.copy(DATA / "train_step_speed.json", tmp_path)
  data = json.loads((DATA / "train_step_speed.json").read_text())
  (result,) = data["results"]
  text = "\n".join(make_report.train_step_section(str(tmp_path)))
  assert "Not run yet" not in text
  assert "Command: `python -m benchmarks.train_step_speed" in text
  before, after = result["baseline"], result["this"]
  for label, row in (("before", before), ("after", after)):
    line = next(
      x for x in text.splitlines() if x.startswith(f"| linear | {label} |")
    )
    assert f"| {row['s_per_step']:.3f} | {row['steps_per_sec']:.3f} |" in line
    assert f"| {100 * row['matmul_share']:.1f}% |" in line
    assert f"| {row['compile_s']:.1f} |" in line
  assert f"| {result['speedup']:.2f}x |" in text
  # The first steps, and the profile's top ops before and after.
  first = data["first_step"]["linear"]
  assert f"| linear | after | {first['this']['cold_s']:.1f} |" in text
  for label, row in (("before", before), ("after", after)):
    top = row["profile"]["top_ops"][0]
    assert f"Top XLA ops of one step: linear, {label}" in text
    assert (
      f"| {top['ms']:.1f} | {100 * top['share']:.1f}% | {top['op']} |" in text
    )


def test_train_step_section_without_baseline(tmp_path):
  # Without --baseline the script writes one row per attention.
  data = json.loads((DATA / "train_step_speed.json").read_text())
  row = data["results"][0]["this"]
  data.update(
    baseline=None,
    rounds=1,
    results=[row],
    first_step={"linear": {"this": data["first_step"]["linear"]["this"]}},
  )
  (tmp_path / "train_step_speed.json").write_text(json.dumps(data))
  text = "\n".join(make_report.train_step_section(str(tmp_path)))
  assert (
    f"| linear | this | 4 | 128 | {row['s_per_step']:.3f} | "
    f"{row['steps_per_sec']:.3f} | – |"
  ) in text
  assert "| linear | this | 21.9 | 6.9 | yes |" in text
  assert (
    "before" not in text and "Top XLA ops of one step: linear, this" in text
  )


@pytest.mark.parametrize(
  "content",
  [
    # The older script's format: no cost analysis, compile time or memory.
    {
      "results": [
        {
          "attention": "softmax",
          "s_per_step": 6.7,
          "steps_per_sec": 0.15,
          "first_step_s": 10.9,
        }
      ]
    },
    {"results": []},
    [1, 2],
    "not JSON",
  ],
)
def test_train_step_section_says_not_run_for_other_files(tmp_path, content):
  path = tmp_path / "train_step_speed.json"
  path.write_text(content if isinstance(content, str) else json.dumps(content))
  lines = make_report.train_step_section(str(tmp_path))
  assert lines[0] == "## One LRA training step per attention"
  assert lines[2].startswith(f"Not run yet (`{path}` is ")
  assert f"    {make_report.COMMANDS['train_step_speed.json']}" in lines


def test_peer_src_that_cannot_load_is_one_error_line(tmp_path):
  """A missing file, or Performer's code without its dependency (gin), ends
  in one `error:` line that names the fix, not a traceback."""
  with pytest.raises(SystemExit, match="no such file"):
    attention_speed.load_peer(str(tmp_path / "missing.py"), 32, 16)
  peer = tmp_path / "fast_attention.py"
  peer.write_text("import gin_not_installed_here\n")
  with pytest.raises(SystemExit, match="needs the module 'gin_not_installed"):
    attention_speed.load_peer(str(peer), 32, 16)
