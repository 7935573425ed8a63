"""Does Macformer's q/k scale Dh^-1/4 slow learning? (docs/TEMPERATURE.md)

`run` trains the reduced ListOps model at several q/k scales and seeds
(resumable); `report` writes docs/temperature.json, TEMPERATURE.md and
temperature.png.

  python -m benchmarks.temperature_study run
  python -m benchmarks.temperature_study report [--from_docs]
"""

import argparse
import concurrent.futures
import json
import math
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

import numpy as np

from benchmarks import common

ROOT = common.REPO
HEAD_DIM, NUM_FEATURES = 32, 128  # the reduced model: qkv 64 over 2 heads
DEFAULT_SCALE = HEAD_DIM**-0.25
SEEDS = (0, 1, 2)
NUM_STEPS, EVAL_EVERY, WARMUP = 500, 100, 300  # reduced_listops.sh's start
# The data of benchmarks/reduced_listops.sh: seed 0, smoke distribution.
DATA = {
  "num_train": 20000,
  "num_val": 1000,
  "num_test": 1000,
  "min_length": 20,
  "max_length": 250,
  "max_depth": 6,
  "max_args": 10,
}
# Groups in priority order: (kernel, settings) pairs, a setting "default",
# "learn" or a fixed scale s (s^2 < 1 for the radius-1 kernels).
GROUPS: Tuple[Tuple[Tuple[str, Tuple], ...], ...] = (
  (("exp", ("default", 1.0, "learn")),),
  (("inverse", ("default", 0.8, "learn")),),
  (("log", ("default", 0.8)), ("sqrt", ("default", 0.8))),
  (("log", ("learn",)), ("sqrt", ("learn",))),
  (("exp", (1.4,)),),
  (("exp", (2.0,)), ("softmax", ("default",))),
  (("exp", (0.7,)), ("inverse", (0.6,)), ("log", (0.6,)), ("sqrt", (0.6,))),
)
KERNELS = ("exp", "inverse", "log", "sqrt")
_T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36}


def run_name(kernel: str, setting, seed: int) -> str:
  if kernel == "softmax":
    return f"softmax_seed{seed}"
  name = (
    setting
    if isinstance(setting, str)
    else (f"s{setting:.2f}".replace(".", "p"))
  )
  return f"{kernel}_{name}_seed{seed}"


def schedule() -> List[Tuple[str, object, int]]:
  """(kernel, setting, seed) in the order the runs are trained."""
  return [
    (kernel, setting, seed)
    for group in GROUPS
    for seed in SEEDS
    for kernel, settings in group
    for setting in settings
  ]


def lra_command(
  preset: str, seed: int, workdir: str, data_dir: str, num_steps: int
) -> List[str]:
  """run_lra.py on the study's data, model and schedule with `preset`."""
  return [
    sys.executable,
    os.path.join(ROOT, "run_lra.py"),
    f"--config={os.path.join(ROOT, 'configs', 'listops.py')}:{preset},smoke",
    f"--workdir={workdir}",
    f"--config.seed={seed}",
    f"--config.data.data_dir={data_dir}",
    f"--config.train.num_train_steps={num_steps}",
    f"--config.train.eval_frequency={EVAL_EVERY}",
    f"--config.train.checkpoint_every={num_steps}",
    f"--config.optimizer.warmup_steps={WARMUP}",
  ] + [
    f"--config.data.offline.{k}={DATA[k]}"
    for k in ("num_train", "num_val", "num_test")
  ]


def run_command(
  kernel: str, setting, seed: int, workdir: str, data_dir: str, num_steps: int
) -> List[str]:
  """The run_lra.py command line of one run of the grid."""
  cmd = lra_command(
    "softmax" if kernel == "softmax" else f"macformer_{kernel}",
    seed,
    workdir,
    data_dir,
    num_steps,
  )
  if kernel == "softmax":
    return cmd
  option = "--config.attention.options."
  cmd.append(f"{option}num_features={NUM_FEATURES}")
  if setting == "learn":
    cmd.append(f"{option}learn_qk_scale=True")
  elif setting != "default":
    cmd.append(f"{option}qk_scale={setting}")
  return cmd


