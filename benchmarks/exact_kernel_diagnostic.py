"""Is Macformer's plateau the scale or the random features? Trains the exact
kernel RMFA estimates beside the temperature study's runs (docs/DIAGNOSTIC.md).

  python -m benchmarks.exact_kernel_diagnostic run     # runs/exact_kernel
  python -m benchmarks.exact_kernel_diagnostic report [--from_docs]
"""

import argparse
import json
import math
import os
import statistics
from typing import Dict, List, Optional

from benchmarks import common
from benchmarks import temperature_study as ts

# setting -> (attention preset, the temperature study's matching RMFA
# setting, its q/k scale).
SETTINGS = {
  "exact_default": ("macformer_exp_exact", "default", ts.DEFAULT_SCALE),
  "exact_0.70": ("macformer_exp_exact_tuned", 0.7, 0.7),
}
PLATEAU_MARGIN = 0.05  # escape: val accuracy > majority class + 5 points


def run_name(setting: str, seed: int) -> str:
  return f"{setting.replace('.', 'p')}_seed{seed}"


def run_command(
  setting: str, seed: int, workdir: str, data_dir: str, num_steps: int
) -> List[str]:
  """run_lra.py with the temperature study's flags, the exact core."""
  return ts.lra_command(
    SETTINGS[setting][0], seed, workdir, data_dir, num_steps
  )


def run(args) -> None:
  data_dir = os.path.join(args.runs, "data")
  os.makedirs(args.runs, exist_ok=True)
  ts.ensure_data(data_dir)
  names = [(run_name(s, seed), s, seed) for seed in ts.SEEDS for s in SETTINGS]
  ts.train(
    [
      (
        os.path.join(args.runs, n),
        run_command(s, seed, os.path.join(args.runs, n), data_dir, args.steps),
      )
      for n, s, seed in names
      if not args.only or n in args.only.split(",")
    ],
    args,
  )


def escape_step(curve: List[List[float]], majority: float) -> Optional[int]:
  """First eval step whose val accuracy beats `majority` by the margin."""
  return next((int(s) for s, a in curve if a > majority + PLATEAU_MARGIN), None)


def record(workdir: str, setting: str, seed: int) -> Optional[dict]:
  """One finished run's numbers, or None."""
  results, curve, speeds = common.read_run(workdir)
  if results is None:
    return None
  curve = [[s, round(a, 4)] for s, a in curve]
  wall, _ = common.load_json(os.path.join(workdir, "wall.json"))
  majority = results["majority_class_accuracy"]
  return {
    "run": run_name(setting, seed),
    "setting": setting,
    "attention": SETTINGS[setting][0],
    "scale": SETTINGS[setting][2],
    "seed": seed,
    "steps": results["steps"],
    "test_accuracy": results["test_accuracy"],
    "test_accuracy_best_eval": results["test_accuracy_best_eval"],
    "majority_class_accuracy": majority,
    "eval_curve": curve,
    "escape_step": escape_step(curve, majority),
    "median_train_steps_per_sec": (
      statistics.median(speeds) if speeds else None
    ),
    "wall_s": (wall or {}).get("wall_s"),
  }


def compare(runs: List[dict], temperature: Dict[str, dict]) -> List[dict]:
  """Per scale: exact kernel, RMFA and softmax, by seed, with paired diffs."""
  rows = []
  for setting, (_, rmfa_setting, scale) in SETTINGS.items():
    exact = {
      r["seed"]: r["test_accuracy"] for r in runs if r["setting"] == setting
    }
    row = {
      "scale": scale,
      "seeds": sorted(exact),
      "exact": {},
      "rmfa": {},
      "softmax": {},
      "exact_minus_rmfa": {},
      "exact_minus_softmax": {},
    }
    for seed, acc in sorted(exact.items()):
      row["exact"][seed] = acc
      for name, kernel, other in (
        ("rmfa", "exp", rmfa_setting),
        ("softmax", "softmax", "default"),
      ):
        r = temperature.get(ts.run_name(kernel, other, seed))
        if r:
          row[name][seed] = r["test_accuracy"]
          row[f"exact_minus_{name}"][seed] = acc - r["test_accuracy"]
    rows.append(row)
  return rows


def _mean_std(values) -> str:
  values = [100 * v for v in values]
  if len(values) < 2:
    return f"{values[0]:.1f}" if values else "–"
  return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def _diff(values) -> str:
  values = [100 * v for v in values]
  return (
    f"{statistics.mean(values):+.1f} (per seed "
    f"{', '.join(f'{v:+.1f}' for v in values)})"
    if values
    else "–"
  )


TEMPLATES = common.templates("diagnostic")


