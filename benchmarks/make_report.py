r"""Renders docs/BENCHMARKS.md and docs/RESULTS.md from the files in docs/.

  python -m benchmarks.make_report              # docs/ -> both pages
  python -m benchmarks.make_report --runs runs  # copy reduced_listops.sh's
                                                # runs to docs/results first

BENCHMARKS.md has a section per file the studies write (a missing file: its
command, or nothing for an optional one) and draws attention_speed.png and
attention_pareto.png; RESULTS.md is the reduced ListOps comparison of
docs/results/reduced_listops_*.json. Prose, titles, commands and table
layouts: benchmarks/templates/{report,results}.md.
"""

import argparse
import functools
import itertools
import json
import math
import os
import statistics

from benchmarks import common
from benchmarks.common import pct
from benchmarks.common import table

# An earlier independent numpy measurement (not a paper number):
# exp kernel, D = 128, L = 1024, d = 32, PreSBN, non-causal, sampled degrees.
HARNESS_B_EXP_D128 = 0.026
KERNELS = ("exp", "trigh", "inverse", "log", "sqrt")
BASELINES = {"performer": "Performer FAVOR+", "rfa": "RFA (Fourier)"}
REPORT_DIMS, GRID_M, GRID_SPEED_L = (128, 1024), 128, 8192
LEVELS = (0.1, 0.07, 0.05, 0.03, 0.02, 0.015, 0.01, 0.007, 0.005, 0.003)
# The runs of benchmarks/reduced_listops.sh (the Spectraformer ones later).
REDUCED = ("softmax", "macformer_exp", "spectra_oprf_fastfoodl")
REDUCED += ("spectra_posrf_orf", "spectra_posrf_sorf")
SPECTRAFORMER = f"{common.REPO}/benchmarks/spectraformer_published.json"
T = common.templates("report")
# docs/<file> | section title [| the command that writes it, if required].
SECTIONS = [line.split(" | ") for line in T["sections"].splitlines()]
TITLES = {file: title for file, title, *_ in SECTIONS}
COMMANDS = {file: cmd[0] for file, _, *cmd in SECTIONS if cmd}


def _say(key: str, **fields) -> list[str]:
  """The lines of a template section, then a blank line."""
  return T[key].format(**fields).splitlines() + [""]


def _table(key: str, items, **fields) -> list[str]:
  """The table of template section `key` (common.format_table), then ''."""
  return common.format_table(T[key], items, **fields) + [""]


def _slope(x: float | None, spec: str = "+.3f") -> str:
  return "n/a" if x is None else format(x, spec)


def _png(docs: str, name: str, alt: str) -> list[str]:
  """The Markdown image of docs/<name> if that file exists."""
  exists = os.path.exists(os.path.join(docs, name))
  return [f"![{alt}]({name})", ""] if exists else []


# Kernel error (benchmarks.kernel_error).
def _cells(c: dict, metrics, slopes) -> dict:
  """A curve's fitted slopes, and mean ± std per REPORT_DIMS and metric."""
  at = lambda m, i: common.pm(c[m]["mean"][i], c[m]["std"][i])
  dims = [c["D"].index(d) if d in c["D"] else None for d in REPORT_DIMS]
  cells = ["–" if i is None else at(m, i) for i in dims for m in metrics]
  return dict(slopes=[_slope(c[m]["slope"]) for m in slopes], cells=cells)


