r"""Diagnostic: is Macformer's plateau the scale or the random features?

At the authors' q/k scale Dh^-1/4, `macformer_exp` (RMFA, exp kernel)
learns far slower than softmax (docs/TEMPERATURE.md; at L = 2000 it sits at
chance, docs/lra_table.md). Two explanations: with PreSBN every |q.k| is at
most s^2 = 0.18, so attention is near uniform by construction; or the
random Maclaurin features' noise hides what attention there is. This script
trains the exact exp-kernel attention that RMFA estimates (preset
`macformer_exp_exact`: the same PreSBN, scale and PostSBN, weights
exp(q.k) computed exactly, no random features; `macformer_exp_exact_tuned`:
the tuned scale 0.7) at the temperature study's reduced ListOps setting (the
same data, model, schedule, 500 steps and seeds), and sets it beside that
study's RMFA and softmax runs (docs/temperature.json). If the exact kernel
at Dh^-1/4 learns like softmax, the features' noise is to blame; if it stays
with RMFA at Dh^-1/4, near-uniform attention is.

  python benchmarks/exact_kernel_diagnostic.py run      # runs/exact_kernel
  python benchmarks/exact_kernel_diagnostic.py report   # docs/exact_kernel.json
                                                        # and docs/DIAGNOSTIC.md
  python benchmarks/exact_kernel_diagnostic.py report --from_docs

`run` skips runs with a results.json, so it resumes; `--only` picks runs by
name. `report --from_docs` re-renders the Markdown from the JSON.
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
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import temperature_study as ts  # noqa: E402  (benchmarks/: same setting)

# setting -> (attention preset, the temperature study's matching RMFA
# setting, its q/k scale).
SETTINGS = {
    "exact_default": ("macformer_exp_exact", "default", ts.DEFAULT_SCALE),
    "exact_0.70": ("macformer_exp_exact_tuned", 0.7, 0.7),
}
PLATEAU_MARGIN = 0.05  # escape: val accuracy > majority class + 5 points


def run_name(setting: str, seed: int) -> str:
  return f"{setting.replace('.', 'p')}_seed{seed}"


def run_command(setting: str, seed: int, workdir: str, data_dir: str,
                num_steps: int) -> List[str]:
  """run_lra.py with the temperature study's flags, the exact core."""
  cmd = [sys.executable, os.path.join(ROOT, "run_lra.py"),
         f"--config={os.path.join(ROOT, 'configs', 'listops.py')}:"
         f"{SETTINGS[setting][0]},smoke",
         f"--workdir={workdir}",
         f"--config.seed={seed}",
         f"--config.data.data_dir={data_dir}",
         f"--config.train.num_train_steps={num_steps}",
         f"--config.train.eval_frequency={ts.EVAL_EVERY}",
         f"--config.train.checkpoint_every={num_steps}",
         f"--config.optimizer.warmup_steps={ts.WARMUP}"]
  return cmd + [f"--config.data.offline.{k}={v}" for k, v in ts.DATA.items()
                if k in ("num_train", "num_val", "num_test")]


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).strftime(
      "%Y-%m-%dT%H:%M:%SZ")


def _train_one(setting: str, seed: int, args, data_dir: str) -> None:
  name = run_name(setting, seed)
  workdir = os.path.join(args.runs, name)
  if os.path.exists(os.path.join(workdir, "results.json")):
    return
  os.makedirs(workdir, exist_ok=True)
  cmd = ["nice", "-n", str(args.nice)] + run_command(
      setting, seed, workdir, data_dir, args.steps)
  start = time.time()
  print(f"{_now()} start {name}", flush=True)
  with open(os.path.join(workdir, "log.txt"), "a") as log:
    rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT,
                         cwd=ROOT)
  wall = time.time() - start
  print(f"{_now()} {name}: rc={rc} {wall:.0f} s", flush=True)
  with open(os.path.join(workdir, "wall.json"), "w") as f:
    json.dump({"rc": rc, "wall_s": wall, "date": _now(),
               "parallel": args.parallel, "nice": args.nice}, f)


