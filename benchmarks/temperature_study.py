"""Reduced ListOps studies of Macformer's q/k scale: does Dh^-1/4 slow
learning (docs/TEMPERATURE.md, temperature.json, temperature.png), and with
`--diagnostic`, is it the scale or the random features (the exact exp kernel
RMFA estimates: docs/DIAGNOSTIC.md, exact_kernel.json)?

`run` trains the study's grid of run_lra.py runs (resumable; a run recorded
in its docs/<name>.json counts as done); `report` merges the runs finished
under `--runs` with the recorded ones and writes the docs; `--from_docs`
renders the JSON as it is.

  python -m benchmarks.temperature_study [--diagnostic] run
  python -m benchmarks.temperature_study [--diagnostic] report [--from_docs]
"""

import argparse
import concurrent.futures
import functools
import json
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from benchmarks import common

HEAD_DIM, NUM_FEATURES = 32, 128  # the reduced model: qkv 64 over 2 heads
DEFAULT_SCALE = HEAD_DIM**-0.25
SEEDS = (0, 1, 2)
NUM_STEPS, EVAL_EVERY, WARMUP = 500, 100, 300  # reduced_listops.sh's start
# The data of benchmarks/reduced_listops.sh: seed 0, smoke distribution.
SIZES = {"num_train": 20000, "num_val": 1000, "num_test": 1000}
DATA = dict(SIZES, min_length=20, max_length=250, max_depth=6, max_args=10)
# Groups in priority order: (kernel, settings) pairs, a setting "default",
# "learn" or a fixed scale s (s^2 < 1 for the radius-1 kernels).
GROUPS: tuple[tuple[tuple[str, tuple], ...], ...] = (
  (("exp", ("default", 1.0, "learn")),),
  (("inverse", ("default", 0.8, "learn")),),
  (("log", ("default", 0.8)), ("sqrt", ("default", 0.8))),
  (("log", ("learn",)), ("sqrt", ("learn",))),
  (("exp", (1.4,)),),
  (("exp", (2.0,)), ("softmax", ("default",))),
  (("exp", (0.7,)), ("inverse", (0.6,)), ("log", (0.6,)), ("sqrt", (0.6,))),
)
KERNELS = ("exp", "inverse", "log", "sqrt")
# The diagnostic: setting -> (preset, the temperature study's matching RMFA
# setting, its q/k scale).
SETTINGS = {
  "exact_default": ("macformer_exp_exact", "default", DEFAULT_SCALE),
  "exact_0.70": ("macformer_exp_exact_tuned", 0.7, 0.7),
}
NUM_DRAWS = 4096  # RMF maps per estimate of the variance cost
NICE_PARALLEL = {False: (19, 1), True: (10, 2)}  # --diagnostic: its runs'
PLATEAU_MARGIN = 0.05  # escape: val accuracy > majority class + 5 points
_T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36}
COMMAND = "python -m benchmarks.temperature_study"
TEMPLATES = common.templates("temperature")
DIAG = common.templates("diagnostic")


# The grids and their training.
def lra_command(preset, seed, workdir, data_dir, num_steps=NUM_STEPS):
  """run_lra.py on the studies' data, model and schedule with `preset`."""
  config = os.path.join(common.REPO, "configs", "listops.py")
  flags = {"seed": seed, "data.data_dir": data_dir}
  flags.update({"train.num_train_steps": num_steps})
  flags.update({"train.eval_frequency": EVAL_EVERY})
  flags.update({"train.checkpoint_every": num_steps})
  flags.update({"optimizer.warmup_steps": WARMUP})
  flags.update({f"data.offline.{k}": v for k, v in SIZES.items()})
  run_lra = [sys.executable, os.path.join(common.REPO, "run_lra.py")]
  run_lra += [f"--config={config}:{preset},smoke", f"--workdir={workdir}"]
  return run_lra + [f"--config.{k}={v}" for k, v in flags.items()]


def run_name(kernel: str, setting, seed: int) -> str:
  if kernel == "softmax":
    return f"softmax_seed{seed}"
  if not isinstance(setting, str):
    setting = f"s{setting:.2f}".replace(".", "p")
  return f"{kernel}_{setting}_seed{seed}"


def schedule() -> list[tuple[str, object, int]]:
  """(kernel, setting, seed) in the order the runs are trained."""
  runs = []
  for group in GROUPS:
    for seed in SEEDS:
      runs += [(k, s, seed) for k, settings in group for s in settings]
  return runs