def _kernel_error(data: dict, docs: str) -> list[str]:
  """RMF's kernel and attention error vs D, with and without PreSBN."""
  s, var, dims = data["settings"], data["variance"], dict(dims=REPORT_DIMS)
  keys = ("method", "kernel", "allocation", "projection", "inputs")
  index = {tuple(map(c.get, keys)): c for c in reversed(data["curves"])}
  curve = lambda m="rmf", k="exp", a=None, p=None, i="presbn": index.get(
    (m, k, a, p, i)
  )
  machine, D = common.machine_line(data["machine"]), ", ".join(map(str, s["D"]))
  lines = _say("kernel_error", d=data, machine=machine, s=s, D=D)
  lines += _png(docs, "kernel_error.png", "kernel and attention error vs D")
  both = ("kernel_error", "attention_error")
  tags = {"stratified/chained": " (default)", "sampled/independent": " (paper)"}
  items = [
    dict(_cells(c, both, both), name=f"RMF {k}", label=f"{a}/{p}")
    for k in KERNELS
    for a in ("stratified", "sampled")
    for p in ("chained", "independent")
    if (c := curve(k=k, a=a, p=p))
  ]
  items = [dict(i, label=i["label"] + tags.get(i["label"], "")) for i in items]
  items += [
    dict(_cells(c, both, both), name=name, label="softmax = exp kernel")
    for m, name in BASELINES.items()
    if (c := curve(m=m))
  ]
  lines += ["### With PreSBN", ""] + _table("presbn_table", items, **dims)
  ref = curve(a="sampled", p="independent")
  if ref is not None and 128 in ref["D"]:
    value = common.as_float(ref["attention_error"]["mean"][ref["D"].index(128)])
    ratio, ref = value / HARNESS_B_EXP_D128, HARNESS_B_EXP_D128
    lines += _say("kernel_check", value=common.fmt(value), ref=ref, ratio=ratio)
  outside = data["fraction_outside_radius"]["raw"]
  raw = ("attention_error", "attention_error_truncated")
  bad = lambda c: sum(
    v.get("nonfinite", 0) for v in c.values() if isinstance(v, dict)
  )
  # (name, kernel, default fraction outside the radius, curve)
  raws = [
    (k, k, math.nan, dict(k=k, a="sampled", p="independent")) for k in KERNELS
  ]
  raws += [(f"{m} (softmax)", "exp", 0, dict(m=m)) for m in BASELINES]
  items = [
    dict(_cells(c, raw, raw[1:]), name=name, bad=bad(c))
    | dict(outside=common.fmt(outside.get(k, default)))
    for name, k, default, where in raws
    if (c := curve(**where, i="raw"))
  ]
  n = 4 * len(s["D"]) * s["seeds"]
  lines += _say("kernel_raw", s=s) + _table("raw_table", items, n=n, **dims)
  items = [dict(r, t=common.fmt(r["mean_abs_t"], 2)) for r in var["rows"]]
  return lines + _say("variance", **var) + _table("variance_table", items)


# Attention speed (benchmarks.attention_speed), also the Spectraformer grid's.
def _variants(rows: list[dict]) -> list[str]:
  """The timed variants of the rows, in their order of appearance."""
  timed = lambda v: isinstance(v, dict) and "median_ms" in v
  return list(dict.fromkeys(k for r in rows for k, v in r.items() if timed(v)))


def _by_length(rows, variants, key, div=1, oom="–", unit="", ratios=()):
  """`key` per length (rows) and variant, then (variant, base) speed-ups."""
  cell = lambda r, v: (
    f"{r[v][key] / div:.1f}"
    if r.get(v, {}).get(key) is not None
    else (oom if v in r.get("oom", []) else "–")
  )
  gain = lambda r, v, b: (
    f"{r[b]['median_ms'] / r[v]['median_ms']:.2f}×" if {v, b} <= {*r} else "–"
  )
  header = ["L"] + [v + unit for v in variants]
  header += [f"{v} speed-up vs {b}" for v, b in ratios]
  body = [
    [r["length"], *(cell(r, v) for v in variants)]
    + [gain(r, v, b) for v, b in ratios]
    for r in rows
  ]
  return table(header, body) + [""]


def crossover(rows: list[dict], fast: str, slow: str):
  """Where `fast` overtakes `slow`: (L or None, a sentence saying where it is
  faster). L: log-log interpolated, the last change to faster that stays."""
  pts = sorted(
    (r["length"], r[fast]["median_ms"], r[slow]["median_ms"])
    for r in rows
    if fast in r and slow in r
  )
  if not pts:
    return None, f"no length has both {fast} and {slow}"
  faster = ", ".join(str(l) for l, f, s in pts if f < s)
  slower = ", ".join(str(l) for l, f, s in pts if f >= s)
  length = None
  for (l0, f0, s0), (l1, f1, s1) in zip(pts, pts[1:], strict=False):
    if f0 >= s0 and f1 < s1 and all(f < s for l, f, s in pts if l >= l1):
      r0, r1 = math.log(f0 / s0), math.log(f1 / s1)
      length = math.exp(
        math.log(l0) + (math.log(l1) - math.log(l0)) * r0 / (r0 - r1)
      )
  case = "some" if faster and slower else "none" if slower else "all"
  words = dict(fast=fast, slow=slow, faster=faster, slower=slower)
  text = T[f"faster_{case}"].format(**words, low=pts[0][0])
  if length is not None and case == "some":
    text += T["overtakes"].format(slow=slow, length=length)
  return length, text