def ensure_data(data_dir: str) -> None:
  """Generates the reduced ListOps data (seed 0) once."""
  if not os.path.exists(os.path.join(data_dir, "DONE")):
    from lra_tasks import listops  # pylint: disable=g-import-not-at-top

    listops.generate(data_dir + ".tmp", seed=0, **DATA)
    common.write(os.path.join(data_dir + ".tmp", "DONE"), json.dumps(DATA))
    os.replace(data_dir + ".tmp", data_dir)


def train(jobs: List[Tuple[str, List[str]]], args) -> None:
  """Runs (workdir, command) jobs `args.parallel` at a time at `args.nice`,
  skipping finished ones and starting none after `args.deadline_min`."""
  deadline = time.time() + 60 * (getattr(args, "deadline_min", 0) or 1e9)

  def one(job):
    workdir, cmd = job
    if time.time() > deadline or os.path.exists(
      os.path.join(workdir, "results.json")
    ):
      return
    os.makedirs(workdir, exist_ok=True)
    t0 = time.time()
    with open(os.path.join(workdir, "log.txt"), "a") as log:
      rc = subprocess.call(
        ["nice", "-n", str(args.nice)] + cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
      )
    wall = {
      "rc": rc,
      "wall_s": time.time() - t0,
      "date": common.now(),
      "parallel": args.parallel,
      "nice": args.nice,
    }
    common.write(os.path.join(workdir, "wall.json"), json.dumps(wall))

  with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
    list(pool.map(one, jobs))


def recorded_runs(docs: str) -> List[dict]:
  """docs/temperature.json's run records: done, even on a new checkout."""
  data, _ = common.load_json(os.path.join(docs, "temperature.json"))
  return (data or {}).get("runs", [])


def run_grid(args) -> None:
  data_dir = os.path.join(args.runs, "data")
  os.makedirs(args.runs, exist_ok=True)
  ensure_data(data_dir)
  recorded = {r["run"] for r in recorded_runs(args.docs)}
  kernels = args.kernels.split(",") if args.kernels else KERNELS + ("softmax",)
  todo = [
    x for x in schedule() if x[0] in kernels and run_name(*x) not in recorded
  ]
  print(
    f"{len(recorded)} runs recorded in {args.docs}, {len(todo)} to train",
    flush=True,
  )
  train(
    [
      (
        os.path.join(args.runs, run_name(*x)),
        run_command(
          *x, os.path.join(args.runs, run_name(*x)), data_dir, args.steps
        ),
      )
      for x in todo
    ],
    args,
  )