def run_command(kernel, setting, seed, workdir, data_dir, num_steps=NUM_STEPS):
  """The run_lra.py command line of one run of the temperature grid."""
  preset = "softmax" if kernel == "softmax" else f"macformer_{kernel}"
  cmd = lra_command(preset, seed, workdir, data_dir, num_steps)
  option = "--config.attention.options."
  if kernel != "softmax":
    cmd.append(f"{option}num_features={NUM_FEATURES}")
  if setting == "learn":
    cmd.append(f"{option}learn_qk_scale=True")
  elif setting != "default":
    cmd.append(f"{option}qk_scale={setting}")
  return cmd


diagnostic_name = lambda s, seed: f"{s.replace('.', 'p')}_seed{seed}"
DIAGNOSTIC_GRID = [(setting, seed) for setting in SETTINGS for seed in SEEDS]


def commands(diagnostic: bool) -> dict:
  """{run name: fn(workdir, data_dir) -> argv} of a study's grid, in order."""
  if diagnostic:
    make = lambda s, seed: functools.partial(lra_command, SETTINGS[s][0], seed)
    return {diagnostic_name(*x): make(*x) for x in DIAGNOSTIC_GRID}
  return {run_name(*x): functools.partial(run_command, *x) for x in schedule()}


def ensure_data(data_dir: str) -> None:
  """Generates the reduced ListOps data (seed 0) once."""
  if not os.path.exists(os.path.join(data_dir, "DONE")):
    from lra_tasks import listops  # pylint: disable=g-import-not-at-top

    listops.generate(data_dir + ".tmp", seed=0, **DATA)
    common.write(os.path.join(data_dir + ".tmp", "DONE"), json.dumps(DATA))
    os.replace(data_dir + ".tmp", data_dir)


def train(jobs: list[tuple[str, list[str]]], args) -> None:
  """Runs (workdir, argv) jobs `args.parallel` at a time at `args.nice`,
  skipping finished ones (a results.json); wall.json records each."""

  def one(job):
    workdir, cmd = job
    if os.path.exists(os.path.join(workdir, "results.json")):
      return
    os.makedirs(workdir, exist_ok=True)
    t0, nice = time.time(), ["nice", "-n", str(args.nice)]
    with open(os.path.join(workdir, "log.txt"), "a") as log:
      rc = subprocess.call(nice + cmd, stdout=log, stderr=log, cwd=common.REPO)
    wall = dict(rc=rc, wall_s=time.time() - t0, date=common.now())
    wall.update(parallel=args.parallel, nice=args.nice)
    common.write(os.path.join(workdir, "wall.json"), json.dumps(wall))

  with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
    list(pool.map(one, jobs))


def recorded(docs: str, name: str) -> list[dict]:
  """The run records in <docs>/<name>.json (done, even on a new checkout)."""
  data, _ = common.load_json(os.path.join(docs, name + ".json"))
  return (data or {}).get("runs", [])


def merged(records: list[dict], fresh: list[dict]) -> list[dict]:
  """`records` less those `fresh` replaces, then `fresh`."""
  names = {r["run"] for r in fresh}
  return [r for r in records if r["run"] not in names] + fresh


def read(workdir: str, **fields) -> tuple[dict, dict] | None:
  """A finished run's results.json and its record: `fields`, then steps,
  test accuracies, eval curve and median steps/s (None if unfinished)."""
  results, curve, speeds = common.read_run(workdir)
  if results is None:
    return None
  keys = ("steps", "test_accuracy", "test_accuracy_best_eval")
  record = dict(fields, **{k: results[k] for k in keys}, eval_curve=curve)
  speed = statistics.median(speeds) if speeds else None
  return results, dict(record, median_train_steps_per_sec=speed)


