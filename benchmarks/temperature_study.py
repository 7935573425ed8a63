r"""Temperature study: does Macformer's q/k scale Dh^-1/4 slow learning?

With PreSBN, q and k have unit norm, so after the scale s every dot product
satisfies |q.k| <= s^2. The authors' s = Dh^-1/4 (0.42 at Dh = 32) keeps
|q.k| <= 0.18, where every kernel is nearly flat (exp: weights within
[0.84, 1.19] of each other): attention is close to uniform by construction.
This study trains the reduced ListOps model of benchmarks/reduced_listops.sh
(same generated data, model and LRA schedule, shortened) with
  * the authors' default s = Dh^-1/4,
  * the learnable scale (`attention.options.learn_qk_scale`),
  * larger fixed scales inside each kernel's radius (s^2 < radius), and,
    for `exp` (entire), scales beyond 1,
for several seeds, and measures the random-feature variance each scale
costs.

  python benchmarks/temperature_study.py run     # trains into runs/temperature
  python benchmarks/temperature_study.py report  # docs/TEMPERATURE.md,
                                                 # docs/temperature.{json,png}
  python benchmarks/temperature_study.py report --from_docs  # from the JSON

`run` trains the grid in priority order (exp and inverse, then log and sqrt,
then a softmax reference), seed-major inside each group, one `run_lra.py`
process per run under `nice -n 19`, and skips runs that have a results.json,
so it can be stopped and restarted; `--deadline_min` stops starting new runs
after that many minutes. `report` renders whatever has finished.
"""

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Tuple

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reduced_results  # noqa: E402  (benchmarks/, for read_metrics)

HEAD_DIM = 32  # the reduced model: qkv 64 over 2 heads
NUM_FEATURES = 128
DEFAULT_SCALE = HEAD_DIM**-0.25
SEEDS = (0, 1, 2)
NUM_STEPS = 500
EVAL_EVERY = 100
WARMUP = 300  # as benchmarks/reduced_listops.sh (its first 500 steps)
# The data of benchmarks/reduced_listops.sh: seed 0, smoke distribution.
DATA = {"num_train": 20000, "num_val": 1000, "num_test": 1000,
        "min_length": 20, "max_length": 250, "max_depth": 6, "max_args": 10}

# Groups in priority order (exp and inverse first; the default, one larger
# scale and the learned scale of every kernel before the rest): (kernel,
# settings) pairs, each setting "default", "learn" or a fixed scale s. For
# the radius-1 kernels the fixed scales keep s^2 < 1; for exp they go
# beyond 1. Inside a group the runs go seed-major, so a cut-short group has
# balanced seeds.
GROUPS: Tuple[Tuple[Tuple[str, Tuple], ...], ...] = (
    (("exp", ("default", 1.0, "learn")),),
    (("inverse", ("default", 0.8, "learn")),),
    (("log", ("default", 0.8)), ("sqrt", ("default", 0.8))),
    (("log", ("learn",)), ("sqrt", ("learn",))),
    (("exp", (1.4,)),),
    (("exp", (2.0,)), ("softmax", ("default",))),
    (("exp", (0.7,)), ("inverse", (0.6,)), ("log", (0.6,)),
     ("sqrt", (0.6,))),
)
KERNELS = ("exp", "inverse", "log", "sqrt")

def setting_name(setting) -> str:
  if isinstance(setting, str):
    return setting
  return f"s{setting:.2f}".replace(".", "p")


def run_name(kernel: str, setting, seed: int) -> str:
  if kernel == "softmax":
    return f"softmax_seed{seed}"
  return f"{kernel}_{setting_name(setting)}_seed{seed}"


def schedule() -> List[Tuple[str, object, int]]:
  """(kernel, setting, seed) in the order the runs are trained."""
  order = []
  for group in GROUPS:
    for seed in SEEDS:
      for kernel, settings in group:
        order += [(kernel, setting, seed) for setting in settings]
  return order


def run_command(kernel: str, setting, seed: int, workdir: str,
                data_dir: str, num_steps: int) -> List[str]:
  """The run_lra.py command line of one run."""
  attention = "softmax" if kernel == "softmax" else f"macformer_{kernel}"
  cmd = [sys.executable, os.path.join(ROOT, "run_lra.py"),
         f"--config={os.path.join(ROOT, 'configs', 'listops.py')}:"
         f"{attention},smoke",
         f"--workdir={workdir}",
         f"--config.seed={seed}",
         f"--config.data.data_dir={data_dir}",
         f"--config.train.num_train_steps={num_steps}",
         f"--config.train.eval_frequency={EVAL_EVERY}",
         f"--config.train.checkpoint_every={num_steps}",
         f"--config.optimizer.warmup_steps={WARMUP}"]
  cmd += [f"--config.data.offline.{k}={v}" for k, v in DATA.items()
          if k in ("num_train", "num_val", "num_test")]
  if kernel != "softmax":
    cmd.append(f"--config.attention.options.num_features={NUM_FEATURES}")
    if setting == "learn":
      cmd.append("--config.attention.options.learn_qk_scale=True")
    elif setting != "default":
      cmd.append(f"--config.attention.options.qk_scale={setting}")
  return cmd