def speed_plot(data: dict, rows: list[dict], path: str) -> None:
  """fwd+bwd time vs L per variant, log-log, crossover lines."""
  fig, ax = common.pyplot().subplots(figsize=(7.5, 5))
  for v in _variants(rows):
    pts = [(r["length"], r[v]["median_ms"]) for r in rows if v in r]
    lw = 2.5 if v == "rmfa" else 1.5
    ax.plot(*zip(*pts, strict=True), marker="o", label=v, lw=lw)
  for slow, color in (("softmax", "C3"), ("performer", "C1")):
    both = {slow, "rmfa"} <= {*_variants(rows)}
    if both and (length := crossover(rows, "rmfa", slow)[0]) is not None:
      ax.axvline(length, color=color, ls=":", lw=1)
      label, top = f" rmfa < {slow}\n L≈{length:.0f}", ax.get_ylim()[1]
      ax.text(length, top, label, va="top", fontsize=8, color=color)
  ax.set_xscale("log", base=2)
  ax.set(yscale="log", xlabel="sequence length L")
  ax.set_ylabel("fwd+bwd time (ms, median)")
  title = T["speed_title"].format(d=data, sh=data["shapes"])
  ax.set_title(title, fontsize=10)
  ax.grid(True, which="both", alpha=0.3)
  ax.legend()
  common.savefig(fig, path)


def _attention_speed(data: dict, docs: str) -> list[str]:
  """fwd+bwd (and forward) time and memory vs L per variant; crossovers."""
  rows = sorted(data["rows"], key=lambda r: r["length"])
  variants, machine = _variants(rows), common.machine_line(data)
  cmd = data.get("command", COMMANDS["attention_speed.json"])
  lines = _say("speed", cmd=cmd, machine=machine, d=data)
  # Speed-ups of every variant against softmax, and of rmfa vs Performer.
  ratios = [(v, "softmax") for v in variants if v != "softmax"]
  ratios += [("rmfa", b) for b in ("performer", "performer_peer")]
  ratios = [(v, b) for v, b in ratios if {v, b} <= set(variants)]
  lines += _by_length(rows, variants, "median_ms", unit=" ms", ratios=ratios)
  has = lambda key: any(key in r.get(v, {}) for r in rows for v in variants)
  if has("fwd_median_ms"):
    lines += ["Forward only (ms, median):", ""]
    lines += _by_length(rows, variants, "fwd_median_ms")
  if has("fwd_bwd_temp_bytes"):
    lines += _say("speed_memory")
    lines += _by_length(rows, variants, "fwd_bwd_temp_bytes", 2**20, "OOM")
  if has("fraction_of_matmul"):
    share = [(r["length"], r["rmfa"]) for r in rows if "rmfa" in r]
    share = ", ".join(
      f"L={n}: {100 * r['fraction_of_matmul']:.0f}%" for n, r in share
    )
    lines += _say("speed_share", share=share)
  slow = [s for s in ("softmax", "performer") if {s, "rmfa"} <= {*variants}]
  if slow:
    lines += [f"* {crossover(rows, 'rmfa', s)[1]}." for s in slow] + [""]
  speed_plot(data, rows, os.path.join(docs, "attention_speed.png"))
  return lines + ["![attention time vs L](attention_speed.png)", ""]