def run(args) -> None:
  os.makedirs(args.runs, exist_ok=True)
  data_dir = os.path.join(args.runs, "data")
  ts.ensure_data(data_dir)
  todo = [(s, seed) for seed in ts.SEEDS for s in SETTINGS
          if not args.only or run_name(s, seed) in args.only.split(",")]
  lock = threading.Lock()

  def worker():
    while True:
      with lock:
        if not todo:
          return
        item = todo.pop(0)
      _train_one(*item, args, data_dir)

  threads = [threading.Thread(target=worker) for _ in range(args.parallel)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()


def escape_step(curve: List[List[float]], majority: float) -> Optional[int]:
  """First eval step whose val accuracy beats `majority` by the margin."""
  for step, acc in curve:
    if acc > majority + PLATEAU_MARGIN:
      return int(step)
  return None


def record(workdir: str, setting: str, seed: int) -> Optional[dict]:
  """One finished run's numbers, or None."""
  path = os.path.join(workdir, "results.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    results = json.load(f)
  curve, speeds = [], []
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    for line in f:
      row = json.loads(line)
      if row.get("split") == "eval":
        curve.append([row["step"], round(row["accuracy"], 4)])
      elif row.get("split") == "train" and "steps_per_sec" in row:
        speeds.append(row["steps_per_sec"])
  wall = {}
  if os.path.exists(os.path.join(workdir, "wall.json")):
    with open(os.path.join(workdir, "wall.json")) as f:
      wall = json.load(f)
  majority = results["majority_class_accuracy"]
  return {"run": run_name(setting, seed), "setting": setting,
          "attention": SETTINGS[setting][0], "scale": SETTINGS[setting][2],
          "seed": seed, "steps": results["steps"],
          "test_accuracy": results["test_accuracy"],
          "test_accuracy_best_eval": results["test_accuracy_best_eval"],
          "majority_class_accuracy": majority, "eval_curve": curve,
          "escape_step": escape_step(curve, majority),
          "median_train_steps_per_sec": (statistics.median(speeds)
                                         if speeds else None),
          "wall_s": wall.get("wall_s")}


def _temperature_runs(docs: str) -> Dict[str, dict]:
  with open(os.path.join(docs, "temperature.json")) as f:
    return {r["run"]: r for r in json.load(f)["runs"]}


def compare(runs: List[dict], temperature: Dict[str, dict]) -> List[dict]:
  """Per scale: exact kernel, RMFA and softmax, by seed, with paired diffs."""
  rows = []
  for setting, (_, rmfa_setting, scale) in SETTINGS.items():
    exact = {r["seed"]: r for r in runs if r["setting"] == setting}
    row = {"scale": scale, "seeds": sorted(exact), "exact": {}, "rmfa": {},
           "softmax": {}, "exact_minus_rmfa": {}, "exact_minus_softmax": {}}
    for seed, r in sorted(exact.items()):
      row["exact"][seed] = r["test_accuracy"]
      rm = temperature.get(ts.run_name("exp", rmfa_setting, seed))
      sm = temperature.get(ts.run_name("softmax", "default", seed))
      if rm:
        row["rmfa"][seed] = rm["test_accuracy"]
        row["exact_minus_rmfa"][seed] = r["test_accuracy"] - rm[
            "test_accuracy"]
      if sm:
        row["softmax"][seed] = sm["test_accuracy"]
        row["exact_minus_softmax"][seed] = r["test_accuracy"] - sm[
            "test_accuracy"]
    rows.append(row)
  return rows


def _mean_std(values) -> str:
  values = [100 * v for v in values]
  if not values:
    return "–"
  if len(values) == 1:
    return f"{values[0]:.1f}"
  return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def _diff(values) -> str:
  values = [100 * v for v in values]
  if not values:
    return "–"
  return (f"{statistics.mean(values):+.1f} (per seed "
          f"{', '.join(f'{v:+.1f}' for v in values)})")


def _finite_m_note() -> str:
  """Why a finite-M estimate is not capped by s^2 (its degree-1 part)."""
  from macformer_jax import features  # pylint: disable=g-import-not-at-top
  plan, _ = features.make_plan(ts.NUM_FEATURES, "exp", "stratified")
  m1 = plan.counts[0]  # degree 1
  top = (1 + math.sqrt(ts.HEAD_DIM / m1))**2
  return (f"the estimate's degree-1 part is q^T (W W^T / m) k with m = {m1} "
          f"Rademacher projections of Dh = {ts.HEAD_DIM} dimensions, whose "
          f"largest eigenvalue is about (1 + sqrt(Dh/m))^2 = {top:.1f}, so "
          "RMFA's weights are not capped by |q.k| <= s^2 as the exact "
          "kernel's are, and training can sharpen attention along those "
          "directions")


def conclusion(rows: List[dict]) -> str:
  """The one-paragraph answer, from the numbers."""
  by_scale = {("default" if abs(r["scale"] - ts.DEFAULT_SCALE) < 1e-6
               else "tuned"): r for r in rows}
  d, t = by_scale.get("default"), by_scale.get("tuned")
  if not d or not d["exact"]:
    return "No exact-kernel run has finished yet."
  mean = lambda xs: 100 * statistics.mean(xs.values()) if xs else float("nan")
  e, r, s = mean(d["exact"]), mean(d["rmfa"]), mean(d["softmax"])
  # The explanation whose prediction is nearer: noise predicts exact ~
  # softmax, near-uniform attention predicts exact ~ RMFA (same scale).
  uniform = abs(e - r) < abs(e - s)
  text = (f"At the authors' scale Dh^-1/4 = {ts.DEFAULT_SCALE:.2f}, exact "
          f"exp-kernel attention (no random features) reached "
          f"{_mean_std(d['exact'].values())}% test accuracy after "
          f"{ts.NUM_STEPS} steps (seeds {', '.join(map(str, d['seeds']))}), "
          f"against {_mean_std(d['rmfa'].values())}% for RMFA at the same "
          f"scale and {_mean_std(d['softmax'].values())}% for softmax "
          f"(paired exact - RMFA {_diff(d['exact_minus_rmfa'].values())} "
          "points). ")
  tuned_gap = None
  if t and t["exact"]:
    tuned_gap = mean(t["exact_minus_rmfa"])
    text += (f"At the tuned scale {t['scale']:.2f}, the exact kernel "
             f"reached {_mean_std(t['exact'].values())}% (seeds "
             f"{', '.join(map(str, t['seeds']))}) and RMFA "
             f"{_mean_std(t['rmfa'].values())}% (paired exact - RMFA "
             f"{_diff(t['exact_minus_rmfa'].values())}). ")
  s2 = ts.DEFAULT_SCALE**2
  if uniform:
    text += ("Removing the random features does not lift the default out of "
             "its slow start: the exact kernel stays with RMFA (or below "
             "it), not with softmax, so the default's slow learning is "
             f"near-uniform attention (|q.k| <= s^2 = {s2:.2f} caps the ratio "
             f"of two weights at e^{2 * s2:.2f} = {math.exp(2 * s2):.2f}), "
             "not random-feature noise.")
    if tuned_gap is not None and tuned_gap < -2:
      text += (" Nor do the features hurt at the tuned scale: there RMFA "
               "learned faster than the exact kernel it estimates, so at "
               "this setting the estimate's noise is not what holds Macformer "
               "back; the fix is the scale (`macformer_exp_tuned`), not more "
               "features. One possible reason RMFA beats the exact kernel (a "
               "hypothesis, not tested here): " + _finite_m_note() + ".")
    else:
      text += " The fix is the scale (`macformer_exp_tuned`), not more "
      text += "features."
  else:
    text += ("Removing the random features lifts the default to softmax's "
             "level: the features' noise, not the scale's near-uniform "
             "attention, is what holds RMFA back at Dh^-1/4.")
  text += (f" (Reduced setting, {ts.NUM_STEPS} steps at L = 256; the "
           "standard error of one test accuracy near 30% is about 1.4 "
           "points.)")
  return text


def render(report: dict) -> str:
  lines = [
      "# Diagnostic: near-uniform attention or random-feature noise?",
      "",
      "Generated by `python benchmarks/exact_kernel_diagnostic.py report` "
      "from `docs/exact_kernel.json`.",
      "",
      "At the authors' q/k scale Dh^-1/4, `macformer_exp` learns slower "
      "than softmax (docs/TEMPERATURE.md) and sits at chance at L = 2000 "
      "(docs/lra_table.md). `macformer_exp_exact` is the attention RMFA "
      "estimates, computed exactly (layers.py `exact_kernel`: the same "
      "PreSBN, scale and PostSBN, weights exp(s^2 q.k) normalised over the "
      "visible keys, no random features); `macformer_exp_exact_tuned` uses "
      "the tuned scale 0.7. Setting: the temperature study's (reduced "
      "ListOps, L = 256, 20000 generated training trees, 2 layers, emb 64, "
      f"{ts.NUM_STEPS} steps, LRA's schedule with warmup {ts.WARMUP}, seeds "
      f"{', '.join(map(str, ts.SEEDS))}); the RMFA and softmax columns are "
      "that study's runs with the same seeds (docs/temperature.json).",
      "",
      "## Conclusion",
      "",
      report["conclusion"],
      "",
      "## Test accuracy (%) by scale",
      "",
      "| q/k scale s | exact exp kernel | RMFA exp (M = 128) | softmax | "
      "exact - RMFA (paired) | exact - softmax (paired) |",
      "|---|---|---|---|---|---|",
  ]
  for row in report["comparison"]:
    lines.append(
        f"| {row['scale']:.2f} | {_mean_std(row['exact'].values())} | "
        f"{_mean_std(row['rmfa'].values())} | "
        f"{_mean_std(row['softmax'].values())} | "
        f"{_diff(row['exact_minus_rmfa'].values())} | "
        f"{_diff(row['exact_minus_softmax'].values())} |")
  lines += [
      "",
      "## Runs",
      "",
      "Escape: the first eval step whose val accuracy exceeds the majority "
      f"class by {100 * PLATEAU_MARGIN:.0f} points (none: never in "
      f"{ts.NUM_STEPS} steps).",
      "",
      "| run | scale | steps | test (last) | test (best eval) | majority | "
      "escape step | val curve (step:acc) | steps/s | wall s |",
      "|---|---|---|---|---|---|---|---|---|---|",
  ]
  for r in report["runs"]:
    curve = " ".join(f"{s}:{100 * a:.1f}" for s, a in r["eval_curve"])
    speed, wall = r["median_train_steps_per_sec"], r["wall_s"]
    lines.append(
        f"| {r['run']} | {r['scale']:.2f} | {r['steps']} | "
        f"{100 * r['test_accuracy']:.1f} | "
        f"{100 * r['test_accuracy_best_eval']:.1f} | "
        f"{100 * r['majority_class_accuracy']:.1f} | "
        f"{r['escape_step'] or 'none'} | {curve} | "
        f"{'–' if speed is None else f'{speed:.2f}'} | "
        f"{'–' if wall is None else f'{wall:.0f}'} |")
  lines += [
      "",
      f"Machine: {report['machine']} (shared; runs at nice "
      f"{report['nice']}, up to {report['parallel']} at a time: steps/s and "
      "wall times are not comparable between runs).",
      "",
  ]
  return "\n".join(lines)


def report(args) -> None:
  json_path = os.path.join(args.docs, "exact_kernel.json")
  if args.from_docs:
    with open(json_path) as f:
      data = json.load(f)
  else:
    runs = [r for r in (record(os.path.join(args.runs, run_name(s, seed)),
                               s, seed)
                        for s in SETTINGS for seed in ts.SEEDS) if r]
    comparison = compare(runs, _temperature_runs(args.docs))
    data = {"setup": {"steps": args.steps, "warmup": ts.WARMUP,
                      "eval_every": ts.EVAL_EVERY, "data": ts.DATA,
                      "max_len": 256, "seeds": list(ts.SEEDS),
                      "settings": {k: list(v) for k, v in
                                   SETTINGS.items()}},
            "runs": runs, "comparison": comparison,
            "conclusion": conclusion(comparison),
            "machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
            "nice": args.nice, "parallel": args.parallel}
    with open(json_path, "w") as f:
      json.dump(data, f, indent=1)
  # JSON turns the per-seed dict keys into strings; both render the same.
  with open(os.path.join(args.docs, "DIAGNOSTIC.md"), "w") as f:
    f.write(render(data))
  print(data["conclusion"])


def main(argv: Optional[List[str]] = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("command", choices=("run", "report"))
  parser.add_argument("--runs", default=os.path.join(ROOT, "runs",
                                                     "exact_kernel"))
  parser.add_argument("--docs", default=os.path.join(ROOT, "docs"))
  parser.add_argument("--steps", type=int, default=ts.NUM_STEPS)
  parser.add_argument("--parallel", type=int, default=2)
  parser.add_argument("--nice", type=int, default=10)
  parser.add_argument("--only", default="",
                      help="comma-separated run names (default: all)")
  parser.add_argument("--from_docs", action="store_true",
                      help="report: re-render from docs/exact_kernel.json")
  args = parser.parse_args(argv)
  if args.command == "run":
    run(args)
  else:
    report(args)


if __name__ == "__main__":
  main()
