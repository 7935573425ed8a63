"""Does Macformer's q/k scale Dh^-1/4 slow learning? (docs/TEMPERATURE.md)

`run` trains the reduced ListOps model at several q/k scales and seeds
(resumable; benchmarks/studies.py); `report` writes docs/temperature.json,
TEMPERATURE.md and temperature.png.

  python -m benchmarks.temperature_study run [--kernels exp,softmax]
  python -m benchmarks.temperature_study report [--from_docs]
"""

import functools
import math
import os
import statistics

import numpy as np

from benchmarks import common
from benchmarks import studies

DEFAULT_SCALE, SEEDS = studies.DEFAULT_SCALE, studies.SEEDS
HEAD_DIM, NUM_FEATURES = studies.HEAD_DIM, studies.NUM_FEATURES

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
_T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36}
TEMPLATES = common.templates("temperature")


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


def run_command(kernel, setting, seed, workdir, data_dir, num_steps):
  """The run_lra.py command line of one run of the grid."""
  preset = "softmax" if kernel == "softmax" else f"macformer_{kernel}"
  cmd = studies.lra_command(preset, seed, workdir, data_dir, num_steps)
  option = "--config.attention.options."
  if kernel != "softmax":
    cmd.append(f"{option}num_features={NUM_FEATURES}")
  if setting == "learn":
    cmd.append(f"{option}learn_qk_scale=True")
  elif setting != "default":
    cmd.append(f"{option}qk_scale={setting}")
  return cmd


def commands(args) -> dict:
  """The grid's runs in `--kernels` (all if empty), in schedule order."""
  kernels = args.kernels.split(",") if args.kernels else KERNELS + ("softmax",)
  make = lambda x: functools.partial(run_command, *x, num_steps=args.steps)
  return {run_name(*x): make(x) for x in schedule() if x[0] in kernels}