def conclusion(rows: List[dict]) -> str:
  """The one-paragraph answer, from the numbers."""
  by_scale = {
    ("default" if abs(r["scale"] - ts.DEFAULT_SCALE) < 1e-6 else "tuned"): r
    for r in rows
  }
  d, t = by_scale.get("default"), by_scale.get("tuned")
  if not d or not d["exact"]:
    return "No exact-kernel run has finished yet."
  fields = lambda r: {
    "s": r["scale"],
    "seeds": ", ".join(map(str, r["seeds"])),
    "diff": _diff(r["exact_minus_rmfa"].values()),
    "steps": ts.NUM_STEPS,
    **{k: _mean_std(r[k].values()) for k in ("exact", "rmfa", "softmax")},
  }
  mean = lambda xs: 100 * statistics.mean(xs.values()) if xs else math.nan
  text = [TEMPLATES["conclusion"].format(**fields(d))]
  if t and t["exact"]:
    text.append(TEMPLATES["tuned"].format(**fields(t)))
  # The explanation whose prediction is nearer: noise predicts exact ~
  # softmax, near-uniform attention predicts exact ~ RMFA (same scale).
  e, s2 = mean(d["exact"]), ts.DEFAULT_SCALE**2
  if abs(e - mean(d["rmfa"])) >= abs(e - mean(d["softmax"])):
    text.append(TEMPLATES["noise"])
  else:
    text.append(
      TEMPLATES["uniform"].format(s2=s2, two_s2=2 * s2, e=math.exp(2 * s2))
    )
    if t and t["exact"] and mean(t["exact_minus_rmfa"]) < -2:
      from macformer_jax import features  # pylint: disable=g-import-not-at-top

      m1 = features.make_plan(ts.NUM_FEATURES, "exp", "stratified")[0].counts[0]
      text.append(
        TEMPLATES["rmfa_ahead"].format(
          m1=m1, dh=ts.HEAD_DIM, top=(1 + math.sqrt(ts.HEAD_DIM / m1)) ** 2
        )
      )
    else:
      text.append(TEMPLATES["fix"])
  return " ".join(text + [TEMPLATES["caveat"].format(steps=ts.NUM_STEPS)])


def render(report: dict) -> str:
  comparison = [
    f"| {r['scale']:.2f} | "
    + " | ".join(
      [_mean_std(r[k].values()) for k in ("exact", "rmfa", "softmax")]
      + [
        _diff(r[k].values())
        for k in ("exact_minus_rmfa", "exact_minus_softmax")
      ]
    )
    + " |"
    for r in report["comparison"]
  ]
  pct = lambda x: f"{100 * x:.1f}"
  runs = [
    f"| {r['run']} | {r['scale']:.2f} | {r['steps']} | "
    + " | ".join(
      map(
        pct,
        (
          r["test_accuracy"],
          r["test_accuracy_best_eval"],
          r["majority_class_accuracy"],
        ),
      )
    )
    + f" | {r['escape_step'] or 'none'} | "
    + " ".join(f"{s}:{100 * a:.1f}" for s, a in r["eval_curve"])
    + " | "
    + " | ".join(
      "–" if x is None else f"{x:{f}}"
      for x, f in (
        (r["median_train_steps_per_sec"], ".2f"),
        (r["wall_s"], ".0f"),
      )
    )
    + " |"
    for r in report["runs"]
  ]
  return (
    TEMPLATES["page"].format(
      steps=ts.NUM_STEPS,
      warmup=ts.WARMUP,
      seeds=", ".join(map(str, ts.SEEDS)),
      margin=100 * PLATEAU_MARGIN,
      comparison="\n".join(comparison),
      runs="\n".join(runs),
      **{k: report[k] for k in ("conclusion", "machine", "nice", "parallel")},
    )
    + "\n"
  )


def report(args) -> None:
  json_path = os.path.join(args.docs, "exact_kernel.json")
  data, why = common.load_json(json_path) if args.from_docs else (None, None)
  if args.from_docs and data is None:
    raise SystemExit(f"{json_path} is {why}")
  if data is None:
    runs = [
      r
      for r in (
        record(os.path.join(args.runs, run_name(s, seed)), s, seed)
        for s in SETTINGS
        for seed in ts.SEEDS
      )
      if r
    ]
    comparison = compare(
      runs, {r["run"]: r for r in ts.recorded_runs(args.docs)}
    )
    host = common.host()
    data = {
      "setup": {
        "steps": args.steps,
        "warmup": ts.WARMUP,
        "eval_every": ts.EVAL_EVERY,
        "data": ts.DATA,
        "max_len": 256,
        "seeds": list(ts.SEEDS),
        "settings": {k: list(v) for k, v in SETTINGS.items()},
      },
      "runs": runs,
      "comparison": comparison,
      "conclusion": conclusion(comparison),
      "machine": f"{host['platform']}, {host['cpus']} CPUs",
      "nice": args.nice,
      "parallel": args.parallel,
    }
    common.write(json_path, json.dumps(data, indent=1))
  # JSON turns the per-seed dict keys into strings; both render the same.
  common.write(os.path.join(args.docs, "DIAGNOSTIC.md"), render(data))
  print(data["conclusion"])


def main(argv: Optional[List[str]] = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("command", choices=("run", "report"))
  parser.add_argument(
    "--runs", default=os.path.join(common.REPO, "runs", "exact_kernel")
  )
  parser.add_argument("--docs", default=os.path.join(common.REPO, "docs"))
  parser.add_argument("--steps", type=int, default=ts.NUM_STEPS)
  parser.add_argument("--parallel", type=int, default=2)
  parser.add_argument("--nice", type=int, default=10)
  parser.add_argument(
    "--only", default="", help="comma-separated run names (default: all)"
  )
  parser.add_argument(
    "--from_docs",
    action="store_true",
    help="report: re-render from docs/exact_kernel.json",
  )
  args = parser.parse_args(argv)
  (run if args.command == "run" else report)(args)


if __name__ == "__main__":
  main()