# Temperature: the variance a scale costs, the finished runs, the statistics.
def variance_cost(kernel, scales, num_draws=NUM_DRAWS, seed=0) -> list[dict]:
  """Error of one RMF estimate phi(q).phi(k) of f(q.k) at M = 128, Dh = 32,
  for PreSBN'd q, k scaled by s, aligned (t = s^2) and a typical random pair
  (cosine 1/sqrt(Dh - 1)): the default map's relative RMSE and bias over
  `num_draws` maps, the paper's map's relative std (`features.rmf_variance`)
  and the contrast f(s^2) / f(-s^2)."""
  import jax  # pylint: disable=g-import-not-at-top

  from macformer_jax import features  # pylint: disable=g-import-not-at-top
  from macformer_jax import kernels  # pylint: disable=g-import-not-at-top

  def estimate(key, x, y):
    plan = (HEAD_DIM, NUM_FEATURES, kernel, "stratified")
    params = features.sample_rmf(key, *plan, projection="chained")
    return features.rmf(params, x) @ features.rmf(params, y)

  estimates = jax.jit(jax.vmap(estimate, in_axes=(0, None, None)))
  # Two centred unit vectors (PreSBN outputs) u, z with u . z = 0.
  u, z = np.random.default_rng(seed).standard_normal((2, HEAD_DIM))
  u -= u.mean()
  u /= np.linalg.norm(u)
  z -= z.mean()
  z -= (z @ u) * u
  z /= np.linalg.norm(z)
  keys = jax.random.split(jax.random.key(seed), num_draws)
  cosines = {"aligned": 1.0, "random": 1.0 / math.sqrt(HEAD_DIM - 1)}
  rows, exact = [], functools.partial(kernels.exact, kernel)
  for s in scales:
    row = {"kernel": kernel, "scale": s, "max_qk": s * s}
    if s * s < kernels.get(kernel).radius:  # the float32 ratio
      row["contrast"] = float(exact(s * s) / exact(-s * s))
    for name, cosine in cosines.items():
      x, y = s * u, s * (cosine * u + math.sqrt(1.0 - cosine**2) * z)
      t = float(x @ y)
      ft = float(exact(t))
      values = np.asarray(estimates(keys, x, y), np.float64)
      bias = values.mean() - ft
      paper = float(features.rmf_variance(kernel, x, y, NUM_FEATURES))
      rmse = math.sqrt(values.var() + bias**2) / abs(ft)
      row[name] = dict(t=t, f=ft, rel_rmse=rmse, rel_bias=bias / ft)
      row[name]["rel_std_paper_map"] = math.sqrt(max(paper, 0.0)) / abs(ft)
    rows.append(row)
  return rows


def learned_scale(workdir: str, kernel: str) -> list[float] | None:
  """The learned q/k scales s_max * sigmoid(logit) of a finished run."""
  import jax  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  from macformer_jax import attention  # pylint: disable=g-import-not-at-top

  latest = os.path.join(workdir, "checkpoints", "latest")
  steps = sorted(int(d) for d in os.listdir(latest) if d.isdigit())
  if not steps:
    return None
  path = os.path.abspath(os.path.join(latest, str(steps[-1]), "state"))
  tree = ocp.StandardCheckpointer().restore(path)
  tree = tree.get("params", tree) if isinstance(tree, dict) else tree
  leaves = jax.tree_util.tree_leaves_with_path(tree)
  is_logit = lambda path: getattr(path[-1], "key", None) == "qk_scale_logit"
  logits = [float(np.asarray(v)) for p, v in leaves if is_logit(p)]
  s_max = attention.max_qk_scale(kernel)
  return [s_max / (1.0 + math.exp(-logit)) for logit in logits] or None


def collect(runs_dir: str) -> list[dict]:
  """One record per finished run under `runs_dir`."""
  records = []
  for name in sorted(os.listdir(runs_dir)):
    workdir = os.path.join(runs_dir, name)
    if (done := read(workdir)) is None:
      continue
    config = done[0]["config"]
    options = config["attention"]["options"]
    softmax = config["attention"]["name"] == "softmax"
    kernel = "softmax" if softmax else options["kernel"]
    setting = "learn" if options.get("learn_qk_scale") else "default"
    scale = None if softmax else options.get("qk_scale")
    record = dict(run=name, kernel=kernel, setting=setting, scale=DEFAULT_SCALE)
    if setting == "default" and scale is not None:
      record.update(setting="fixed", scale=float(scale))
    records.append(dict(record, seed=config["seed"], **done[1]))
    if setting == "learn":
      records[-1]["learned_scales"] = learned_scale(workdir, kernel)
  return records


def summarise(records: list[dict]) -> list[dict]:
  """Mean, std over seeds per (kernel, setting, scale), and the paired
  difference (same seed) to the kernel's default."""
  groups: dict[tuple, list[dict]] = {}
  for r in records:
    key = (r["kernel"], r["setting"], round(r["scale"], 4))
    groups.setdefault(key, []).append(r)
  default = {k[0]: v for k, v in groups.items() if k[1] == "default"}
  # Kernels in KERNELS order, then softmax; default, learn, fixed scales.
  rank = (KERNELS + ("softmax",)).index
  order = lambda k: (rank(k[0]), k[1] != "default", k[1] != "learn", k[2])
  rows = []
  for key in sorted(groups, key=order):
    runs = sorted(groups[key], key=lambda r: r["seed"])
    test = [r["test_accuracy"] for r in runs]
    curves = [r["eval_curve"] for r in runs if r["eval_curve"]]
    mean = lambda xs, c=curves: statistics.mean(xs) if c else None
    row = dict(zip(("kernel", "setting", "scale"), key, strict=True))
    row["seeds"] = [r["seed"] for r in runs]
    row["steps"] = sorted({r["steps"] for r in runs})
    row["test_mean"] = statistics.mean(test)
    row["test_std"] = statistics.stdev(test) if len(test) > 1 else None
    row["val_final_mean"] = mean(c[-1][1] for c in curves)
    row["val_curve_mean"] = mean(mean(a for _, a in c) for c in curves)
    learned = [s for r in runs for s in (r.get("learned_scales") or [])]
    if learned:
      row["learned_scale_mean"] = statistics.mean(learned)
      row["learned_scale_range"] = [min(learned), max(learned)]
    base = {r["seed"]: r["test_accuracy"] for r in default.get(key[0], [])}
    diffs = [t - base[r["seed"]] for r, t in zip(runs, test, strict=True)]
    diffs = [d for r, d in zip(runs, diffs, strict=True) if r["seed"] in base]
    if key[1] != "default" and len(diffs) >= 2:
      m, n = statistics.mean(diffs), len(diffs)
      se = statistics.stdev(diffs) / math.sqrt(n)
      half = _T95.get(n - 1, 2.0) * se
      ci = [m - half, m + half]
      row["paired_diff"] = dict(n=n, mean=m, se=se, ci95=ci, min=min(diffs))
      row["beats_default"] = m - half > 0
      row["worse_than_default"] = m + half < 0
    rows.append(row)
  return rows