# ----------------------------------------------------------------------------
# Measurements: the variance a scale costs, the finished runs.
# ----------------------------------------------------------------------------
def _pair(cosine: float, dim: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
  """Two centred unit vectors (PreSBN outputs) with x . y = cosine."""
  x, z = np.random.default_rng(seed).standard_normal((2, dim))
  x -= x.mean()
  x /= np.linalg.norm(x)
  z -= z.mean()
  z -= (z @ x) * x
  z /= np.linalg.norm(z)
  return x, cosine * x + math.sqrt(1.0 - cosine**2) * z


def variance_cost(
  kernel: str, scales: List[float], num_draws: int = 4096, seed: int = 0
) -> List[dict]:
  """Error of one RMF estimate phi(q).phi(k) of f(q.k) at M = 128, Dh = 32,
  for PreSBN'd q, k scaled by s, aligned (t = s^2) and a typical random pair
  (cosine 1/sqrt(Dh - 1)): the default map's relative RMSE over `num_draws`
  maps, its relative bias, the paper's map's relative std
  (`features.rmf_variance`) and the contrast f(s^2) / f(-s^2)."""
  import jax  # pylint: disable=g-import-not-at-top
  from macformer_jax import features  # pylint: disable=g-import-not-at-top
  from macformer_jax import kernels  # pylint: disable=g-import-not-at-top

  def estimate(key, x, y):
    params = features.sample_rmf(
      key, HEAD_DIM, NUM_FEATURES, kernel, "stratified", projection="chained"
    )
    return features.rmf(params, x) @ features.rmf(params, y)

  estimates = jax.jit(jax.vmap(estimate, in_axes=(0, None, None)))
  keys = jax.random.split(jax.random.key(seed), num_draws)
  pairs = {
    "aligned": _pair(1.0, HEAD_DIM, seed),
    "random": _pair(1.0 / math.sqrt(HEAD_DIM - 1), HEAD_DIM, seed),
  }
  rows = []
  for s in scales:
    row = {"kernel": kernel, "scale": s, "max_qk": s * s}
    if s * s < kernels.get(kernel).radius:
      row["contrast"] = float(
        kernels.exact(kernel, s * s) / kernels.exact(kernel, -s * s)
      )
    for name, (x, y) in pairs.items():
      x, y = s * x, s * y
      t, f = float(x @ y), float(kernels.exact(kernel, float(x @ y)))
      values = np.asarray(estimates(keys, x, y), np.float64)
      bias = values.mean() - f
      paper = float(features.rmf_variance(kernel, x, y, NUM_FEATURES))
      row[name] = {
        "t": t,
        "f": f,
        "rel_rmse": math.sqrt(values.var() + bias**2) / abs(f),
        "rel_bias": bias / f,
        "rel_std_paper_map": math.sqrt(max(paper, 0.0)) / abs(f),
      }
    rows.append(row)
  return rows


def learned_scale(workdir: str, kernel: str) -> Optional[List[float]]:
  """The learned q/k scales s_max * sigmoid(logit) of a finished run."""
  from macformer_jax import attention  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  latest = os.path.join(workdir, "checkpoints", "latest")
  steps = sorted(int(d) for d in os.listdir(latest) if d.isdigit())
  if not steps:
    return None
  tree = ocp.StandardCheckpointer().restore(
    os.path.abspath(os.path.join(latest, str(steps[-1]), "state"))
  )
  logits = []

  def visit(node):
    for key, value in sorted(node.items()) if isinstance(node, dict) else ():
      if key == "qk_scale_logit":
        logits.append(float(np.asarray(value)))
      else:
        visit(value)

  visit(tree.get("params", tree) if isinstance(tree, dict) else tree)
  s_max = attention.max_qk_scale(kernel)
  return [s_max / (1.0 + math.exp(-logit)) for logit in logits] or None


def collect(runs_dir: str) -> List[dict]:
  """One record per finished run under `runs_dir`."""
  records = []
  for name in sorted(os.listdir(runs_dir)):
    results, curve, speeds = common.read_run(os.path.join(runs_dir, name))
    if results is None:
      continue
    config = results["config"]
    options = config["attention"]["options"]
    kernel = (
      "softmax"
      if config["attention"]["name"] == "softmax"
      else options["kernel"]
    )
    setting = (
      "learn"
      if options.get("learn_qk_scale")
      else "default"
      if kernel == "softmax" or options.get("qk_scale") is None
      else float(options["qk_scale"])
    )
    fixed = not isinstance(setting, str)
    record = {
      "run": name,
      "kernel": kernel,
      "setting": "fixed" if fixed else setting,
      "scale": setting if fixed else DEFAULT_SCALE,
      "seed": config["seed"],
      "steps": results["steps"],
      "test_accuracy": results["test_accuracy"],
      "test_accuracy_best_eval": results["test_accuracy_best_eval"],
      "eval_curve": curve,
      "median_train_steps_per_sec": statistics.median(speeds)
      if speeds
      else None,
    }
    if setting == "learn":
      try:
        record["learned_scales"] = learned_scale(
          os.path.join(runs_dir, name), kernel
        )
      except Exception as e:  # pylint: disable=broad-except
        record["learned_scales_error"] = f"{type(e).__name__}: {e}"[:200]
    records.append(record)
  return records


def summarise(records: List[dict]) -> List[dict]:
  """Mean, std over seeds per (kernel, setting, scale), and the paired
  difference (same seed) to the kernel's default."""
  groups: Dict[Tuple, List[dict]] = {}
  for r in records:
    groups.setdefault(
      (r["kernel"], r["setting"], round(r["scale"], 4)), []
    ).append(r)
  default = {
    k[0]: {r["seed"]: r for r in v}
    for k, v in groups.items()
    if k[1] == "default"
  }
  order = KERNELS + ("softmax",)
  rows = []
  for key in sorted(
    groups,
    key=lambda k: (
      order.index(k[0]) if k[0] in order else 9,
      k[1] != "default",
      k[1] != "learn",
      k[2],
    ),
  ):
    runs = sorted(groups[key], key=lambda r: r["seed"])
    test = [r["test_accuracy"] for r in runs]
    curves = [r["eval_curve"] for r in runs if r["eval_curve"]]
    mean = lambda xs: statistics.mean(xs) if curves else None
    row = {
      "kernel": key[0],
      "setting": key[1],
      "scale": key[2],
      "seeds": [r["seed"] for r in runs],
      "steps": sorted({r["steps"] for r in runs}),
      "test_mean": statistics.mean(test),
      "test_std": statistics.stdev(test) if len(test) > 1 else None,
      "val_final_mean": mean(c[-1][1] for c in curves),
      "val_curve_mean": mean(statistics.mean(a for _, a in c) for c in curves),
    }
    learned = [s for r in runs for s in (r.get("learned_scales") or [])]
    if learned:
      row["learned_scale_mean"] = statistics.mean(learned)
      row["learned_scale_range"] = [min(learned), max(learned)]
    base = default.get(key[0], {})
    diffs = [
      r["test_accuracy"] - base[r["seed"]]["test_accuracy"]
      for r in runs
      if r["seed"] in base
    ]
    if key[1] != "default" and len(diffs) >= 2:
      m = statistics.mean(diffs)
      se = statistics.stdev(diffs) / math.sqrt(len(diffs))
      half = _T95.get(len(diffs) - 1, 2.0) * se
      row["paired_diff"] = {
        "n": len(diffs),
        "mean": m,
        "se": se,
        "ci95": [m - half, m + half],
        "min": min(diffs),
      }
      row["beats_default"] = m - half > 0
      row["worse_than_default"] = m + half < 0
    rows.append(row)
  return rows


def recommendation(rows: List[dict]) -> Dict[str, dict]:
  """Per kernel, the rule stated in advance (docs/TEMPERATURE.md): among the
  fixed scales s <= `attention.max_qk_scale` with >= 3 seeds, each better
  than the default's same seed, the highest mean test accuracy."""
  from macformer_jax import attention  # pylint: disable=g-import-not-at-top

  out = {}
  for kernel in KERNELS:
    candidates = [
      r
      for r in rows
      if r["kernel"] == kernel
      and r["setting"] == "fixed"
      and r["scale"] <= attention.max_qk_scale(kernel) + 1e-9
      and r.get("paired_diff", {}).get("n", 0) >= 3
      and r["paired_diff"].get("min", -1.0) > 0
    ]
    if candidates:
      out[kernel] = max(candidates, key=lambda r: r["test_mean"])
  return out


def _reference(docs: str, attention: str, step: int) -> Optional[tuple]:
  """(val accuracy at `step`, path) of docs/RESULTS.md's reduced run."""
  path = os.path.join(docs, "results", f"reduced_listops_{attention}.json")
  data, _ = common.load_json(path)
  curve = dict(map(tuple, (data or {}).get("eval_curve", [])))
  return (curve[step], os.path.relpath(path, ROOT)) if step in curve else None


def softmax_reference(docs: str, step: int) -> Optional[dict]:
  """Softmax's val accuracy at `step` in RESULTS.md's reduced run."""
  ref = _reference(docs, "softmax", step)
  return ref and {
    "step": step,
    "val_accuracy": ref[0],
    "seed": 0,
    "source": ref[1],
  }


def reproduction_check(
  docs: str, records: List[dict], step: int
) -> Optional[dict]:
  """exp default seed 0 vs the reduced macformer_exp run at `step`."""
  ref = _reference(docs, "macformer_exp", step)
  ours = [
    dict(map(tuple, r["eval_curve"]))
    for r in records
    if (r["kernel"], r["seed"], r["setting"]) == ("exp", 0, "default")
  ]
  if not ref or not ours or step not in ours[0]:
    return None
  return {
    "step": step,
    "ours": ours[0][step],
    "reduced": ref[0],
    "source": ref[1],
  }


# ----------------------------------------------------------------------------
# Report.
# ----------------------------------------------------------------------------
TEMPLATES = common.templates("temperature")


def _pct(mean, std=None) -> str:
  if mean is None:
    return ""
  return f"{100 * mean:.1f}" + ("" if std is None else f" ± {100 * std:.1f}")


def _acc(r: dict) -> str:
  return _pct(r["test_mean"], r["test_std"])


def _ci(d: dict) -> str:
  lo, hi = d["ci95"]
  return f"{100 * d['mean']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def _variance_for(variance: List[dict], kernel: str, scale: float):
  return next(
    (
      v
      for v in variance
      if v["kernel"] == kernel and abs(v["scale"] - scale) < 1e-3
    ),
    None,
  )


def _label(r: dict) -> str:
  return (
    "learned scale" if r["setting"] == "learn" else (f"s = {r['scale']:.2f}")
  )


def conclusions(rows: List[dict]) -> List[str]:
  """Plain sentences from the paired differences (no hand-typed numbers)."""
  out = []
  for kernel in KERNELS:
    mine = [r for r in rows if r["kernel"] == kernel]
    if not mine:
      continue
    default = next((r for r in mine if r["setting"] == "default"), None)
    better = [_label(r) for r in mine if r.get("beats_default")]
    worse = [_label(r) for r in mine if r.get("worse_than_default")]
    best = max(mine, key=lambda r: r["test_mean"])
    text = [f"* **{kernel}**:"]
    if default is not None:
      n = len(default["seeds"])
      text.append(
        f"default {_acc(default)} ({n} seed{'s' * (n != 1)}); "
        f"best mean {_label(best)} {_acc(best)}."
      )
    text.append(
      "Beats the default beyond seed noise (95% paired interval "
      "above 0): " + ", ".join(better) + "."
      if better
      else "No setting beats the default beyond seed noise."
      if any("paired_diff" in r for r in mine)
      else "Too few seeds for a paired comparison yet."
    )
    if worse:
      text.append("Worse than the default: " + ", ".join(worse) + ".")
    text += [
      f"The learned scale moved from {DEFAULT_SCALE:.2f} to "
      "{:.2f}-{:.2f}".format(*r["learned_scale_range"])
      + f" (mean {r['learned_scale_mean']:.2f}, over layers and seeds) "
      f"in {max(r['steps'])} steps."
      for r in mine
      if "learned_scale_mean" in r
    ]
    out.append(" ".join(text))
  return out


def recommendation_lines(rows: List[dict], variance: List[dict]) -> List[str]:
  """The recommendation section (rule, one line per kernel)."""
  from macformer_jax import attention  # pylint: disable=g-import-not-at-top

  rec, lines = recommendation(rows), [TEMPLATES["rule"] + "\n"]
  for kernel in KERNELS:
    mine = [r for r in rows if r["kernel"] == kernel]
    default = next((r for r in mine if r["setting"] == "default"), None)
    r = rec.get(kernel)
    if mine and r is None:
      lines.append(f"* **{kernel}**: no scale met the rule; keep the default.")
    if not mine or r is None:
      continue
    v = _variance_for(variance, kernel, r["scale"])
    d = v and default and _variance_for(variance, kernel, default["scale"])
    cost = (
      f"; kernel RMSE at M = {NUM_FEATURES} (aligned pair) "
      f"{v['aligned']['rel_rmse']:.3f}"
      if v
      else ""
    ) + (f" against {d['aligned']['rel_rmse']:.3f} at the default" if d else "")
    lines.append(
      f"* **{kernel}**: `qk_scale={r['scale']:g}` (`macformer_{kernel}"
      f"_tuned`), {_acc(r)} vs {_acc(default)} for the default; paired "
      f"{_ci(r['paired_diff'])}, every seed better{cost}."
      + "".join(
        " "
        + TEMPLATES["above"].format(
          s=x["scale"], acc=_acc(x), ci=_ci(x["paired_diff"])
        )
        for x in mine
        if x["setting"] == "fixed"
        and x.get("beats_default")
        and x["scale"] > attention.max_qk_scale(kernel) + 1e-9
        and x["test_mean"] > r["test_mean"]
      )
    )
  return lines + [""]


def _accuracy_row(row: dict, variance: List[dict]) -> str:
  shown, cells = f"{row['scale']:.2f}", ["", "", "", ""]
  if row["setting"] == "learn":
    shown = (
      "{:.2f}-{:.2f} (learned)".format(*row["learned_scale_range"])
      if "learned_scale_mean" in row
      else "learned"
    )
  v = _variance_for(
    variance, row["kernel"], row.get("learned_scale_mean", row["scale"])
  )
  if v is not None:
    cells = [
      f"{v['max_qk']:.2f}",
      f"{v['contrast']:.2f}" if "contrast" in v else "-",
      f"{v['aligned']['rel_rmse']:.3f}",
      f"{v['random']['rel_rmse']:.3f}",
    ]
  if row["kernel"] == "softmax":
    shown, cells = "-", ["-", "-", "exact", "exact"]
  diff = _ci(row["paired_diff"]) if "paired_diff" in row else ""
  if row.get("beats_default"):
    diff = f"**{diff} better**"
  elif row.get("worse_than_default"):
    diff += " worse"
  return (
    "| "
    + " | ".join(
      [row["kernel"], row["setting"], shown]
      + cells
      + [
        ",".join(map(str, row["seeds"])),
        ",".join(map(str, row["steps"])),
        _acc(row),
        _pct(row["val_final_mean"]),
        _pct(row["val_curve_mean"]),
        diff,
      ]
    )
    + " |"
  )


def render(data: dict) -> str:
  setup, rows, variance = data["setup"], data["summary"], data["variance"]
  reading = conclusions(rows)
  soft, ref = (
    [r for r in rows if r["kernel"] == "softmax"],
    data.get("softmax_reference"),
  )
  reading += [
    f"* Reference: softmax (exact attention) on the same data, "
    f"model and schedule: {_acc(r)} test accuracy over seeds "
    f"{','.join(map(str, r['seeds']))} (the softmax row)."
    for r in soft[:1]
  ]
  if ref:
    reading.append(
      f"* Reference: softmax on the same data and schedule (seed 0, "
      f"`{ref['source']}`) reached {100 * ref['val_accuracy']:.1f}% "
      f"validation accuracy at step {ref['step']} (compare with the "
      "`val acc. (last)` column)."
    )
  check = data.get("reproduction_check")
  if check:
    reading.append(
      f"* Check: `exp` default, seed 0, reached {100 * check['ours']:.1f}%"
      f" validation accuracy at step {check['step']}; the 3000-step "
      f"reduced run (`{check['source']}`) had "
      f"{100 * check['reduced']:.1f}% there."
    )
  var_rows = [
    f"| {v['kernel']} | {v['scale']:.3f} | {v['max_qk']:.2f} | "
    f"{'{:.2f}'.format(v['contrast']) if 'contrast' in v else '-'} | "
    f"{v['aligned']['rel_rmse']:.3f} | {v['aligned']['rel_bias']:+.3f} | "
    f"{v['random']['rel_rmse']:.3f} | "
    f"{v['aligned']['rel_std_paper_map']:.3g} |"
    for v in variance
  ]
  return (
    TEMPLATES["page"].format(
      s=DEFAULT_SCALE,
      s2=DEFAULT_SCALE**2,
      dh=HEAD_DIM,
      m=NUM_FEATURES,
      d=setup["data"],
      warmup=setup["warmup"],
      steps=setup["steps"],
      draws=setup["num_draws"],
      rows="\n".join(_accuracy_row(r, variance) for r in rows),
      reading="\n".join(reading),
      variance="\n".join(var_rows),
      recommendation="\n".join(recommendation_lines(rows, variance)),
      n=len(data["runs"]),
      missing=", ".join(data.get("missing", [])) or "none",
      machine=data["machine"],
    )
    + "\n"
  )


def make_plot(data: dict, path: str) -> None:
  """Test accuracy vs scale per kernel (seeds and mean), RMSE on a twin axis."""
  plt = common.pyplot()
  fig, axes = plt.subplots(1, len(KERNELS), figsize=(18, 4.5), sharey=True)
  softmax = [
    r["test_accuracy"] for r in data["runs"] if r["kernel"] == "softmax"
  ]
  labels = {
    "default": "Dh^-1/4 (authors)",
    "fixed": "fixed s",
    "learn": "learned s (final)",
  }
  ref = data.get("softmax_reference")
  for ax, kernel in zip(axes, KERNELS):
    runs = [r for r in data["runs"] if r["kernel"] == kernel]
    for setting, marker, color in (
      ("default", "s", "C3"),
      ("fixed", "o", "C0"),
      ("learn", "^", "C2"),
    ):
      pts = [
        (
          statistics.mean(r["learned_scales"])
          if setting == "learn" and r.get("learned_scales")
          else r["scale"],
          100 * r["test_accuracy"],
        )
        for r in runs
        if r["setting"] == setting
      ]
      if pts:
        ax.scatter(
          *zip(*pts),
          marker=marker,
          color=color,
          alpha=0.6,
          label=labels[setting],
        )
    means = [
      r
      for r in data["summary"]
      if r["kernel"] == kernel and r["setting"] != "learn"
    ]
    if means:
      ax.errorbar(
        [r["scale"] for r in means],
        [100 * r["test_mean"] for r in means],
        yerr=[100 * (r["test_std"] or 0) for r in means],
        color="k",
        lw=1,
        capsize=3,
        label="mean ± std",
      )
    if softmax:
      ax.axhline(
        100 * statistics.mean(softmax),
        color="0.5",
        ls="--",
        label="softmax (mean)",
      )
    if ref:
      ax.axhline(
        100 * ref["val_accuracy"],
        color="0.5",
        ls=":",
        label=f"softmax val. acc. at step {ref['step']} (seed 0)",
      )
    ax.axvline(DEFAULT_SCALE, color="C3", lw=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("q/k scale s (|q.k| <= s^2)")
    ax.set_title(kernel)
    var = [v for v in data["variance"] if v["kernel"] == kernel]
    if var:
      twin = ax.twinx()
      twin.plot(
        [v["scale"] for v in var],
        [v["aligned"]["rel_rmse"] for v in var],
        color="C1",
        ls=":",
        marker=".",
        label="RMSE of one kernel value (aligned)",
      )
      twin.set_yscale("log")
      twin.tick_params(axis="y", colors="C1")
      if kernel == KERNELS[-1]:
        twin.set_ylabel("relative RMSE, M = 128", color="C1")
        twin.legend(loc="lower right", fontsize=7)
  axes[0].set_ylabel(f"test accuracy (%), {data['setup']['steps']} steps")
  handles, labels = axes[0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
  fig.suptitle(
    "Reduced ListOps (L = 256): accuracy vs q/k scale per Maclaurin kernel"
  )
  fig.tight_layout(rect=(0, 0.07, 1, 1))
  fig.savefig(path, dpi=110)
  plt.close(fig)


def measure(args) -> dict:
  """docs/temperature.json's content: recorded and new runs, the summary,
  the variance cost of every scale, the references."""
  fresh = collect(args.runs) if os.path.isdir(args.runs) else []
  names = {r["run"] for r in fresh}
  records = sorted(
    [r for r in recorded_runs(args.docs) if r["run"] not in names] + fresh,
    key=lambda r: r["run"],
  )
  if not records:
    raise SystemExit(
      f"no finished run under {args.runs} or in {args.docs}: "
      "run `python -m benchmarks.temperature_study run` first"
    )
  summary = summarise(records)
  scales = {
    k: {DEFAULT_SCALE}
    | {
      s
      for g in GROUPS
      for kk, ss in g
      if kk == k
      for s in ss
      if not isinstance(s, str)
    }
    for k in KERNELS
  }
  for row in summary:  # the mean learned scale too
    if "learned_scale_mean" in row:
      scales[row["kernel"]].add(row["learned_scale_mean"])
  steps = sorted({r["steps"] for r in records})
  done = {r["run"] for r in records}
  return {
    "setup": {
      "steps": steps[0] if len(steps) == 1 else steps,
      "warmup": WARMUP,
      "eval_every": EVAL_EVERY,
      "data": DATA,
      "head_dim": HEAD_DIM,
      "num_features": NUM_FEATURES,
      "num_draws": args.num_draws,
      "command": "python -m benchmarks.temperature_study run",
    },
    "runs": records,
    "summary": summary,
    "variance": [
      v
      for k in KERNELS
      for v in variance_cost(k, sorted(scales[k]), args.num_draws)
    ],
    "missing": [run_name(*x) for x in schedule() if run_name(*x) not in done],
    "softmax_reference": softmax_reference(args.docs, steps[-1]),
    "reproduction_check": reproduction_check(args.docs, records, steps[-1]),
    "machine": common.host(),
  }


def report(args) -> None:
  json_path = os.path.join(args.docs, "temperature.json")
  data, why = (
    common.load_json(json_path) if args.from_docs else (measure(args), None)
  )
  if data is None:
    raise SystemExit(f"{json_path} is {why}")
  data["recommendation"] = {
    k: round(r["scale"], 4) for k, r in recommendation(data["summary"]).items()
  }
  common.write(json_path, json.dumps(data, indent=1))
  common.write(os.path.join(args.docs, "TEMPERATURE.md"), render(data))
  make_plot(data, os.path.join(args.docs, "temperature.png"))


def main(argv: Optional[List[str]] = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("command", choices=("run", "report"))
  parser.add_argument(
    "--runs", default=os.path.join(ROOT, "runs", "temperature")
  )
  parser.add_argument(
    "--docs",
    default=os.path.join(ROOT, "docs"),
    help="run: runs recorded in <docs>/temperature.json "
    "are done; report: where it writes",
  )
  parser.add_argument("--steps", type=int, default=NUM_STEPS)
  parser.add_argument(
    "--kernels", default="", help="run: comma-separated subset of the kernels"
  )
  parser.add_argument("--deadline_min", type=float, default=0.0)
  parser.add_argument("--nice", type=int, default=19)
  parser.add_argument("--parallel", type=int, default=1, help="runs at a time")
  parser.add_argument("--num_draws", type=int, default=4096)
  parser.add_argument(
    "--from_docs",
    action="store_true",
    help="report: rebuild from docs/temperature.json only",
  )
  args = parser.parse_args(argv)
  (run_grid if args.command == "run" else report)(args)


if __name__ == "__main__":
  main()