def ensure_data(data_dir: str) -> None:
  """Generates the reduced ListOps data (seed 0) once."""
  if os.path.exists(os.path.join(data_dir, "DONE")):
    return
  from lra_tasks import listops  # pylint: disable=g-import-not-at-top
  tmp = data_dir + ".tmp"
  listops.generate(tmp, seed=0, **DATA)
  with open(os.path.join(tmp, "DONE"), "w") as f:
    json.dump(DATA, f)
  os.replace(tmp, data_dir)


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except OSError:
    return False
  return True


def recorded_runs(docs: str) -> List[dict]:
  """The per-run records of an earlier session's docs/temperature.json.

  A new checkout has no runs/ directory: the committed records are what
  makes the study resumable across sessions and machines.
  """
  path = os.path.join(docs, "temperature.json")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return json.load(f).get("runs", [])


def _train_one(kernel, setting, seed, args, data_dir, recorded) -> None:
  """Trains one run (retrying failures), unless done or running elsewhere."""
  name = run_name(kernel, setting, seed)
  workdir = os.path.join(args.runs, name)
  if name in recorded or os.path.exists(
      os.path.join(workdir, "results.json")):
    return
  os.makedirs(workdir, exist_ok=True)
  lock = os.path.join(workdir, "RUNNING")
  if os.path.exists(lock):
    with open(lock) as f:
      pid = int(f.read().strip() or 0)
    if pid and _alive(pid):
      print(f"{_now()} {name}: running elsewhere (pid {pid})", flush=True)
      return
  cmd = ["nice", "-n", str(args.nice)] + run_command(
      kernel, setting, seed, workdir, data_dir, args.steps)
  for attempt in range(args.retries + 1):
    t0 = time.time()
    print(f"{_now()} start {name}", flush=True)
    with open(os.path.join(workdir, "log.txt"), "a") as log:
      proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                              cwd=ROOT)
      with open(lock, "w") as f:
        f.write(str(proc.pid))
      rc = proc.wait()
    os.remove(lock)
    print(f"{_now()} {name}: rc={rc} {time.time() - t0:.0f}s", flush=True)
    if rc == 0:
      break
    # The working tree is shared: a failure is often a file being edited
    # (an import error); wait and resume from the run's checkpoint.
    if attempt < args.retries:
      time.sleep(args.retry_wait)