def _attention_speed_spectral(data: dict, docs: str) -> list[str]:
  """The Spectraformer grid's fwd+bwd time vs L; extremes at one L."""
  rows = sorted(data["rows"], key=lambda r: r["length"])
  variants, bases = _variants(rows), ("rmfa", "performer", "softmax")
  lines = _say("grid_speed", d=data, sh=data["shapes"])
  lines += _by_length(rows, variants, "median_ms")
  at = next((r for r in rows if r["length"] == GRID_SPEED_L), {})
  spectra = [v for v in variants if v.startswith("spectra_") and v in at]
  if not (timed := sorted((at[v]["median_ms"], v) for v in spectra)):
    return lines
  ratio = lambda ms, b: f"{ms / at[b]['median_ms']:.2f}×" if b in at else "–"
  items = [
    dict(v=v, ms=ms, r=[ratio(ms, b) for b in bases])
    for ms, v in (timed[0], timed[-1])
  ] + [dict(v=b, ms=at[b]["median_ms"], r=[""] * 3) for b in bases if b in at]
  lines += _say("grid_extremes", L=GRID_SPEED_L) + _table("extremes", items)
  return lines + _say("grid_cells", fast=timed[0][1], slow=timed[-1][1])


# Time against error (benchmarks.attention_pareto).
def time_to_reach(points, level) -> float | None:
  """Least time at which a method's [(time, error)] points reach error <=
  level: log-log interpolation on their Pareto front (None: never)."""
  best, front = math.inf, []
  for t, e in sorted(points):
    if e < best:
      best = e
      front.append((t, e))
  if not front or front[-1][1] > level:
    return None
  if front[0][1] <= level:
    return front[0][0]
  (t0, e0), (t1, e1) = next(
    (a, b) for a, b in zip(front, front[1:], strict=False) if b[1] <= level
  )
  f = math.log(e0 / level) / math.log(e0 / e1)
  return math.exp(math.log(t0) + f * math.log(t1 / t0))


def _curves(data: dict, length: int, s: float) -> dict[str, list]:
  """{method: [(ms, error at scale s)]} at one length."""
  pts = {r["method"]: [] for r in data["results"]}
  for r in data["results"]:
    if r["length"] == length:
      pts[r["method"]].append((r["ms"], r["errors"][f"{s:g}"]))
  return pts


def pareto_plot(data: dict, lengths: list[int], path: str) -> None:
  """Error vs fwd+bwd time, a curve per method, a panel per (scale, L)."""
  scales, size = data["scales"], (4.5 * len(lengths), 3.8 * len(data["scales"]))
  fig, axes = common.pyplot().subplots(
    len(scales), len(lengths), squeeze=False, figsize=size
  )
  for (i, s), (j, n) in itertools.product(
    enumerate(scales), enumerate(lengths)
  ):
    for name, pts in _curves(data, n, s).items():
      style = "-" if name.startswith("rmfa") else "--"
      lw = 2.2 if name in ("rmfa", "performer_peer") else 1
      xy = zip(*sorted(pts), strict=True)
      axes[i][j].plot(*xy, style, marker="o", ms=3, label=name, lw=lw)
    axes[i][j].set(xscale="log", yscale="log", xlabel="fwd+bwd ms")
    axes[i][j].set_ylabel("relative error")
    axes[i][j].set_title(f"L = {n}, s = {s:.3g}", fontsize=9)
    axes[i][j].grid(True, which="both", alpha=0.3)
  axes[0][-1].legend(fontsize=6)
  common.savefig(fig, path)