def _top(kernel: str) -> float:
  """The library's well-behaved range of q/k scales (`max_qk_scale`)."""
  from macformer_jax import attention  # pylint: disable=g-import-not-at-top

  return attention.max_qk_scale(kernel) + 1e-9


def recommendation(rows: list[dict]) -> dict[str, dict]:
  """Per kernel, the rule stated in advance (docs/TEMPERATURE.md): among the
  fixed scales s <= `attention.max_qk_scale` with >= 3 seeds, each better
  than the default's same seed, the highest mean test accuracy."""

  def ok(r):
    d = r.get("paired_diff", {})
    paired = d.get("n", 0) >= 3 and d.get("min", -1) > 0
    return (
      paired and r["setting"] == "fixed" and r["scale"] <= _top(r["kernel"])
    )

  out = {}
  for kernel in KERNELS:
    candidates = [r for r in rows if r["kernel"] == kernel and ok(r)]
    if candidates:
      out[kernel] = max(candidates, key=lambda r: r["test_mean"])
  return out


def references(docs: str, records: list[dict], step: int) -> tuple:
  """(softmax_reference, reproduction_check): softmax's val accuracy at
  `step` in docs/RESULTS.md's reduced run, and exp default seed 0's against
  the reduced macformer_exp run's."""
  out = []
  for name in ("softmax", "macformer_exp"):
    path = os.path.join(docs, "results", f"reduced_listops_{name}.json")
    data, _ = common.load_json(path)
    curve = dict(map(tuple, (data or {}).get("eval_curve", [])))
    out.append((curve.get(step), os.path.relpath(path, common.REPO)))
  (soft, soft_path), (reduced, path) = out
  ref = dict(step=step, val_accuracy=soft, seed=0, source=soft_path)
  key = ("exp", 0, "default")
  ours = [r for r in records if (r["kernel"], r["seed"], r["setting"]) == key]
  ours = dict(map(tuple, ours[0]["eval_curve"])).get(step) if ours else None
  check = dict(step=step, ours=ours, reduced=reduced, source=path)
  check = None if reduced is None or ours is None else check
  return None if soft is None else ref, check


def measure(args, recorded: list[dict]) -> dict:
  """docs/temperature.json's content: recorded and new runs, the summary,
  the variance cost of every scale, the references, the recommendation."""
  fresh = collect(args.runs) if os.path.isdir(args.runs) else []
  records = sorted(merged(recorded, fresh), key=lambda r: r["run"])
  if not records:
    raise SystemExit(f"no finished run under {args.runs} or in {args.docs}")
  summary = summarise(records)
  scales = {k: {DEFAULT_SCALE} for k in KERNELS}
  for k, settings in (pair for group in GROUPS for pair in group):
    scales.get(k, set()).update(s for s in settings if not isinstance(s, str))
  for row in summary:  # the mean learned scale too
    if "learned_scale_mean" in row:
      scales[row["kernel"]].add(row["learned_scale_mean"])
  steps = sorted({r["steps"] for r in records})
  done = {r["run"] for r in records}
  setup = dict(steps=steps[0] if len(steps) == 1 else steps)
  setup.update(warmup=WARMUP, eval_every=EVAL_EVERY, data=DATA)
  setup.update(head_dim=HEAD_DIM, num_features=NUM_FEATURES)
  setup.update(num_draws=NUM_DRAWS, command=COMMAND + " run")
  variance = []
  for k in KERNELS:
    variance += variance_cost(k, sorted(scales[k]))
  missing = [run_name(*x) for x in schedule() if run_name(*x) not in done]
  ref, check = references(args.docs, records, steps[-1])
  data = dict(setup=setup, runs=records, summary=summary, variance=variance)
  data.update(missing=missing, softmax_reference=ref)
  data.update(reproduction_check=check, machine=common.host())
  rec = recommendation(summary).items()
  return dict(data, recommendation={k: round(r["scale"], 4) for k, r in rec})