# ----------------------------------------------------------------------------
# Measurements: the variance a scale costs, the finished runs.
# ----------------------------------------------------------------------------
def _pair(cosine: float, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Two centred unit vectors (PreSBN outputs) with x . y = cosine."""
  x, z = np.random.default_rng(seed).standard_normal((2, dim))
  x -= x.mean()
  x /= np.linalg.norm(x)
  z -= z.mean()
  z -= (z @ x) * x
  z /= np.linalg.norm(z)
  return x, cosine * x + math.sqrt(1.0 - cosine**2) * z


def variance_cost(kernel, scales, num_draws=4096, seed=0) -> list[dict]:
  """Error of one RMF estimate phi(q).phi(k) of f(q.k) at M = 128, Dh = 32,
  for PreSBN'd q, k scaled by s, aligned (t = s^2) and a typical random pair
  (cosine 1/sqrt(Dh - 1)): the default map's relative RMSE over `num_draws`
  maps, its relative bias, the paper's map's relative std
  (`features.rmf_variance`) and the contrast f(s^2) / f(-s^2)."""
  import jax  # pylint: disable=g-import-not-at-top

  from macformer_jax import features  # pylint: disable=g-import-not-at-top
  from macformer_jax import kernels  # pylint: disable=g-import-not-at-top

  def estimate(key, x, y):
    plan = (HEAD_DIM, NUM_FEATURES, kernel, "stratified")
    params = features.sample_rmf(key, *plan, projection="chained")
    return features.rmf(params, x) @ features.rmf(params, y)

  estimates = jax.jit(jax.vmap(estimate, in_axes=(0, None, None)))
  keys = jax.random.split(jax.random.key(seed), num_draws)
  cosines = {"aligned": 1.0, "random": 1.0 / math.sqrt(HEAD_DIM - 1)}
  rows, exact = [], functools.partial(kernels.exact, kernel)
  for s in scales:
    row = {"kernel": kernel, "scale": s, "max_qk": s * s}
    if s * s < kernels.get(kernel).radius:  # the float32 ratio
      row["contrast"] = float(exact(s * s) / exact(-s * s))
    for name, cosine in cosines.items():
      x, y = (s * v for v in _pair(cosine, HEAD_DIM, seed))
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
    results, curve, speeds = common.read_run(os.path.join(runs_dir, name))
    if results is None:
      continue
    config = results["config"]
    options = config["attention"]["options"]
    softmax = config["attention"]["name"] == "softmax"
    setting = "learn" if options.get("learn_qk_scale") else "default"
    scale = None if softmax else options.get("qk_scale")
    if setting == "default" and scale is not None:
      setting = float(scale)
    fixed = not isinstance(setting, str)
    record = {
      "run": name,
      "kernel": "softmax" if softmax else options["kernel"],
    }
    record["setting"] = "fixed" if fixed else setting
    record.update(
      scale=setting if fixed else DEFAULT_SCALE, seed=config["seed"]
    )
    for key in ("steps", "test_accuracy", "test_accuracy_best_eval"):
      record[key] = results[key]
    record["eval_curve"] = curve
    speed = statistics.median(speeds) if speeds else None
    record["median_train_steps_per_sec"] = speed
    if setting == "learn":
      try:
        workdir = os.path.join(runs_dir, name)
        record["learned_scales"] = learned_scale(workdir, record["kernel"])
      except Exception as e:  # pylint: disable=broad-except
        record["learned_scales_error"] = f"{type(e).__name__}: {e}"[:200]
    records.append(record)
  return records


def _order(key: tuple) -> tuple:
  """Kernels in KERNELS order, then softmax; default, learn, fixed scales."""
  order = KERNELS + ("softmax",)
  rank = order.index(key[0]) if key[0] in order else 9
  return rank, key[1] != "default", key[1] != "learn", key[2]


def summarise(records: list[dict]) -> list[dict]:
  """Mean, std over seeds per (kernel, setting, scale), and the paired
  difference (same seed) to the kernel's default."""
  groups: dict[tuple, list[dict]] = {}
  for r in records:
    key = (r["kernel"], r["setting"], round(r["scale"], 4))
    groups.setdefault(key, []).append(r)
  default = {k[0]: v for k, v in groups.items() if k[1] == "default"}
  rows = []
  for key in sorted(groups, key=_order):
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
    diffs = [
      r["test_accuracy"] - base[r["seed"]] for r in runs if r["seed"] in base
    ]
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
  records = sorted(studies.merged(recorded, fresh), key=lambda r: r["run"])
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
  setup.update(warmup=studies.WARMUP, eval_every=studies.EVAL_EVERY)
  setup.update(data=studies.DATA, head_dim=HEAD_DIM)
  setup.update(num_features=NUM_FEATURES, num_draws=args.num_draws)
  setup["command"] = "python -m benchmarks.temperature_study run"
  variance = []
  for k in KERNELS:
    variance += variance_cost(k, sorted(scales[k]), args.num_draws)
  missing = [run_name(*x) for x in schedule() if run_name(*x) not in done]
  ref, check = references(args.docs, records, steps[-1])
  data = dict(setup=setup, runs=records, summary=summary, variance=variance)
  data.update(missing=missing, softmax_reference=ref)
  data.update(reproduction_check=check, machine=common.host())
  rec = recommendation(summary).items()
  return dict(data, recommendation={k: round(r["scale"], 4) for k, r in rec})


# ----------------------------------------------------------------------------
# Report.
# ----------------------------------------------------------------------------
def _pct(mean, std=None) -> str:
  if mean is None:
    return ""
  return f"{100 * mean:.1f}" + ("" if std is None else f" ± {100 * std:.1f}")


def _acc(r: dict) -> str:
  return _pct(r["test_mean"], r["test_std"])


def _ci(d: dict) -> str:
  lo, hi = d["ci95"]
  return f"{100 * d['mean']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def _variance_for(variance: list[dict], kernel: str, scale: float):
  same = lambda v: v["kernel"] == kernel and abs(v["scale"] - scale) < 1e-3
  return next(filter(same, variance), None)


def _label(r: dict) -> str:
  return "learned scale" if r["setting"] == "learn" else f"s = {r['scale']:.2f}"


def _contrast(v: dict) -> str:
  return f"{v['contrast']:.2f}" if "contrast" in v else "-"


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
      text.append("Beats the default beyond seed noise (95% paired interval")
      text.append("above 0): " + ", ".join(better) + ".")
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
      cost = f"; kernel RMSE at M = {NUM_FEATURES} (aligned pair) "
      cost += f"{v['aligned']['rel_rmse']:.3f}"
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
  v = _variance_for(
    variance, row["kernel"], row.get("learned_scale_mean", row["scale"])
  )
  if v is not None:
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
  setup, rows, variance = data["setup"], data["summary"], data["variance"]
  reading = conclusions(rows)
  for r in [r for r in rows if r["kernel"] == "softmax"][:1]:
    seeds = ",".join(map(str, r["seeds"]))
    reading.append(TEMPLATES["softmax"].format(acc=_acc(r), seeds=seeds))
  ref, check = data.get("softmax_reference"), data.get("reproduction_check")
  if ref:
    pct = 100 * ref["val_accuracy"]
    reading.append(TEMPLATES["reference"].format(pct=pct, **ref))
  if check:
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


MARKS = {
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
      mine = [r for r in runs(kernel) if r["setting"] == setting]
      xs = [learned(r) if setting == "learn" else r["scale"] for r in mine]
      ys = [100 * r["test_accuracy"] for r in mine]
      style = dict(marker=marker, color=color, alpha=0.6, label=label)
      if mine:
        ax.scatter(xs, ys, **style)
    rows = [r for r in data["summary"] if r["kernel"] == kernel]
    rows = [r for r in rows if r["setting"] != "learn"]
    xs, ys = [r["scale"] for r in rows], [100 * r["test_mean"] for r in rows]
    yerr = [100 * (r["test_std"] or 0) for r in rows]
    if rows:
      ax.errorbar(
        xs, ys, yerr=yerr, color="k", lw=1, capsize=3, label="mean ± std"
      )
    if softmax:
      style = dict(color="0.5", ls="--", label="softmax (mean)")
      ax.axhline(100 * statistics.mean(softmax), **style)
    if ref:
      label = f"softmax val. acc. at step {ref['step']} (seed 0)"
      ax.axhline(100 * ref["val_accuracy"], color="0.5", ls=":", label=label)
    ax.axvline(DEFAULT_SCALE, color="C3", lw=0.5)
    ax.set(xscale="log", xlabel="q/k scale s (|q.k| <= s^2)", title=kernel)
    var = [v for v in data["variance"] if v["kernel"] == kernel]
    if var:
      twin, label = ax.twinx(), "RMSE of one kernel value (aligned)"
      xs = [v["scale"] for v in var]
      ys = [v["aligned"]["rel_rmse"] for v in var]
      twin.plot(xs, ys, color="C1", ls=":", marker=".", label=label)
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


def write(args, data: dict) -> None:
  common.write(os.path.join(args.docs, "TEMPERATURE.md"), render(data))
  make_plot(data, os.path.join(args.docs, "temperature.png"))


def main(argv: list[str] | None = None) -> None:
  """`run`: trains the grid (`--kernels`: a comma-separated subset);
  `report`: measures and writes the docs (benchmarks/studies.py)."""
  flags = dict(kernels="", nice=19, parallel=1, num_draws=4096)
  studies.main(argv, __doc__, "temperature", commands, measure, write, flags)


if __name__ == "__main__":
  main()
