"""Is Macformer's plateau the scale or the random features? Trains the exact
kernel RMFA estimates beside the temperature study's runs (docs/DIAGNOSTIC.md).

  python -m benchmarks.exact_kernel_diagnostic run     # runs/exact_kernel
  python -m benchmarks.exact_kernel_diagnostic report [--from_docs]
"""

import functools
import math
import os
import statistics

from benchmarks import common
from benchmarks import studies
from benchmarks import temperature_study as ts

# setting -> (attention preset, the temperature study's matching RMFA
# setting, its q/k scale).
SETTINGS = {
  "exact_default": ("macformer_exp_exact", "default", studies.DEFAULT_SCALE),
  "exact_0.70": ("macformer_exp_exact_tuned", 0.7, 0.7),
}
PLATEAU_MARGIN = 0.05  # escape: val accuracy > majority class + 5 points
COLUMNS = ("exact", "rmfa", "softmax")
PERCENT = ("test_accuracy", "test_accuracy_best_eval")
PERCENT += ("majority_class_accuracy",)
TEMPLATES = common.templates("diagnostic")


def run_name(setting: str, seed: int) -> str:
  return f"{setting.replace('.', 'p')}_seed{seed}"


def run_command(setting, seed, workdir, data_dir, num_steps) -> list[str]:
  """run_lra.py with the temperature study's flags, the exact core."""
  preset = SETTINGS[setting][0]
  return studies.lra_command(preset, seed, workdir, data_dir, num_steps)


def grid() -> list[tuple[str, int]]:
  return [(setting, seed) for setting in SETTINGS for seed in studies.SEEDS]


def commands(args) -> dict:
  make = lambda x: functools.partial(run_command, *x, num_steps=args.steps)
  return {run_name(*x): make(x) for x in grid()}


def escape_step(curve: list[list[float]], majority: float) -> int | None:
  """First eval step whose val accuracy beats `majority` by the margin."""
  return next((int(s) for s, a in curve if a > majority + PLATEAU_MARGIN), None)


def record(workdir: str, setting: str, seed: int) -> dict | None:
  """One finished run's numbers, or None."""
  results, curve, speeds = common.read_run(workdir)
  if results is None:
    return None
  curve = [[s, round(a, 4)] for s, a in curve]
  wall, _ = common.load_json(os.path.join(workdir, "wall.json"))
  majority = results["majority_class_accuracy"]
  preset, _, scale = SETTINGS[setting]
  out = dict(run=run_name(setting, seed), setting=setting, attention=preset)
  out.update(scale=scale, seed=seed)
  for key in ("steps", "test_accuracy", "test_accuracy_best_eval"):
    out[key] = results[key]
  out.update(majority_class_accuracy=majority, eval_curve=curve)
  out["escape_step"] = escape_step(curve, majority)
  speed = statistics.median(speeds) if speeds else None
  out["median_train_steps_per_sec"] = speed
  out["wall_s"] = (wall or {}).get("wall_s")
  return out


def compare(runs: list[dict], temperature: dict[str, dict]) -> list[dict]:
  """Per scale: exact kernel, RMFA and softmax, by seed, with paired diffs."""
  rows = []
  for setting, (_, rmfa_setting, scale) in SETTINGS.items():
    mine = [r for r in runs if r["setting"] == setting]
    exact = {r["seed"]: r["test_accuracy"] for r in mine}
    row = {"scale": scale, "seeds": sorted(exact)}
    row.update({k: {} for k in COLUMNS})
    row.update({f"exact_minus_{k}": {} for k in COLUMNS[1:]})
    others = (("rmfa", "exp", rmfa_setting), ("softmax", "softmax", "default"))
    for seed, acc in sorted(exact.items()):
      row["exact"][seed] = acc
      for name, kernel, other in others:
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
  if not values:
    return "–"
  seeds = ", ".join(f"{v:+.1f}" for v in values)
  return f"{statistics.mean(values):+.1f} (per seed {seeds})"


def _cells(r: dict) -> dict:
  """A comparison row's table cells (per-seed dicts: int or JSON str keys)."""
  cells = {k: _mean_std(r[k].values()) for k in COLUMNS}
  diffs = {f"exact_minus_{k}": r[f"exact_minus_{k}"] for k in COLUMNS[1:]}
  return dict(cells, **{k: _diff(v.values()) for k, v in diffs.items()})