# Temperature: the page and the plot.
def _pct(mean, std=None) -> str:
  if mean is None:
    return ""
  return f"{100 * mean:.1f}" + ("" if std is None else f" ± {100 * std:.1f}")


_acc = lambda r: _pct(r["test_mean"], r["test_std"])
_ci = lambda d: "{:+.1f} [{:+.1f}, {:+.1f}]".format(
  100 * d["mean"], *(100 * x for x in d["ci95"])
)
_label = lambda r: (
  "learned scale" if r["setting"] == "learn" else (f"s = {r['scale']:.2f}")
)
_contrast = lambda v: f"{v['contrast']:.2f}" if "contrast" in v else "-"


def _variance_for(variance: list[dict], kernel: str, scale: float):
  same = lambda v: v["kernel"] == kernel and abs(v["scale"] - scale) < 1e-3
  return next(filter(same, variance), None)


def conclusions(rows: list[dict]) -> list[str]:
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
      text.append(f"default {_acc(default)} ({n} seed{'s' * (n != 1)});")
      text.append(f"best mean {_label(best)} {_acc(best)}.")
    if better:
      text.append(TEMPLATES["better"] + " " + ", ".join(better) + ".")
    elif any("paired_diff" in r for r in mine):
      text.append("No setting beats the default beyond seed noise.")
    else:
      text.append("Too few seeds for a paired comparison yet.")
    if worse:
      text.append("Worse than the default: " + ", ".join(worse) + ".")
    for r in [r for r in mine if "learned_scale_mean" in r]:
      last = max(r["steps"])
      text.append(TEMPLATES["learned"].format(**r, s=DEFAULT_SCALE, last=last))
    out.append(" ".join(text))
  return out


def recommendation_lines(rows: list[dict], variance: list[dict]) -> list[str]:
  """The recommendation section (rule, one line per kernel)."""
  rec, lines = recommendation(rows), [TEMPLATES["rule"] + "\n"]
  for kernel in KERNELS:
    mine = [r for r in rows if r["kernel"] == kernel]
    default = next((r for r in mine if r["setting"] == "default"), None)
    r = rec.get(kernel)
    if mine and r is None:
      lines.append(f"* **{kernel}**: no scale met the rule; keep the default.")
    if r is None:
      continue
    cost, v = "", _variance_for(variance, kernel, r["scale"])
    d = v and default and _variance_for(variance, kernel, default["scale"])
    if v:
      cost = TEMPLATES["cost"].format(
        m=NUM_FEATURES, v=v["aligned"]["rel_rmse"]
      )
    if d:
      cost += f" against {d['aligned']['rel_rmse']:.3f} at the default"
    fields = dict(acc=_acc(r), default=_acc(default), ci=_ci(r["paired_diff"]))
    line = TEMPLATES["tuned"].format(**r, **fields, cost=cost)
    for x in mine:  # a higher score above the range: reported, not chosen
      above = x["setting"] == "fixed" and x["scale"] > _top(kernel)
      if above and x.get("beats_default") and x["test_mean"] > r["test_mean"]:
        ci = _ci(x["paired_diff"])
        line += " " + TEMPLATES["above"].format(**x, acc=_acc(x), ci=ci)
    lines.append(line)
  return lines + [""]


def _accuracy_row(row: dict, variance: list[dict]) -> str:
  shown, cells = f"{row['scale']:.2f}", ["", "", "", ""]
  if row["setting"] == "learn":
    shown = "learned"
    if "learned_scale_mean" in row:
      shown = "{:.2f}-{:.2f} (learned)".format(*row["learned_scale_range"])
  scale = row.get("learned_scale_mean", row["scale"])
  if (v := _variance_for(variance, row["kernel"], scale)) is not None:
    cells = [f"{v['max_qk']:.2f}", _contrast(v)]
    cells += [f"{v[p]['rel_rmse']:.3f}" for p in ("aligned", "random")]
  if row["kernel"] == "softmax":
    shown, cells = "-", ["-", "-", "exact", "exact"]
  diff = _ci(row["paired_diff"]) if "paired_diff" in row else ""
  if row.get("beats_default"):
    diff = f"**{diff} better**"
  elif row.get("worse_than_default"):
    diff += " worse"
  cells = [row["kernel"], row["setting"], shown] + cells
  cells += [",".join(map(str, row[k])) for k in ("seeds", "steps")]
  cells += [_acc(row), _pct(row["val_final_mean"])]
  cells += [_pct(row["val_curve_mean"]), diff]
  return "| " + " | ".join(cells) + " |"