def _attention_pareto(data: dict, docs: str) -> list[str]:
  """Time to reach each error level per method; equal-M ratios."""
  res, lengths = data["results"], sorted({r["length"] for r in data["results"]})
  pareto_plot(data, lengths, os.path.join(docs, "attention_pareto.png"))
  lines = _say("pareto", d=data, sh=data["shapes"], png="attention_pareto.png")
  methods = {r["method"] for r in res}
  peer = "performer_peer" if "performer_peer" in methods else "favor"
  for n, s in itertools.product(lengths, data["scales"]):
    reach = {
      name: [time_to_reach(p, e) for e in LEVELS]
      for name, p in _curves(data, n, s).items()
    }
    rows = [
      [m] + ["-" if t is None else f"{t:.1f}" for t in ts]
      for m, ts in reach.items()
    ]
    lines += _say("pareto_level", length=n, s=s)
    lines += table(["method", *(f"{e:g}" for e in LEVELS)], rows)
    if "rmfa" in reach and peer in reach:
      ratios = [
        f"{e:g}: " + (f"{tp / tr:.2f}x" if tp else "rmfa only")
        for e, tp, tr in zip(LEVELS, reach[peer], reach["rmfa"], strict=True)
        if tr
      ]
      same = ", ".join(ratios) or "no common level"
      lines += ["", f"{peer} time / rmfa time at equal error: {same}"]
    lines.append("")
  by = {(r["method"], r["length"], r["num_features"]): r for r in res}
  items = [
    dict(L=n, M=m, a=a, p=p, ratio=p["ms"] / a["ms"])
    | dict(a_mib=a["temp_bytes"] / 2**20, p_mib=p["temp_bytes"] / 2**20)
    | dict(share=100 * a["fraction_of_matmul"])
    for n in lengths
    for m in sorted({r["num_features"] for r in res})
    for a, p in [(by.get(("rmfa", n, m)), by.get((peer, n, m)))]
    if a and p
  ]
  lines += _say("pareto_equal", peer=peer)
  return lines + _table("pareto_table", items, peer=peer)


# Training step (benchmarks.train_step_speed).
def _train_step_speed(data: dict, docs: str) -> list[str] | str:
  """Before/after table per attention, first steps, the profiles' top ops."""
  results = data.get("results") if isinstance(data, dict) else None
  pairs = [
    (r, k)
    for r in results or []
    for k in (("baseline", "this") if "this" in r else ("this",))
  ]
  if not pairs or not all("matmul_share" in r.get(k, r) for r, k in pairs):
    return T["train_step_old"]
  base = data["baseline"]
  label = {"baseline": "before", "this": "after" if base else "this"}
  rows = [(r, label[k], r.get(k, r)) for r, k in pairs]
  lines = _say(
    "train_step",
    baseline=T["train_step_baseline"].format(**data) if base else "",
    d=data,
    rule=" " + T["train_step_rule"] if base else "",
  )
  items = [
    dict(row, label=lab, share=100 * row["matmul_share"])
    | dict(temp=common.fmt(row.get("xla_temp_gib")))
    | dict(gain=f"{r['speedup']:.2f}x" if lab == "after" else "–")
    for r, lab, row in rows
  ]
  lines += _table("train_step_table", items)
  if first := data.get("first_step"):
    items = [
      dict(f, attention=a, label=label[k], cached="yes" if f["cache"] else "no")
      for a, by in first.items()
      for k, f in by.items()
    ]
    lines += _say("first_step") + _table("first_step_table", items)
  for _, lab, row in rows:
    if prof := row.get("profile"):
      fields = dict(attention=row["attention"], label=lab, ms=prof["ops_ms"])
      items = [dict(op, pct=100 * op["share"]) for op in prof["top_ops"]]
      lines += _say("profile", **fields) + _table("profile_table", items)
  return lines


# LRA table, temperature, GPU suite, Spectraformer grid error.
def _lra_table(text: str, docs: str) -> list[str]:
  """docs/lra_table.md, one heading level down."""
  lines = [l for l in text.splitlines() if not l.startswith("# ")]
  return [("#" + l if l.startswith("#") else l) for l in lines] + [""]


def _temperature(data: dict, docs: str) -> list[str]:
  """Accuracy vs q/k scale per kernel (docs/temperature.json), in short."""
  items = []
  for r in data["summary"]:
    s = "learned" if r["setting"] == "learn" else "-"
    if s == "-" and r["kernel"] != "softmax":
      s = f"{r['scale']:.2f}"
    if "learned_scale_mean" in r:
      s = f"learned ({r['learned_scale_mean']:.2f})"
    diff, d = "-", r.get("paired_diff")
    if d is not None:
      lo, hi = (100 * x for x in d["ci95"])
      diff = f"{100 * d['mean']:+.1f} [{lo:+.1f}, {hi:+.1f}]"
    std = None if r["test_std"] is None else 100 * r["test_std"]
    acc = common.pm(100 * r["test_mean"], std)
    items.append(dict(r, s=s, n=len(r["seeds"]), acc=acc, diff=diff))
  lines = _say("temperature", steps=data["setup"]["steps"])
  return lines + _table("temperature_table", items)