def conclusion(rows: list[dict]) -> str:
  """The one-paragraph answer, from the numbers."""
  near = lambda r: abs(r["scale"] - studies.DEFAULT_SCALE) < 1e-6
  by_scale = {("default" if near(r) else "tuned"): r for r in rows}
  d, t = by_scale.get("default"), by_scale.get("tuned")
  if not d or not d["exact"]:
    return "No exact-kernel run has finished yet."

  def fields(r):
    seeds = ", ".join(map(str, r["seeds"]))
    diff = _cells(r)["exact_minus_rmfa"]
    steps = studies.NUM_STEPS
    return dict(_cells(r), s=r["scale"], seeds=seeds, diff=diff, steps=steps)

  mean = lambda xs: 100 * statistics.mean(xs.values()) if xs else math.nan
  text = [TEMPLATES["conclusion"].format(**fields(d))]
  if t and t["exact"]:
    text.append(TEMPLATES["tuned"].format(**fields(t)))
  # The explanation whose prediction is nearer: noise predicts exact ~
  # softmax, near-uniform attention predicts exact ~ RMFA (same scale).
  e, s2 = mean(d["exact"]), studies.DEFAULT_SCALE**2
  if abs(e - mean(d["rmfa"])) >= abs(e - mean(d["softmax"])):
    text.append(TEMPLATES["noise"])
  else:
    uniform = dict(s2=s2, two_s2=2 * s2, e=math.exp(2 * s2))
    text.append(TEMPLATES["uniform"].format(**uniform))
    if t and t["exact"] and mean(t["exact_minus_rmfa"]) < -2:
      from macformer_jax import features  # pylint: disable=g-import-not-at-top

      plan = features.make_plan(studies.NUM_FEATURES, "exp", "stratified")[0]
      m1, dh = plan.counts[0], studies.HEAD_DIM
      top = (1 + math.sqrt(dh / m1)) ** 2
      text.append(TEMPLATES["rmfa_ahead"].format(m1=m1, dh=dh, top=top))
    else:
      text.append(TEMPLATES["fix"])
  caveat = TEMPLATES["caveat"].format(steps=studies.NUM_STEPS)
  return " ".join(text + [caveat])


def _run_row(r: dict) -> str:
  pct = {k: f"{100 * r[k]:.1f}" for k in PERCENT}
  curve = " ".join(f"{s}:{100 * a:.1f}" for s, a in r["eval_curve"])
  speed, wall = r["median_train_steps_per_sec"], r["wall_s"]
  speed = "–" if speed is None else f"{speed:.2f}"
  wall = "–" if wall is None else f"{wall:.0f}"
  escape = r["escape_step"] or "none"
  cells = dict(r, **pct, escape=escape, curve=curve, speed=speed, wall=wall)
  return TEMPLATES["run_row"].format(**cells)


def render(report: dict) -> str:
  row = lambda r: TEMPLATES["comparison_row"].format(**dict(r, **_cells(r)))
  comparison = "\n".join(map(row, report["comparison"]))
  runs = "\n".join(map(_run_row, report["runs"]))
  seeds = ", ".join(map(str, studies.SEEDS))
  fields = {k: report[k] for k in ("conclusion", "machine", "nice", "parallel")}
  fields.update(steps=studies.NUM_STEPS, warmup=studies.WARMUP, seeds=seeds)
  fields.update(runs=runs, margin=100 * PLATEAU_MARGIN, comparison=comparison)
  return TEMPLATES["page"].format(**fields) + "\n"


def measure(args, recorded: list[dict]) -> dict:
  """docs/exact_kernel.json's content: the runs, the comparison with the
  temperature study's and the conclusion."""
  fresh = [record(os.path.join(args.runs, run_name(*x)), *x) for x in grid()]
  order = {run_name(*x): i for i, x in enumerate(grid())}
  runs = studies.merged(recorded, [r for r in fresh if r])
  runs = sorted(runs, key=lambda r: order[r["run"]])
  temperature = {
    r["run"]: r for r in studies.recorded(args.docs, "temperature")
  }
  comparison = compare(runs, temperature)
  setup = dict(steps=args.steps, warmup=studies.WARMUP)
  setup.update(eval_every=studies.EVAL_EVERY, data=studies.DATA, max_len=256)
  setup["seeds"] = list(studies.SEEDS)
  setup["settings"] = {k: list(v) for k, v in SETTINGS.items()}
  data = dict(setup=setup, runs=runs, comparison=comparison)
  data["conclusion"] = conclusion(comparison)
  data["machine"] = "{platform}, {cpus} CPUs".format(**common.host())
  return dict(data, nice=args.nice, parallel=args.parallel)


def write(args, data: dict) -> None:
  common.write(os.path.join(args.docs, "DIAGNOSTIC.md"), render(data))
  print(data["conclusion"])


def main(argv: list[str] | None = None) -> None:
  """`run` trains; `report` writes docs/exact_kernel.json and DIAGNOSTIC.md
  (`--from_docs`: from the JSON; benchmarks/studies.py)."""
  flags = dict(nice=10, parallel=2)
  studies.main(argv, __doc__, "exact_kernel", commands, measure, write, flags)


if __name__ == "__main__":
  main()