def render(data: dict) -> str:
  """docs/TEMPERATURE.md from docs/temperature.json's content."""
  setup, rows, variance = data["setup"], data["summary"], data["variance"]
  reading = conclusions(rows)
  for r in [r for r in rows if r["kernel"] == "softmax"][:1]:
    seeds = ",".join(map(str, r["seeds"]))
    reading.append(TEMPLATES["softmax"].format(acc=_acc(r), seeds=seeds))
  if ref := data.get("softmax_reference"):
    pct = 100 * ref["val_accuracy"]
    reading.append(TEMPLATES["reference"].format(pct=pct, **ref))
  if check := data.get("reproduction_check"):
    pcts = {k: 100 * check[k] for k in ("ours", "reduced")}
    reading.append(TEMPLATES["check"].format(**dict(check, **pcts)))
  row = lambda v: dict(v, contrast=_contrast(v))
  var_rows = [TEMPLATES["variance_row"].format(**row(v)) for v in variance]
  f = dict(s=DEFAULT_SCALE, s2=DEFAULT_SCALE**2, dh=HEAD_DIM, m=NUM_FEATURES)
  f.update(d=setup["data"], warmup=setup["warmup"], steps=setup["steps"])
  f.update(draws=setup["num_draws"], n=len(data["runs"]))
  f["rows"] = "\n".join(_accuracy_row(r, variance) for r in rows)
  f.update(reading="\n".join(reading), variance="\n".join(var_rows))
  f["recommendation"] = "\n".join(recommendation_lines(rows, variance))
  f["missing"] = ", ".join(data.get("missing", [])) or "none"
  return TEMPLATES["page"].format(**f, machine=data["machine"]) + "\n"


MARKS = {  # setting -> marker, colour, label
  "default": ("s", "C3", "Dh^-1/4 (authors)"),
  "fixed": ("o", "C0", "fixed s"),
  "learn": ("^", "C2", "learned s (final)"),
}