def run_grid(args) -> None:
  """Trains the grid in `schedule()` order, `args.parallel` runs at a time."""
  os.makedirs(args.runs, exist_ok=True)
  data_dir = os.path.join(args.runs, "data")
  ensure_data(data_dir)
  start = time.time()
  kernels = set(args.kernels.split(",")) if args.kernels else None
  recorded = {r["run"] for r in recorded_runs(args.docs)}
  todo = [x for x in schedule() if (kernels is None or x[0] in kernels)
          and run_name(*x) not in recorded]
  print(f"{_now()} {len(recorded)} runs recorded in {args.docs}, "
        f"{len(todo)} to train", flush=True)
  lock = threading.Lock()

  def worker():
    while True:
      with lock:
        if not todo:
          return
        if args.deadline_min and time.time() - start > 60 * args.deadline_min:
          print(f"{_now()} deadline reached; {len(todo)} runs not started",
                flush=True)
          todo.clear()
          return
        item = todo.pop(0)
      _train_one(*item, args, data_dir, recorded)

  threads = [threading.Thread(target=worker) for _ in range(args.parallel)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S")


# ----------------------------------------------------------------------------
# Variance cost of a scale.
# ----------------------------------------------------------------------------
def _pair(cosine: float, dim: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
  """Two centred unit vectors (PreSBN outputs) with x . y = cosine."""
  rng = np.random.default_rng(seed)
  x, z = rng.standard_normal((2, dim))
  x -= x.mean()
  x /= np.linalg.norm(x)
  z -= z.mean()
  z -= (z @ x) * x
  z /= np.linalg.norm(z)
  return x, cosine * x + math.sqrt(1.0 - cosine**2) * z


def variance_cost(kernel: str, scales: List[float], num_draws: int = 4096,
                  seed: int = 0) -> List[dict]:
  """Error of one RMF estimate phi(q).phi(k) of f(q.k) at M = 128, Dh = 32.

  For PreSBN'd q, k scaled by s, at two pairs: aligned (q = k, t = s^2, the
  pair attention wants to single out) and a typical random pair (cosine
  1/sqrt(Dh - 1), one standard deviation of two random centred unit
  vectors). Empirical: the library's default map (stratified degrees,
  chained projections, as RMFAttention uses), `num_draws` independent maps;
  reports the relative RMSE sqrt(var + bias^2) / f(t) (the stratified map
  truncates the series at a low degree, so it has a bias at large t), and
  the paper's `sampled`/`independent` map's relative standard deviation from
  the closed form `features.rmf_variance`. Also the contrast f(s^2) /
  f(-s^2): the largest ratio of two attention weights the scale allows.
  """
  import jax  # pylint: disable=g-import-not-at-top
  from macformer_jax import features  # pylint: disable=g-import-not-at-top
  from macformer_jax import kernels  # pylint: disable=g-import-not-at-top

  keys = jax.random.split(jax.random.key(seed), num_draws)

  def estimate(key, x, y):
    params = features.sample_rmf(key, HEAD_DIM, NUM_FEATURES, kernel,
                                 "stratified", projection="chained")
    return features.rmf(params, x) @ features.rmf(params, y)

  estimates = jax.jit(jax.vmap(estimate, in_axes=(0, None, None)))
  rows = []
  pairs = {"aligned": _pair(1.0, HEAD_DIM, seed),
           "random": _pair(1.0 / math.sqrt(HEAD_DIM - 1), HEAD_DIM, seed)}
  for s in scales:
    row = {"kernel": kernel, "scale": s, "max_qk": s * s}
    if s * s < kernels.get(kernel).radius:
      row["contrast"] = float(kernels.exact(kernel, s * s)
                              / kernels.exact(kernel, -s * s))
    for name, (x, y) in pairs.items():
      x, y = s * x, s * y
      t = float(x @ y)
      exact = float(kernels.exact(kernel, t))

      values = np.asarray(estimates(keys, x, y), np.float64)
      bias = values.mean() - exact
      row[name] = {
          "t": t, "f": exact,
          "rel_rmse": math.sqrt(values.var() + bias**2) / abs(exact),
          "rel_bias": bias / exact,
          "rel_std_paper_map": math.sqrt(max(float(features.rmf_variance(
              kernel, x, y, NUM_FEATURES)), 0.0)) / abs(exact),
      }
    rows.append(row)
  return rows


# ----------------------------------------------------------------------------
# Report.
# ----------------------------------------------------------------------------
def _setting_of(config: dict) -> Tuple[str, object]:
  """(kernel, setting) of a run config."""
  options = config["attention"]["options"]
  if config["attention"]["name"] == "softmax":
    return "softmax", "default"
  kernel = options["kernel"]
  if options.get("learn_qk_scale"):
    return kernel, "learn"
  if options.get("qk_scale") is None:
    return kernel, "default"
  return kernel, float(options["qk_scale"])


def learned_scale(workdir: str, kernel: str) -> Optional[List[float]]:
  """The learned q/k scales s_max * sigmoid(logit) of a finished run."""
  from macformer_jax import attention  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  latest = os.path.join(workdir, "checkpoints", "latest")
  steps = sorted(int(d) for d in os.listdir(latest) if d.isdigit())
  if not steps:
    return None
  tree = ocp.StandardCheckpointer().restore(
      os.path.abspath(os.path.join(latest, str(steps[-1]), "state")))
  found = []

  def visit(node):
    if isinstance(node, dict):
      for key, value in sorted(node.items()):
        if key == "qk_scale_logit":
          found.append(float(np.asarray(value)))
        else:
          visit(value)
  visit(tree.get("params", tree) if isinstance(tree, dict) else tree)
  s_max = attention.max_qk_scale(kernel)
  return [s_max / (1.0 + math.exp(-logit)) for logit in found] or None


def collect(runs_dir: str) -> List[dict]:
  """One record per finished run under `runs_dir`."""
  records = []
  for name in sorted(os.listdir(runs_dir)):
    path = os.path.join(runs_dir, name, "results.json")
    if not os.path.exists(path):
      continue
    with open(path) as f:
      results = json.load(f)
    kernel, setting = _setting_of(results["config"])
    curve, speeds = reduced_results.read_metrics(
        os.path.join(runs_dir, name))
    record = {
        "run": name, "kernel": kernel,
        "setting": setting if isinstance(setting, str) else "fixed",
        "scale": (DEFAULT_SCALE if setting in ("default", "learn")
                  else setting),
        "seed": results["config"]["seed"], "steps": results["steps"],
        "test_accuracy": results["test_accuracy"],
        "test_accuracy_best_eval": results["test_accuracy_best_eval"],
        "eval_curve": curve,
        "median_train_steps_per_sec": (statistics.median(speeds)
                                       if speeds else None),
    }
    if setting == "learn":
      try:
        record["learned_scales"] = learned_scale(
            os.path.join(runs_dir, name), kernel)
      except Exception as e:  # pylint: disable=broad-except
        record["learned_scales_error"] = f"{type(e).__name__}: {e}"[:200]
    records.append(record)
  return records


# Two-sided 95% Student t quantiles by degrees of freedom.
_T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36}


def _key(record: dict) -> Tuple[str, str, float]:
  return record["kernel"], record["setting"], round(record["scale"], 4)


def summarise(records: List[dict]) -> List[dict]:
  """Mean, std over seeds per (kernel, setting, scale), and the paired
  difference (same seed) to the kernel's default."""
  groups: Dict[Tuple, List[dict]] = {}
  for r in records:
    groups.setdefault(_key(r), []).append(r)
  default = {k[0]: {r["seed"]: r for r in v} for k, v in groups.items()
             if k[1] == "default"}
  rows = []
  for key in sorted(groups, key=lambda k: (
      (KERNELS + ("softmax",)).index(k[0]) if k[0] in KERNELS + ("softmax",)
      else 9, k[1] != "default", k[1] != "learn", k[2])):
    runs = sorted(groups[key], key=lambda r: r["seed"])
    test = [r["test_accuracy"] for r in runs]
    final = [r["eval_curve"][-1][1] for r in runs if r["eval_curve"]]
    area = [statistics.mean(a for _, a in r["eval_curve"]) for r in runs
            if r["eval_curve"]]
    row = {"kernel": key[0], "setting": key[1], "scale": key[2],
           "seeds": [r["seed"] for r in runs],
           "steps": sorted({r["steps"] for r in runs}),
           "test_mean": statistics.mean(test),
           "test_std": statistics.stdev(test) if len(test) > 1 else None,
           "val_final_mean": statistics.mean(final) if final else None,
           "val_curve_mean": statistics.mean(area) if area else None}
    learned = [s for r in runs for s in (r.get("learned_scales") or [])]
    if learned:
      row["learned_scale_mean"] = statistics.mean(learned)
      row["learned_scale_range"] = [min(learned), max(learned)]
    base = default.get(key[0], {})
    diffs = [r["test_accuracy"] - base[r["seed"]]["test_accuracy"]
             for r in runs if r["seed"] in base]
    if key[1] != "default" and len(diffs) >= 2:
      mean = statistics.mean(diffs)
      se = statistics.stdev(diffs) / math.sqrt(len(diffs))
      half = _T95.get(len(diffs) - 1, 2.0) * se
      row["paired_diff"] = {"n": len(diffs), "mean": mean, "se": se,
                            "ci95": [mean - half, mean + half],
                            "min": min(diffs)}
      row["beats_default"] = mean - half > 0
      row["worse_than_default"] = mean + half < 0
    rows.append(row)
  return rows


def _fmt_pct(mean, std) -> str:
  if mean is None:
    return ""
  if std is None:
    return f"{100 * mean:.1f}"
  return f"{100 * mean:.1f} ± {100 * std:.1f}"


def _variance_for(variance: List[dict], kernel: str, scale: float):
  for v in variance:
    if v["kernel"] == kernel and abs(v["scale"] - scale) < 1e-3:
      return v
  return None


def render(data: dict) -> str:
  setup, rows, variance = data["setup"], data["summary"], data["variance"]
  lines = [
      "# The temperature question: does Macformer's q/k scale slow "
      "learning?",
      "",
      "With PreSBN every query and key has unit norm, so after the scale s "
      "(the authors': Dh^-1/4 = "
      f"{DEFAULT_SCALE:.3f} at Dh = {HEAD_DIM}) every dot product satisfies "
      "|q.k| <= s^2 = "
      f"{DEFAULT_SCALE**2:.3f}: no key can get more than f(s^2)/f(-s^2) "
      "(about 1.4 for exp) times the weight of another, so attention is "
      "close to uniform by construction. A larger s sharpens attention but "
      "raises the variance of the random Maclaurin estimate (METHOD.md §2.2). "
      "This study trains the same model with several scales and measures "
      "both sides.",
      "",
      "**Setting (reduced, CPU-sized; not an LRA result).** The data and "
      "model of `benchmarks/reduced_listops.sh` (docs/RESULTS.md): generated "
      "ListOps, seed 0, trees of "
      f"{setup['data']['min_length']}-{setup['data']['max_length']} tokens, "
      f"L = 256, {setup['data']['num_train']}/{setup['data']['num_val']}/"
      f"{setup['data']['num_test']} train/val/test; emb 64, 2 layers, 2 heads "
      f"(Dh = {HEAD_DIM}), MLP 128, {NUM_FEATURES} random features; batch 32 "
      f"and LRA's schedule (0.05 * linear warmup {setup['warmup']} * rsqrt "
      f"decay), **shortened to {setup['steps']} steps** (the first "
      f"{setup['steps']} steps of the 3000-step reduced run of "
      "docs/RESULTS.md, where Macformer learned slower than softmax). Each "
      "setting ran with the seeds listed (the seed sets the initialisation, "
      "the random features and the data order; the data are the same). Test "
      f"accuracy is on the {setup['data']['num_test']} test examples at the "
      "last step (standard error of one accuracy near 30%: about 1.4 points)."
      " `learn` is `attention.options.learn_qk_scale=True` (s = s_max * "
      "sigmoid(logit), initialised at Dh^-1/4, s_max = 1 for exp and "
      "sqrt(0.4) for the radius-1 kernels).",
      "",
      "Reproduce:",
      "",
      "```bash",
      "python benchmarks/temperature_study.py run      # trains into "
      "runs/temperature (resumable)",
      "python benchmarks/temperature_study.py report   # writes this file, "
      "docs/temperature.json and docs/temperature.png",
      "```",
      "",
      "## Accuracy and variance cost per kernel and scale",
      "",
      "s: the q/k scale; max |q.k| = s^2; contrast: f(s^2)/f(-s^2), the "
      "largest ratio of two attention weights; RMSE: the relative error "
      "sqrt(var + bias^2)/f(t) of one kernel value phi(q).phi(k) of the "
      f"library's default map (M = {NUM_FEATURES}, {setup['num_draws']} "
      "draws) for an aligned pair (q = k, t = s^2) and for a typical random "
      "pair (t = s^2/sqrt(Dh-1)). Accuracies in %, mean ± std over seeds; "
      "paired diff.: test accuracy minus the default's with the same seed, "
      "mean and 95% t-interval.",
      "",
      "| kernel | setting | s | max \\|q.k\\| | contrast | RMSE aligned | "
      "RMSE random | seeds | steps | test acc. | val acc. (last) | "
      "val acc. (mean of evals) | paired diff. vs default |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for row in rows:
    scale = row["scale"]
    shown = f"{scale:.2f}"
    if row["setting"] == "learn":
      shown = "learned"
      if "learned_scale_mean" in row:
        lo, hi = row["learned_scale_range"]
        shown = f"{lo:.2f}-{hi:.2f} (learned)"
    v = None
    if row["kernel"] != "softmax":
      v = _variance_for(variance, row["kernel"], scale if row["setting"] !=
                        "learn" else row.get("learned_scale_mean", scale))
    cells = ["", "", "", ""]
    if v is not None:
      cells = [f"{v['max_qk']:.2f}",
               f"{v['contrast']:.2f}" if "contrast" in v else "-",
               f"{v['aligned']['rel_rmse']:.3f}",
               f"{v['random']['rel_rmse']:.3f}"]
    if row["kernel"] == "softmax":
      shown, cells = "-", ["-", "-", "exact", "exact"]
    diff = ""
    if "paired_diff" in row:
      d = row["paired_diff"]
      diff = (f"{100 * d['mean']:+.1f} [{100 * d['ci95'][0]:+.1f}, "
              f"{100 * d['ci95'][1]:+.1f}]")
      if row.get("beats_default"):
        diff = f"**{diff} better**"
      elif row.get("worse_than_default"):
        diff += " worse"
    lines.append(
        f"| {row['kernel']} | {row['setting']} | {shown} | " +
        " | ".join(cells) +
        f" | {','.join(str(s) for s in row['seeds'])} | "
        f"{','.join(str(s) for s in row['steps'])} | "
        f"{_fmt_pct(row['test_mean'], row['test_std'])} | "
        f"{_fmt_pct(row['val_final_mean'], None)} | "
        f"{_fmt_pct(row['val_curve_mean'], None)} | {diff} |")
  lines += ["", "## Reading", ""] + conclusions(rows)
  soft = next((r for r in rows if r["kernel"] == "softmax"), None)
  if soft:
    lines += [f"* Reference: softmax (exact attention) on the same data, "
              f"model and schedule: "
              f"{_fmt_pct(soft['test_mean'], soft['test_std'])} test "
              f"accuracy over seeds {','.join(map(str, soft['seeds']))} "
              "(the softmax row)."]
  ref = data.get("softmax_reference")
  if ref:
    lines += [f"* Reference: softmax on the same data and schedule (seed 0, "
              f"`{ref['source']}`) reached {100 * ref['val_accuracy']:.1f}% "
              f"validation accuracy at step {ref['step']} (compare with the "
              "`val acc. (last)` column)."]
  check = data.get("reproduction_check")
  if check:
    lines += [f"* Check: `exp` default, seed 0, reached "
              f"{100 * check['ours']:.1f}% validation accuracy at step "
              f"{check['step']}; the 3000-step reduced run "
              f"(`{check['source']}`) had {100 * check['reduced']:.1f}% "
              "there."]
  lines += ["* Caveats: one shortened schedule on one reduced task; a "
            "larger scale also costs variance (the RMSE columns), which "
            "may matter more at longer lengths and for the radius-1 "
            "kernels, whose series diverge as s^2 approaches 1."]
  lines += ["", "![accuracy vs scale](temperature.png)", ""]
  lines += recommendation_lines(rows, variance)
  lines += [
            "## Variance cost of every scale measured", "",
            "## Variance cost of every scale measured", "",
            "| kernel | s | max \\|q.k\\| | contrast | RMSE aligned | "
            "bias aligned | RMSE random | paper's map std, aligned |",
            "|---|---|---|---|---|---|---|---|"]
  for v in variance:
    lines.append(
        f"| {v['kernel']} | {v['scale']:.3f} | {v['max_qk']:.2f} | "
        f"{v['contrast']:.2f} | " if "contrast" in v else
        f"| {v['kernel']} | {v['scale']:.3f} | {v['max_qk']:.2f} | - | ")
    lines[-1] += (f"{v['aligned']['rel_rmse']:.3f} | "
                  f"{v['aligned']['rel_bias']:+.3f} | "
                  f"{v['random']['rel_rmse']:.3f} | "
                  f"{v['aligned']['rel_std_paper_map']:.3g} |")
  missing = data.get("missing", [])
  lines += ["", "## What ran", "",
            f"{len(data['runs'])} runs finished ({setup['steps']} steps "
            "each). Planned, not finished when this report was generated "
            "(the grid runs in priority order on a shared 2-core CPU; "
            "`temperature_study.py run` resumes it): " +
            (", ".join(missing) if missing else "none") + ".", "",
            f"Machine: {data['machine']['platform']}, "
            f"{data['machine']['cpus']} CPUs, shared with other work (runs "
            "at nice 19, or two at a time: the steps/s in the records are "
            "not comparable); per-run records with eval curves: "
            "`docs/temperature.json`.", ""]
  return "\n".join(lines)


def well_behaved_max(kernel: str) -> float:
  """The library's largest well-behaved fixed scale (no warning)."""
  from macformer_jax import attention  # pylint: disable=g-import-not-at-top
  return attention.max_qk_scale(kernel)


def recommendation(rows: List[dict]) -> Dict[str, dict]:
  """The recommended fixed scale per kernel, by a rule stated in advance.

  Among the fixed scales inside the library's well-behaved range
  (s <= attention.max_qk_scale, where `check_qk_scale` does not warn), with
  at least 3 seeds, that improved on the default with every seed (paired),
  the one with the highest mean test accuracy. Kernels without such a
  scale get no entry. configs/common.py's `TUNED_QK_SCALE` (the
  `macformer_<kernel>_tuned` presets) must equal this on docs/temperature.json
  (tests/configs_test.py).
  """
  out = {}
  for kernel in KERNELS:
    candidates = [
        r for r in rows if r["kernel"] == kernel and r["setting"] == "fixed"
        and r["scale"] <= well_behaved_max(kernel) + 1e-9
        and r.get("paired_diff", {}).get("n", 0) >= 3
        and r["paired_diff"].get("min", -1.0) > 0]
    if candidates:
      out[kernel] = max(candidates, key=lambda r: r["test_mean"])
  return out


def recommendation_lines(rows: List[dict], variance: List[dict]) -> List[str]:
  """The recommendation section (rule, one line per kernel)."""
  rec = recommendation(rows)
  lines = ["## Recommendation", "",
           "Rule (`recommendation()`): "
           "among the fixed scales inside the library's well-behaved range "
           "(s <= `attention.max_qk_scale`: 1 for exp, sqrt(0.4) = 0.63 for "
           "the radius-1 kernels; above it `check_qk_scale` warns), with >= 3 "
           "seeds each better than the default's same seed, the highest mean "
           "test accuracy. The presets `macformer_<kernel>_tuned` "
           "(configs/common.py `TUNED_QK_SCALE`) use it; `macformer_<kernel>` "
           "keeps the authors' Dh^-1/4.", ""]
  for kernel in KERNELS:
    mine = [r for r in rows if r["kernel"] == kernel]
    if not mine:
      continue
    default = next((r for r in mine if r["setting"] == "default"), None)
    r = rec.get(kernel)
    if r is None:
      lines.append(f"* **{kernel}**: no scale met the rule; keep the "
                   "default.")
      continue
    v = _variance_for(variance, kernel, r["scale"])
    cost = (f"; kernel RMSE at M = {NUM_FEATURES} (aligned pair) "
            f"{v['aligned']['rel_rmse']:.3f}" if v else "")
    if v and default is not None:
      d = _variance_for(variance, kernel, default["scale"])
      if d:
        cost += f" against {d['aligned']['rel_rmse']:.3f} at the default"
    pd = r["paired_diff"]
    text = (f"* **{kernel}**: `qk_scale={r['scale']:g}` "
            f"(`macformer_{kernel}_tuned`), "
            f"{_fmt_pct(r['test_mean'], r['test_std'])} vs "
            f"{_fmt_pct(default['test_mean'], default['test_std'])} "
            f"for the default; paired {100 * pd['mean']:+.1f} "
            f"[{100 * pd['ci95'][0]:+.1f}, {100 * pd['ci95'][1]:+.1f}], "
            f"every seed better{cost}.")
    beyond = [x for x in mine if x["setting"] == "fixed"
              and x["scale"] > well_behaved_max(kernel) + 1e-9
              and x.get("beats_default") and x["test_mean"] > r["test_mean"]]
    for x in beyond:
      xd = x["paired_diff"]
      text += (f" Above the range, s = {x['scale']:g} scored higher "
               f"({_fmt_pct(x['test_mean'], x['test_std'])}, paired "
               f"{100 * xd['mean']:+.1f} [{100 * xd['ci95'][0]:+.1f}, "
               f"{100 * xd['ci95'][1]:+.1f}]); it is not "
               "the preset because the library warns there (its bound on the "
               "sampled plan's variance diverges for s^4 >= 1/6), though "
               "the default stratified plan's measured RMSE is in the table "
               "below.")
    lines.append(text)
  return lines + [""]


def conclusions(rows: List[dict]) -> List[str]:
  """Plain sentences from the paired differences (no hand-typed numbers)."""
  out = []
  for kernel in KERNELS:
    mine = [r for r in rows if r["kernel"] == kernel]
    if not mine:
      continue
    default = next((r for r in mine if r["setting"] == "default"), None)
    better = [r for r in mine if r.get("beats_default")]
    worse = [r for r in mine if r.get("worse_than_default")]
    best = max(mine, key=lambda r: r["test_mean"])

    def name(r):
      return "learned scale" if r["setting"] == "learn" else (
          f"s = {r['scale']:.2f}")
    text = f"* **{kernel}**: "
    if default is not None:
      n = len(default["seeds"])
      text += (f"default {_fmt_pct(default['test_mean'], default['test_std'])}"
               f" ({n} seed{'s' if n != 1 else ''}); best mean {name(best)} "
               f"{_fmt_pct(best['test_mean'], best['test_std'])}. ")
    if better:
      text += ("Beats the default beyond seed noise (95% paired interval "
               "above 0): " + ", ".join(name(r) for r in better) + ". ")
    elif not any("paired_diff" in r for r in mine):
      text += "Too few seeds for a paired comparison yet. "
    else:
      text += "No setting beats the default beyond seed noise. "
    if worse:
      text += "Worse than the default: " + ", ".join(
          name(r) for r in worse) + ". "
    for r in mine:
      if "learned_scale_mean" in r:
        lo, hi = r["learned_scale_range"]
        text += (f"The learned scale moved from {DEFAULT_SCALE:.2f} to "
                 f"{lo:.2f}-{hi:.2f} (mean {r['learned_scale_mean']:.2f}, "
                 f"over layers and seeds) in {max(r['steps'])} steps.")
    out.append(text)
  return out


def make_plot(data: dict, path: str) -> None:
  """Test accuracy vs scale per kernel (seeds and mean), RMSE on a twin axis."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, axes = plt.subplots(1, len(KERNELS), figsize=(18, 4.5), sharey=True)
  softmax = [r["test_accuracy"] for r in data["runs"]
             if r["kernel"] == "softmax"]
  for ax, kernel in zip(axes, KERNELS):
    runs = [r for r in data["runs"] if r["kernel"] == kernel]
    for setting, marker, color in (("default", "s", "C3"),
                                   ("fixed", "o", "C0"),
                                   ("learn", "^", "C2")):
      xs, ys = [], []
      for r in runs:
        if r["setting"] != setting:
          continue
        x = r["scale"]
        if setting == "learn" and r.get("learned_scales"):
          x = statistics.mean(r["learned_scales"])
        xs.append(x)
        ys.append(100 * r["test_accuracy"])
      if xs:
        ax.scatter(xs, ys, marker=marker, color=color, alpha=0.6,
                   label={"default": "Dh^-1/4 (authors)", "fixed": "fixed s",
                          "learn": "learned s (final)"}[setting])
    means = [r for r in data["summary"] if r["kernel"] == kernel
             and r["setting"] != "learn"]
    if means:
      ax.errorbar([r["scale"] for r in means],
                  [100 * r["test_mean"] for r in means],
                  yerr=[100 * (r["test_std"] or 0) for r in means],
                  color="k", lw=1, capsize=3, label="mean ± std")
    if softmax:
      ax.axhline(100 * statistics.mean(softmax), color="0.5", ls="--",
                 label="softmax (mean)")
    ref = data.get("softmax_reference")
    if ref:
      ax.axhline(100 * ref["val_accuracy"], color="0.5", ls=":",
                 label=f"softmax val. acc. at step {ref['step']} (seed 0)")
    ax.axvline(DEFAULT_SCALE, color="C3", lw=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("q/k scale s (|q.k| <= s^2)")
    ax.set_title(kernel)
    var = [v for v in data["variance"] if v["kernel"] == kernel]
    if var:
      twin = ax.twinx()
      twin.plot([v["scale"] for v in var],
                [v["aligned"]["rel_rmse"] for v in var], color="C1", ls=":",
                marker=".", label="RMSE of one kernel value (aligned)")
      twin.set_yscale("log")
      twin.tick_params(axis="y", colors="C1")
      if kernel == KERNELS[-1]:
        twin.set_ylabel("relative RMSE, M = 128", color="C1")
        twin.legend(loc="lower right", fontsize=7)
  axes[0].set_ylabel(f"test accuracy (%), {data['setup']['steps']} steps")
  handles, labels = axes[0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="lower center", ncol=len(labels),
             fontsize=8)
  fig.suptitle("Reduced ListOps (L = 256): accuracy vs q/k scale per "
               "Maclaurin kernel")
  fig.tight_layout(rect=(0, 0.07, 1, 1))
  fig.savefig(path, dpi=110)
  plt.close(fig)


def softmax_reference(docs: str, step: int) -> Optional[dict]:
  """Softmax's val accuracy at `step` in the reduced run of RESULTS.md.

  Same data, model and schedule (LRA's schedule does not depend on the run
  length, so its first steps are this study's), seed 0.
  """
  path = os.path.join(docs, "results", "reduced_listops_softmax.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    run = json.load(f)
  accuracy = dict((s, a) for s, a in run.get("eval_curve", [])).get(step)
  if accuracy is None:
    return None
  return {"step": step, "val_accuracy": accuracy, "seed": 0,
          "source": os.path.relpath(path, ROOT)}


def reproduction_check(docs: str, records: List[dict],
                       step: int) -> Optional[dict]:
  """exp default seed 0 vs the reduced macformer_exp run at `step`."""
  path = os.path.join(docs, "results", "reduced_listops_macformer_exp.json")
  ours = [r for r in records if r["kernel"] == "exp" and r["seed"] == 0
          and r["setting"] == "default"]
  if not ours or not os.path.exists(path):
    return None
  with open(path) as f:
    reduced = dict(map(tuple, json.load(f).get("eval_curve", [])))
  mine = dict(map(tuple, ours[0]["eval_curve"]))
  if step not in reduced or step not in mine:
    return None
  return {"step": step, "ours": mine[step], "reduced": reduced[step],
          "source": os.path.relpath(path, ROOT)}


def planned_runs() -> List[str]:
  return [run_name(*x) for x in schedule()]


def report(args) -> None:
  json_path = os.path.join(args.docs, "temperature.json")
  if args.from_docs:
    with open(json_path) as f:
      data = json.load(f)
  else:
    fresh = collect(args.runs) if os.path.isdir(args.runs) else []
    names = {r["run"] for r in fresh}
    records = sorted([r for r in recorded_runs(args.docs)
                      if r["run"] not in names] + fresh,
                     key=lambda r: r["run"])
    if not records:
      raise SystemExit(f"no finished run under {args.runs} or in "
                       f"{json_path}: run "
                       "`python benchmarks/temperature_study.py run` first")
    done = {r["run"] for r in records}
    summary = summarise(records)
    scales = {k: sorted({DEFAULT_SCALE} | {
        s for kk, settings in (x for g in GROUPS for x in g) if kk == k
        for s in settings if not isinstance(s, str)}) for k in KERNELS}
    for row in summary:  # the mean learned scale too
      if "learned_scale_mean" in row:
        scales[row["kernel"]].append(row["learned_scale_mean"])
    steps = sorted({r["steps"] for r in records})
    data = {
        "setup": {"steps": steps[0] if len(steps) == 1 else steps,
                  "warmup": WARMUP, "eval_every": EVAL_EVERY,
                  "data": DATA, "head_dim": HEAD_DIM,
                  "num_features": NUM_FEATURES, "num_draws": args.num_draws,
                  "command": "python benchmarks/temperature_study.py run"},
        "runs": records,
        "summary": summary,
        "variance": [v for k in KERNELS for v in variance_cost(
            k, sorted(set(scales[k])), args.num_draws)],
        "missing": [n for n in planned_runs() if n not in done],
        "softmax_reference": softmax_reference(args.docs, steps[-1]),
        "reproduction_check": reproduction_check(args.docs, records,
                                                 steps[-1]),
        "machine": {"platform": platform.platform(),
                    "cpus": os.cpu_count()},
    }
    os.makedirs(args.docs, exist_ok=True)
    with open(json_path, "w") as f:
      json.dump(data, f, indent=1)
  text = render(data)
  with open(os.path.join(args.docs, "TEMPERATURE.md"), "w") as f:
    f.write(text)
  make_plot(data, os.path.join(args.docs, "temperature.png"))
  print(text)


def main(argv: Optional[List[str]] = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  sub = parser.add_subparsers(dest="command", required=True)
  run = sub.add_parser("run", help="train the grid into --runs")
  run.add_argument("--runs", default=os.path.join(ROOT, "runs", "temperature"))
  run.add_argument("--docs", default=os.path.join(ROOT, "docs"),
                   help="runs recorded in <docs>/temperature.json are done")
  run.add_argument("--steps", type=int, default=NUM_STEPS)
  run.add_argument("--kernels", default="",
                   help="comma-separated subset (exp,inverse,log,sqrt,softmax)")
  run.add_argument("--deadline_min", type=float, default=0.0)
  run.add_argument("--nice", type=int, default=19)
  run.add_argument("--retries", type=int, default=5,
                   help="retries of a failed run (after --retry_wait s)")
  run.add_argument("--retry_wait", type=float, default=60.0)
  run.add_argument("--parallel", type=int, default=1,
                   help="runs at a time (at nice 19, two runs take a larger "
                   "share of a busy machine's spare cycles than one)")
  rep = sub.add_parser("report", help="write docs/TEMPERATURE.md, "
                       "docs/temperature.{json,png}")
  rep.add_argument("--runs", default=os.path.join(ROOT, "runs", "temperature"))
  rep.add_argument("--docs", default=os.path.join(ROOT, "docs"))
  rep.add_argument("--num_draws", type=int, default=4096)
  rep.add_argument("--from_docs", action="store_true",
                   help="rebuild from docs/temperature.json only")
  args = parser.parse_args(argv)
  if args.command == "run":
    run_grid(args)
  else:
    report(args)


if __name__ == "__main__":
  main()