def _gpu_suite(data: dict, docs: str) -> list[str]:
  """What benchmarks/gpu_suite.sh produced (docs/gpu_suite.json)."""
  stages = data["stages"]
  items = [dict(s, output=s.get("json", s.get("skipped", ""))) for s in stages]
  return _say("gpu_suite", **data) + _table("gpu_suite_table", items)


def _spectral_error(data: dict, docs: str) -> list[str]:
  """The Spectraformer grid's error at M = GRID_M per component and weights;
  slopes; best and worst cell."""
  s, regimes = data["settings"], ("presbn", "gauss")
  unbiased = ", ".join(s["unbiased_weights"])
  lines = _say(
    "grid_error", d=data, m=data["machine"], s=s, M=GRID_M, unbiased=unbiased
  )
  lines += _png(docs, "spectral_error.png", "grid error vs M")
  cells = {}
  for c in data["curves"]:
    cells.setdefault((c["component"], c["weights"]), {})[c["regime"]] = c
  at = lambda c, metric, key="mean": c[metric][key][c["M"].index(GRID_M)]
  mean = lambda c, metric: common.as_float(at(c, metric))

  def err(c, metric):
    if c is None or GRID_M not in c["M"]:
      return "–"
    sd = common.as_float(at(c, metric, "std"))
    return f"{mean(c, metric):.4f} ± {sd:.4f}"

  items = []
  for (component, weights), by in cells.items():
    p, slope = by.get("presbn"), None
    if p is not None:
      fit = p["M"], p["attention_error"]["mean"]
      slope = common.fit_slope(*fit, above=s["head_dim"])
    metrics = ("attention_error", "kernel_error")
    errors = [err(by.get(r), m) for r in regimes for m in metrics]
    items.append(dict(component=component, weights=weights, err=errors))
    items[-1]["slope"] = _slope(slope, "+.2f")
  lines += _table("grid_error_table", items)
  for regime in regimes:
    ranked = sorted(
      (mean(c, "attention_error"), f"{cell[0]}-{cell[1]}")
      for cell, by in cells.items()
      if (c := by.get(regime)) and GRID_M in c["M"]
    )
    if ranked := [r for r in ranked if not math.isnan(r[0])]:
      (lo, low), (hi, high) = ranked[0], ranked[-1]
      fields = dict(regime=regime, M=GRID_M, low=low, lo=lo, high=high, hi=hi)
      lines.append(T["grid_ranked"].format(**fields))
  return lines + [""]


# The reduced ListOps page (docs/RESULTS.md).
def import_runs(runs: str, docs: str) -> None:
  """Copies each finished run of benchmarks/reduced_listops.sh in `runs` to
  docs/results/<run>.json (with its val curve, median train steps/s and
  machine); an unfinished one's last step to <run>.progress.json."""
  for attention in REDUCED:
    name = f"reduced_listops_{attention}"
    saved = os.path.join(docs, "results", name)
    results, curve, speeds = common.read_run(
      workdir := os.path.join(runs, name)
    )
    if results is not None:
      record = dict(results, eval_curve=curve, machine=common.host())
      record["median_train_steps_per_sec"] = statistics.median(speeds)
      common.write(saved + ".json", json.dumps(record, indent=1))
    elif os.path.isdir(workdir) and not os.path.exists(saved + ".json"):
      with open(os.path.join(workdir, "metrics.jsonl")) as f:
        steps = [json.loads(line)["step"] for line in f]
      last = {"step": max([0] + steps), "eval": curve[-1] if curve else None}
      common.write(saved + ".progress.json", json.dumps(last))