def make_plot(data: dict, path: str) -> None:
  """Test accuracy vs scale per kernel (seeds and mean), RMSE on a twin axis."""
  plt, ref = common.pyplot(), data.get("softmax_reference")
  fig, axes = plt.subplots(1, len(KERNELS), figsize=(18, 4.5), sharey=True)
  runs = lambda kernel: [r for r in data["runs"] if r["kernel"] == kernel]
  softmax = [r["test_accuracy"] for r in runs("softmax")]
  learned = lambda r: statistics.mean(r.get("learned_scales") or [r["scale"]])
  for ax, kernel in zip(axes, KERNELS, strict=True):
    for setting, (marker, color, label) in MARKS.items():
      if mine := [r for r in runs(kernel) if r["setting"] == setting]:
        xs = [learned(r) if setting == "learn" else r["scale"] for r in mine]
        ys = [100 * r["test_accuracy"] for r in mine]
        ax.scatter(xs, ys, marker=marker, color=color, alpha=0.6, label=label)
    rows = [r for r in data["summary"] if r["kernel"] == kernel]
    if rows := [r for r in rows if r["setting"] != "learn"]:
      xs, ys = [r["scale"] for r in rows], [100 * r["test_mean"] for r in rows]
      yerr = [100 * (r["test_std"] or 0) for r in rows]
      style = dict(color="k", lw=1, capsize=3, label="mean ± std")
      ax.errorbar(xs, ys, yerr=yerr, **style)
    if softmax:
      style = dict(color="0.5", ls="--", label="softmax (mean)")
      ax.axhline(100 * statistics.mean(softmax), **style)
    if ref:
      label = f"softmax val. acc. at step {ref['step']} (seed 0)"
      ax.axhline(100 * ref["val_accuracy"], color="0.5", ls=":", label=label)
    ax.axvline(DEFAULT_SCALE, color="C3", lw=0.5)
    ax.set(xscale="log", xlabel="q/k scale s (|q.k| <= s^2)", title=kernel)
    if var := [v for v in data["variance"] if v["kernel"] == kernel]:
      twin, label = ax.twinx(), "RMSE of one kernel value (aligned)"
      xs, ys = (
        [v["scale"] for v in var],
        [v["aligned"]["rel_rmse"] for v in var],
      )
      twin.plot(xs, ys, color="C1", ls=":", marker=".", label=label)
      twin.set_yscale("log")
      twin.tick_params(axis="y", colors="C1")
      if kernel == KERNELS[-1]:
        twin.set_ylabel("relative RMSE, M = 128", color="C1")
        twin.legend(loc="lower right", fontsize=7)
  axes[0].set_ylabel(f"test accuracy (%), {data['setup']['steps']} steps")
  handles, labels = axes[0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
  fig.suptitle(TEMPLATES["plot_title"])
  common.savefig(fig, path, rect=(0, 0.07, 1, 1))


# The diagnostic: exact exp kernel vs RMFA and softmax at the same scales.
def diagnostic_record(workdir: str, setting: str, seed: int) -> dict | None:
  """One finished diagnostic run's numbers, or None."""
  preset, _, scale = SETTINGS[setting]
  fields = dict(run=diagnostic_name(setting, seed), setting=setting)
  fields.update(attention=preset, scale=scale, seed=seed)
  if (done := read(workdir, **fields)) is None:
    return None
  (results, out), wall = done, common.load_json(f"{workdir}/wall.json")[0]
  majority = results["majority_class_accuracy"]
  curve = [[s, round(a, 4)] for s, a in out["eval_curve"]]
  escape = (int(s) for s, a in curve if a > majority + PLATEAU_MARGIN)
  out.update(majority_class_accuracy=majority, eval_curve=curve)
  out.update(escape_step=next(escape, None))
  return dict(out, wall_s=(wall or {}).get("wall_s"))


def compare(runs: list[dict], temperature: dict[str, dict]) -> list[dict]:
  """Per scale: exact kernel, RMFA and softmax, by seed, with paired diffs."""
  rows = []
  for setting, (_, rmfa_setting, scale) in SETTINGS.items():
    exact = {
      r["seed"]: r["test_accuracy"] for r in runs if r["setting"] == setting
    }
    row = dict(scale=scale, seeds=sorted(exact), exact={}, rmfa={}, softmax={})
    row.update(exact_minus_rmfa={}, exact_minus_softmax={})
    others = (("rmfa", "exp", rmfa_setting), ("softmax", "softmax", "default"))
    for seed, acc in sorted(exact.items()):
      row["exact"][seed] = acc
      for name, kernel, other in others:
        if r := temperature.get(run_name(kernel, other, seed)):
          row[name][seed] = r["test_accuracy"]
          row[f"exact_minus_{name}"][seed] = acc - r["test_accuracy"]
    rows.append(row)
  return rows


def _cells(r: dict) -> dict:
  """A comparison row's cells (per-seed dicts: int or JSON str keys)."""
  cells = {}
  for k in ("exact", "rmfa", "softmax"):
    v = [100 * x for x in r[k].values()]
    cells[k] = f"{v[0]:.1f}" if len(v) == 1 else "–"
    if len(v) > 1:
      cells[k] = f"{statistics.mean(v):.1f} ± {statistics.stdev(v):.1f}"
  for k in ("exact_minus_rmfa", "exact_minus_softmax"):
    v, cells[k] = [100 * x for x in r[k].values()], "–"
    if v:
      seeds = ", ".join(f"{x:+.1f}" for x in v)
      cells[k] = f"{statistics.mean(v):+.1f} (per seed {seeds})"
  return cells


def conclusion(rows: list[dict]) -> str:
  """The one-paragraph answer, from the numbers."""
  near = lambda r: abs(r["scale"] - DEFAULT_SCALE) < 1e-6
  by_scale = {("default" if near(r) else "tuned"): r for r in rows}
  d, t = by_scale.get("default"), by_scale.get("tuned")
  if not d or not d["exact"]:
    return "No exact-kernel run has finished yet."

  def fields(r):
    seeds, diff = ", ".join(map(str, r["seeds"])), _cells(r)["exact_minus_rmfa"]
    return dict(
      _cells(r), s=r["scale"], seeds=seeds, diff=diff, steps=NUM_STEPS
    )

  mean = lambda xs: 100 * statistics.mean(xs.values()) if xs else math.nan
  text = [DIAG["conclusion"].format(**fields(d))]
  if t and t["exact"]:
    text.append(DIAG["tuned"].format(**fields(t)))
  # The explanation whose prediction is nearer: noise predicts exact ~
  # softmax, near-uniform attention predicts exact ~ RMFA (same scale).
  e, s2 = mean(d["exact"]), DEFAULT_SCALE**2
  if abs(e - mean(d["rmfa"])) >= abs(e - mean(d["softmax"])):
    text.append(DIAG["noise"])
  else:
    text.append(
      DIAG["uniform"].format(s2=s2, two_s2=2 * s2, e=math.exp(2 * s2))
    )
    if t and t["exact"] and mean(t["exact_minus_rmfa"]) < -2:
      from macformer_jax import features  # pylint: disable=g-import-not-at-top

      m1 = features.make_plan(NUM_FEATURES, "exp", "stratified")[0].counts[0]
      top = (1 + math.sqrt(HEAD_DIM / m1)) ** 2
      text.append(DIAG["rmfa_ahead"].format(m1=m1, dh=HEAD_DIM, top=top))
    else:
      text.append(DIAG["fix"])
  return " ".join(text + [DIAG["caveat"].format(steps=NUM_STEPS)])


def _run_row(r: dict) -> str:
  keys = ("test_accuracy", "test_accuracy_best_eval", "majority_class_accuracy")
  pct = {k: f"{100 * r[k]:.1f}" for k in keys}
  curve = " ".join(f"{s}:{100 * a:.1f}" for s, a in r["eval_curve"])
  speed, wall = r["median_train_steps_per_sec"], r["wall_s"]
  speed = "–" if speed is None else f"{speed:.2f}"
  wall = "–" if wall is None else f"{wall:.0f}"
  cells = dict(r, **pct, escape=r["escape_step"] or "none", curve=curve)
  return DIAG["run_row"].format(**cells, speed=speed, wall=wall)


def render_diagnostic(report: dict) -> str:
  """docs/DIAGNOSTIC.md from docs/exact_kernel.json's content."""
  row = lambda r: DIAG["comparison_row"].format(**dict(r, **_cells(r)))
  fields = {k: report[k] for k in ("conclusion", "machine", "nice", "parallel")}
  fields.update(steps=NUM_STEPS, warmup=WARMUP, margin=100 * PLATEAU_MARGIN)
  fields.update(seeds=", ".join(map(str, SEEDS)))
  fields["comparison"] = "\n".join(map(row, report["comparison"]))
  fields["runs"] = "\n".join(map(_run_row, report["runs"]))
  return DIAG["page"].format(**fields) + "\n"


def measure_diagnostic(args, recorded_runs: list[dict]) -> dict:
  """docs/exact_kernel.json's content: the runs, the comparison with the
  temperature study's and the conclusion."""
  name = lambda x: os.path.join(args.runs, diagnostic_name(*x))
  fresh = [r for x in DIAGNOSTIC_GRID if (r := diagnostic_record(name(x), *x))]
  order = {diagnostic_name(*x): i for i, x in enumerate(DIAGNOSTIC_GRID)}
  runs = sorted(merged(recorded_runs, fresh), key=lambda r: order[r["run"]])
  temperature = {r["run"]: r for r in recorded(args.docs, "temperature")}
  comparison = compare(runs, temperature)
  setup = dict(steps=NUM_STEPS, warmup=WARMUP, eval_every=EVAL_EVERY)
  setup.update(data=DATA, max_len=256, seeds=list(SEEDS))
  setup["settings"] = {k: list(v) for k, v in SETTINGS.items()}
  data = dict(setup=setup, runs=runs, comparison=comparison)
  data["conclusion"] = conclusion(comparison)
  data["machine"] = "{platform}, {cpus} CPUs".format(**common.host())
  return dict(data, nice=args.nice, parallel=args.parallel)


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("command", choices=("run", "report"))
  parser.add_argument("--diagnostic", action="store_true")
  parser.add_argument("--from_docs", action="store_true")
  parser.add_argument("--docs", default=os.path.join(common.REPO, "docs"))
  parser.add_argument("--runs", help="default runs/<study>")
  args = parser.parse_args(argv)
  name = "exact_kernel" if args.diagnostic else "temperature"
  args.runs = args.runs or os.path.join(common.REPO, "runs", name)
  args.nice, args.parallel = NICE_PARALLEL[args.diagnostic]
  json_path = os.path.join(args.docs, name + ".json")
  if args.command == "run":
    done = {r["run"] for r in recorded(args.docs, name)}
    todo = {k: v for k, v in commands(args.diagnostic).items() if k not in done}
    print(f"{len(done)} runs recorded in {json_path}, {len(todo)} to train")
    os.makedirs(args.runs, exist_ok=True)
    ensure_data(data_dir := os.path.join(args.runs, "data"))
    jobs = [(os.path.join(args.runs, k), v) for k, v in todo.items()]
    return train([(w, make(w, data_dir)) for w, make in jobs], args)
  if args.from_docs:
    data, why = common.load_json(json_path)
    if data is None:
      raise SystemExit(f"{json_path} is {why}")
  else:
    measure_fn = measure_diagnostic if args.diagnostic else measure
    data = measure_fn(args, recorded(args.docs, name))
  common.write(json_path, json.dumps(data, indent=1))
  if args.diagnostic:
    common.write(f"{args.docs}/DIAGNOSTIC.md", render_diagnostic(data))
    return print(data["conclusion"])
  common.write(os.path.join(args.docs, "TEMPERATURE.md"), render(data))
  make_plot(data, os.path.join(args.docs, "temperature.png"))


if __name__ == "__main__":
  main()