def results_page(docs: str) -> str | None:
  """RESULTS.md from docs/results/reduced_listops_* (None: no such run)."""
  runs, unfinished, text = {}, {}, common.templates("results")
  for attention in REDUCED:
    path = os.path.join(docs, "results", f"reduced_listops_{attention}")
    if os.path.exists(path + ".json"):
      runs[attention] = common.load_json(path + ".json")[0]
    elif os.path.exists(path + ".progress.json"):
      unfinished[attention] = common.load_json(path + ".progress.json")[0]
  if not runs:
    return None
  items = [
    dict(r, name=name, last=pct(r["test_accuracy"]))
    | dict(best=pct(r["test_accuracy_best_eval"]))
    | dict(majority=pct(r["majority_class_accuracy"]))
    for name, r in runs.items()
  ]
  lines = common.format_table(text["runs_table"], items)
  first = next(iter(runs.values()))
  c, speed = first["config"], lambda a: runs[a]["median_train_steps_per_sec"]
  if "softmax" in runs and "macformer_exp" in runs:
    ratio = speed("macformer_exp") / speed("softmax")
    lines += [
      "",
      text["ratio"].format(ratio=ratio, max_len=c["data"]["max_len"]),
    ]
  if any(a.startswith("spectra_") for a in runs):
    lines += ["", text["spectra"]]
  steps = sorted({s for r in runs.values() for s, _ in r["eval_curve"]})
  curves = [dict(r["eval_curve"]) for r in runs.values()]
  acc = lambda a: "" if a is None else f"{100 * a:.1f}"
  rows = [[s] + [acc(curve.get(s)) for curve in curves] for s in steps]
  lines += ["", "Validation accuracy (%) during training:", ""]
  lines += table(["step", *runs], rows)
  for name, last in unfinished.items():
    ev = last["eval"]
    ev = f", val. accuracy {100 * ev[1]:.1f}% at step {ev[0]}" if ev else ""
    fields = dict(name=name, step=last["step"], eval=ev)
    steps = c["train"]["num_train_steps"]
    lines += ["", text["unfinished"].format(**fields, steps=steps)]
  pub, _ = common.load_json(SPECTRAFORMER)
  ours = {v: k for k, v in pub["ours"].items()}
  rows = []
  for name, values in pub["rows"].items():
    preset = ours.get(name, "")
    if preset in unfinished:
      preset += " (not finished)"
    elif preset and preset not in runs:
      preset += " (not run)"
    rows.append([name, preset] + [f"{v:g}" for v in values])
  lines += ["", text["published"].format(**pub), ""]
  lines += table(["published row", "our preset", *pub["columns"]], rows)
  lines += ["", text["machine"].format(**first["machine"]), ""]
  d, m, o = c["data"]["offline"], c["model"], c["optimizer"]
  return text["page"].format(c=c, d=d, m=m, o=o) + "\n\n" + "\n".join(lines)


# The page: its sections in the order of templates/report.md.
# The renderer of docs/<name>.<ext> is `_<name>`: (data, docs) -> lines, or
# why the file is unusable.
RENDER = {file: globals()["_" + file.split(".")[0]] for file in TITLES}


def section(docs: str, file: str) -> list[str]:
  """The section of docs/<file>: its title and body, or 'not run yet' with
  its command (nothing for an optional section)."""
  path = os.path.join(docs, file)
  data, why = common.load_json(path)
  if file.endswith(".md") and os.path.exists(path):
    with open(path) as f:
      data, why = f.read(), None
  lines = why or RENDER[file](data, docs)
  if isinstance(lines, str):
    if file not in COMMANDS:
      return []
    lines = _say("not_run", path=path, why=lines, command=COMMANDS[file])
  return [f"## {TITLES[file]}", "", *lines]


pareto_section = functools.partial(section, file="attention_pareto.json")
train_step_section = functools.partial(section, file="train_step_speed.json")
temperature_section = functools.partial(section, file="temperature.json")
gpu_suite_section = functools.partial(section, file="gpu_suite.json")


def build(docs: str) -> str:
  """The whole BENCHMARKS.md text."""
  lines = [T["page"], ""] + [l for f in TITLES for l in section(docs, f)]
  return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> str:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--docs", default="docs", help="inputs and outputs")
  parser.add_argument("--runs", help="import reduced_listops.sh's runs first")
  args = parser.parse_args(argv)
  if args.runs:
    import_runs(args.runs, args.docs)
  if page := results_page(args.docs):
    common.write(os.path.join(args.docs, "RESULTS.md"), page)
  text = build(args.docs)
  common.write(os.path.join(args.docs, "BENCHMARKS.md"), text)
  return text


if __name__ == "__main__":
  main()
