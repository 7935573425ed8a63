r"""Renders docs/BENCHMARKS.md from the files the benchmark studies wrote.

  python -m benchmarks.make_report      # docs/*.json, *.md -> BENCHMARKS.md

Each input is optional: a missing one gives a "not run yet" section naming
its command (the grid, temperature and GPU sections are left out instead).
It draws docs/attention_speed.png and docs/attention_pareto.png from their
JSON. Every number is read from those files, except an earlier independent
numpy measurement that the kernel-error section is checked against. The
prose and the fixed tables are in benchmarks/templates/report.md.
"""

import argparse
import collections
import functools
import math
import os

from benchmarks import common
from benchmarks.common import table

KERNEL_ERROR_CMD = "python -m benchmarks.kernel_error"
SPEED_CMD = "python -m benchmarks.attention_speed"
LRA_CMD = (
  "python -m benchmarks.lra_table 'runs/*/results.json' "
  "--progress 'docs/results/full_length_listops_*.json'"
)
TRAIN_STEP_CMD = (
  "python -m benchmarks.train_step_speed "
  "--baseline=<old checkout> --profile=/tmp/profile"
)
# An earlier independent numpy measurement (not a paper number):
# exp kernel, D = 128, L = 1024, d = 32, PreSBN, non-causal, sampled degrees.
HARNESS_B_EXP_D128 = 0.026
KERNELS = ("exp", "trigh", "inverse", "log", "sqrt")
BASELINES = {"performer": "Performer FAVOR+", "rfa": "RFA (Fourier)"}
REPORT_DIMS = (128, 1024)
GRID_M, GRID_SPEED_L = 128, 8192
LEVELS = (0.1, 0.07, 0.05, 0.03, 0.02, 0.015, 0.01, 0.007, 0.005, 0.003)
T = common.templates("report")


def _say(key: str, **fields) -> list[str]:
  """The lines of a template section, then a blank line."""
  return T[key].format(**fields).splitlines() + [""]


def _slope(x: float | None, spec: str) -> str:
  return "n/a" if x is None else format(x, spec)


def _maybe(d: dict) -> collections.defaultdict:
  """`d` where a missing key reads as None (for `str.format`)."""
  return collections.defaultdict(lambda: None, d)


# ----------------------------------------------------------------------------
# Kernel error (benchmarks.kernel_error).
# ----------------------------------------------------------------------------
def _row(c: dict, name: str, label: str, metrics, slopes) -> list[str]:
  """name, label, the fitted slopes, then mean ± std per D and metric."""
  at = lambda m, i: common.pm(c[m]["mean"][i], c[m]["std"][i])
  return (
    [name, label]
    + [_slope(c[m]["slope"], "+.3f") for m in slopes]
    + [
      at(m, c["D"].index(d)) if d in c["D"] else "–"
      for d in REPORT_DIMS
      for m in metrics
    ]
  )


def _kernel_error(data: dict, docs: str) -> list[str]:
  """RMF's kernel and attention error vs D, with and without PreSBN;
  the variance of one kernel value."""
  s, both = data["settings"], ("kernel_error", "attention_error")
  keys = ("method", "kernel", "allocation", "projection", "inputs")
  index = {tuple(map(c.get, keys)): c for c in reversed(data["curves"])}
  curve = lambda m="rmf", k="exp", a=None, p=None, i="presbn": index.get(
    (m, k, a, p, i)
  )
  lines = _say(
    "kernel_error",
    cmd=common.shown(data.get("command", KERNEL_ERROR_CMD)),
    date=data.get("date", "?"),
    total=data.get("runtime_s", {}).get("total", "?"),
    machine=common.machine_line(data.get("machine", {})),
    s=s,
    dims=", ".join(str(d) for d in s["D"]),
  )
  if os.path.exists(os.path.join(docs, "kernel_error.png")):
    lines += ["![kernel and attention error vs D](kernel_error.png)", ""]
  tags = {"stratified/chained": " (default)", "sampled/independent": " (paper)"}
  rows = [
    _row(c, f"RMF {k}", f"{a}/{p}{tags.get(f'{a}/{p}', '')}", both, both)
    for k in KERNELS
    for a in ("stratified", "sampled")
    for p in ("chained", "independent")
    if (c := curve(k=k, a=a, p=p))
  ] + [
    _row(c, name, "softmax = exp kernel", both, both)
    for m, name in BASELINES.items()
    if (c := curve(m=m))
  ]
  header = ["method", "allocation/projection", "slope K", "slope attn"]
  header += [f"{m} D={d}" for d in REPORT_DIMS for m in ("K err", "attn err")]
  lines += ["### With PreSBN", ""] + table(header, rows) + [""]
  ref = curve(a="sampled", p="independent")
  if ref is not None and 128 in ref["D"]:
    value = common.as_float(ref["attention_error"]["mean"][ref["D"].index(128)])
    ratio, ref = value / HARNESS_B_EXP_D128, HARNESS_B_EXP_D128
    lines += _say("kernel_check", value=common.fmt(value), ref=ref, ratio=ratio)
  outside = data.get("fraction_outside_radius", {}).get("raw", {})
  raw = ("attention_error", "attention_error_truncated")
  bad = lambda c: sum(
    v.get("nonfinite", 0) for v in c.values() if isinstance(v, dict)
  )
  # (name, kernel, default fraction outside the radius, curve)
  raws = [
    (k, k, math.nan, curve(k=k, a="sampled", p="independent", i="raw"))
    for k in KERNELS
  ]
  raws += [
    (f"{m} (softmax)", "exp", 0.0, curve(m=m, i="raw")) for m in BASELINES
  ]
  rows = [
    _row(c, name, common.fmt(outside.get(k, default)), raw, raw[1:])
    + [str(bad(c))]
    for name, k, default, c in raws
    if c
  ]
  header = ["kernel", "pairs with abs(t) ≥ radius", "slope (vs f≤20)"]
  header += [
    f"attn err D={d} {t}" for d in REPORT_DIMS for t in ("vs f", "vs f≤20")
  ]
  header += [f"non-finite values (of {4 * len(s['D']) * s['seeds']})"]
  lines += _say("kernel_raw", s=s) + table(header, rows) + [""]
  var = data.get("variance")
  if var:
    items = [dict(r, t=common.fmt(r["mean_abs_t"], 2)) for r in var["rows"]]
    lines += _say("variance", **var)
    lines += common.format_table(T["variance_table"], items) + [""]
  return lines


# ----------------------------------------------------------------------------
# Attention speed (benchmarks.attention_speed), also the Spectraformer grid's.
# ----------------------------------------------------------------------------
def _variants(rows: list[dict]) -> list[str]:
  """The timed variants of the rows, in their order of appearance."""
  timed = lambda v: isinstance(v, dict) and "median_ms" in v
  return list(dict.fromkeys(k for r in rows for k, v in r.items() if timed(v)))


def _by_length(rows, variants, key, div=1, oom="–", unit="", ratios=()):
  """A table of `key` per length (rows) and variant (columns), then the
  speed-ups of (variant, base) `ratios` in median time."""
  cell = lambda r, v: (
    f"{r[v][key] / div:.1f}"
    if r.get(v, {}).get(key) is not None
    else (oom if v in r.get("oom", []) else "–")
  )
  gain = lambda r, v, b: (
    f"{r[b]['median_ms'] / r[v]['median_ms']:.2f}×"
    if v in r and b in r
    else "–"
  )
  header = ["L"] + [v + unit for v in variants]
  header += [f"{v} speed-up vs {b}" for v, b in ratios]
  body = [
    [str(r["length"])]
    + [cell(r, v) for v in variants]
    + [gain(r, v, b) for v, b in ratios]
    for r in rows
  ]
  return table(header, body) + [""]


def crossover(
  rows: list[dict], fast: str, slow: str
) -> tuple[float | None, str]:
  """Where `fast` overtakes `slow`, from the measured lengths.

  Returns:
    (L, sentence): L is the log-log interpolated length of the last change
    from slower to faster when `fast` stays faster after it (None if there
    is no such change); the sentence lists where `fast` is faster.
  """
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


def speed_plot(data: dict, path: str) -> None:
  """fwd+bwd time vs L per variant, log-log, crossover lines."""
  plt = common.pyplot()
  rows = sorted(data["rows"], key=lambda r: r["length"])
  variants = _variants(rows)
  fig, ax = plt.subplots(figsize=(7.5, 5))
  for v in variants:
    pts = [(r["length"], r[v]["median_ms"]) for r in rows if v in r]
    lw = 2.5 if v == "rmfa" else 1.5
    ax.plot(*zip(*pts, strict=True), marker="o", label=v, lw=lw)
  for slow, color in (("softmax", "C3"), ("performer", "C1")):
    length = None
    if "rmfa" in variants and slow in variants:
      length = crossover(rows, "rmfa", slow)[0]
    if length is not None:
      ax.axvline(length, color=color, ls=":", lw=1)
      label = f" rmfa < {slow}\n L≈{length:.0f}"
      top = ax.get_ylim()[1]
      ax.text(length, top, label, va="top", fontsize=8, color=color)
  ax.set_xscale("log", base=2)
  ax.set(yscale="log", xlabel="sequence length L")
  ax.set_ylabel("fwd+bwd time (ms, median)")
  sh = _maybe(data.get("shapes", {}))
  ax.set_title(
    f"Attention core speed on {data.get('device', '?')} (B={sh['batch']}, "
    f"H={sh['heads']}, Dh={sh['head_dim']}, M={sh['num_features']})",
    fontsize=10,
  )
  ax.grid(True, which="both", alpha=0.3)
  ax.legend()
  common.savefig(fig, path)


def _speed(data: dict, docs: str) -> list[str] | str:
  """fwd+bwd (and forward) time and memory vs L per variant; crossovers."""
  if not data.get("rows"):
    return "without rows"
  rows = sorted(data["rows"], key=lambda r: r["length"])
  variants = _variants(rows)
  cmd = common.shown(data.get("command", SPEED_CMD))
  machine, measure = common.machine_line(data), data.get("measure", "?")
  lines = _say("speed", cmd=cmd, machine=machine, measure=measure)
  # Speed-ups of every variant against softmax, and of rmfa vs Performer.
  ratios = [(v, "softmax") for v in variants if v != "softmax"]
  ratios = ratios if "softmax" in variants else []
  if "rmfa" in variants:
    ratios += [("rmfa", b) for b in ("performer", "performer_peer")]
  ratios = [(v, b) for v, b in ratios if b in variants]
  lines += _by_length(rows, variants, "median_ms", unit=" ms", ratios=ratios)
  has = lambda key: any(key in r.get(v, {}) for r in rows for v in variants)
  if has("fwd_median_ms"):
    lines += ["Forward only (ms, median):", ""]
    lines += _by_length(rows, variants, "fwd_median_ms")
  if has("fwd_bwd_temp_bytes"):
    lines += _say("speed_memory")
    lines += _by_length(rows, variants, "fwd_bwd_temp_bytes", 2**20, "OOM")
  if any("fraction_of_matmul" in r.get("rmfa", {}) for r in rows):
    share = [
      f"L={r['length']}: {100 * r['rmfa']['fraction_of_matmul']:.0f}%"
      for r in rows
      if "rmfa" in r
    ]
    lines += _say("speed_share", share=", ".join(share))
  if "rmfa" in variants:
    slow = [s for s in ("softmax", "performer") if s in variants]
    lines += [f"* {crossover(rows, 'rmfa', s)[1]}." for s in slow] + [""]
  speed_plot(data, os.path.join(docs, "attention_speed.png"))
  return lines + ["![attention time vs L](attention_speed.png)", ""]


def _grid_speed(data: dict, docs: str) -> list[str] | str:
  """The Spectraformer grid's fwd+bwd time vs L; extremes at one L."""
  if not data.get("rows"):
    return "without rows"
  rows = sorted(data["rows"], key=lambda r: r["length"])
  variants, sh = _variants(rows), _maybe(data.get("shapes", {}))
  cmd = common.shown(data.get("command", "?"))
  lines = _say("grid_speed", cmd=cmd, d=_maybe(data), sh=sh)
  lines += _by_length(rows, variants, "median_ms")
  at = next((r for r in rows if r["length"] == GRID_SPEED_L), {})
  timed = sorted(
    (at[v]["median_ms"], v)
    for v in variants
    if v.startswith("spectra_") and v in at
  )
  if timed:
    bases = ("rmfa", "performer", "softmax")
    body = [
      [v, f"{ms:.1f}"]
      + [f"{ms / at[b]['median_ms']:.2f}×" if b in at else "–" for b in bases]
      for ms, v in (timed[0], timed[-1])
    ]
    body += [
      [b, f"{at[b]['median_ms']:.1f}", "", "", ""] for b in bases if b in at
    ]
    header = ["variant", "fwd+bwd ms"] + [f"time / {b}" for b in bases]
    lines += [f"At L = {GRID_SPEED_L} (one run):", ""] + table(header, body)
    extremes = f"Fastest grid cell: {timed[0][1]}; slowest: {timed[-1][1]}."
    lines += ["", extremes, ""]
  return lines


# ----------------------------------------------------------------------------
# Time against error (benchmarks.attention_pareto).
# ----------------------------------------------------------------------------
def time_to_reach(points, level) -> float | None:
  """Least time at which a method's curve reaches error <= level.

  points: [(time, error)] of one method (one per M). Linear interpolation in
  log-log between consecutive points of the lower-left envelope (the Pareto
  front); None if no point reaches the level.
  """
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


def pareto_plot(data: dict, path: str) -> None:
  """Error vs fwd+bwd time, a curve per method, a panel per (scale, L)."""
  plt, scales = common.pyplot(), data["scales"]
  lengths = sorted({r["length"] for r in data["results"]})
  size = (4.5 * len(lengths), 3.8 * len(scales))
  fig, axes = plt.subplots(
    len(scales), len(lengths), squeeze=False, figsize=size
  )
  for i, s in enumerate(scales):
    for j, length in enumerate(lengths):
      ax = axes[i][j]
      for n, pts in _curves(data, length, s).items():
        style = "-" if n.startswith("rmfa") else "--"
        lw = 2.2 if n in ("rmfa", "performer_peer") else 1
        xy = zip(*sorted(pts), strict=True)
        ax.plot(*xy, style, marker="o", ms=3, label=n, lw=lw)
      ax.set(xscale="log", yscale="log", xlabel="fwd+bwd ms")
      ax.set_ylabel("relative error")
      ax.set_title(f"L = {length}, s = {s:.3g}", fontsize=9)
      ax.grid(True, which="both", alpha=0.3)
  axes[0][-1].legend(fontsize=6)
  common.savefig(fig, path)


def _pareto(data: dict, docs: str) -> list[str]:
  """Time to reach each error level per method; equal-M ratios."""
  res, png = data["results"], "attention_pareto.png"
  lengths = sorted({r["length"] for r in res})
  pareto_plot(data, os.path.join(docs, png))
  cmd, sh = common.shown(data["command"]), data["shapes"]
  lines = _say("pareto", cmd=cmd, d=data, sh=sh, png=png)
  peer = (
    "performer_peer"
    if any(r["method"] == "performer_peer" for r in res)
    else "favor"
  )
  for length in lengths:
    for s in data["scales"]:
      reach = {
        n: [time_to_reach(p, e) for e in LEVELS]
        for n, p in _curves(data, length, s).items()
      }
      lines += _say("pareto_level", length=length, s=s) + table(
        ["method"] + [f"{e:g}" for e in LEVELS],
        [
          [n] + ["-" if t is None else f"{t:.1f}" for t in times]
          for n, times in reach.items()
        ],
      )
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
    dict(L=length, M=m, a=a, p=p, ratio=p["ms"] / a["ms"])
    | dict(a_mib=a["temp_bytes"] / 2**20, p_mib=p["temp_bytes"] / 2**20)
    | dict(share=100 * a["fraction_of_matmul"])
    for length in lengths
    for m in sorted({r["num_features"] for r in res})
    for a, p in [(by.get(("rmfa", length, m)), by.get((peer, length, m)))]
    if a and p
  ]
  lines += _say("pareto_equal", peer=peer)
  return lines + common.format_table(T["pareto_table"], items, peer=peer) + [""]


# ----------------------------------------------------------------------------
# Training step (benchmarks.train_step_speed).
# ----------------------------------------------------------------------------
def _train_step(data: dict, docs: str) -> list[str] | str:
  """Before/after table per attention, first steps, the profiles' top ops."""
  results = data.get("results") if isinstance(data, dict) else None
  base = bool(isinstance(data, dict) and data.get("baseline"))
  label = {"baseline": "before", "this": "after" if base else "this"}
  rows = [
    (r, label[k], r[k] if "this" in r else r)
    for r in results or []
    if isinstance(r, dict)
    for k in (("baseline", "this") if "this" in r else ("this",))
  ]
  ok = lambda row: isinstance(row, dict) and "matmul_share" in row
  if not (rows and len(rows) >= len(results) and all(ok(x) for *_, x in rows)):
    return (
      "in an older format: no XLA cost analysis, compile time or memory "
      "per attention"
    )
  lines = _say(
    "train_step",
    cmd=common.shown(data["command"]),
    commit=data.get("commit", "?"),
    baseline=T["train_step_baseline"].format(**data) if base else "",
    d=data,
    cpus=data.get("host", {}).get("cpus"),
    devices=data.get("num_devices", 1),
    rule=" " + T["train_step_rule"] if base else "",
  )
  items = [
    dict(row, label=lab, share=100 * row["matmul_share"])
    | dict(temp=common.fmt(row.get("xla_temp_gib")))
    | dict(gain=f"{r['speedup']:.2f}x" if lab == "after" else "–")
    for r, lab, row in rows
  ]
  lines += common.format_table(T["train_step_table"], items) + [""]
  first = data.get("first_step", {})
  if first:
    items = [
      dict(f, attention=a, label=label[k], cached="yes" if f["cache"] else "no")
      for a, by in first.items()
      for k, f in by.items()
    ]
    lines += _say("first_step")
    lines += common.format_table(T["first_step_table"], items) + [""]
  for _, lab, row in rows:
    prof = row.get("profile")
    if prof:
      name, ms = row["attention"], prof["ops_ms"]
      lines += _say("profile", attention=name, label=lab, ms=ms)
      items = [dict(op, pct=100 * op["share"]) for op in prof["top_ops"]]
      lines += common.format_table(T["profile_table"], items) + [""]
  return lines


# ----------------------------------------------------------------------------
# LRA table, temperature, GPU suite, Spectraformer grid error.
# ----------------------------------------------------------------------------
def _lra(text: str, docs: str) -> list[str]:
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
    d = r.get("paired_diff")
    diff = "-"
    if d is not None:
      lo, hi = (100 * x for x in d["ci95"])
      diff = f"{100 * d['mean']:+.1f} [{lo:+.1f}, {hi:+.1f}]"
    std = None if r["test_std"] is None else 100 * r["test_std"]
    acc = common.pm(100 * r["test_mean"], std)
    items.append(dict(r, s=s, n=len(r["seeds"]), acc=acc, diff=diff))
  lines = _say("temperature", steps=data["setup"]["steps"])
  return lines + common.format_table(T["temperature_table"], items) + [""]


def _gpu_suite(data: dict, docs: str) -> list[str]:
  """What benchmarks/gpu_suite.sh produced (docs/gpu_suite.json)."""
  items = [
    dict(st, output=st.get("json", st.get("skipped", "")))
    for st in data["stages"]
  ]
  lines = _say("gpu_suite", **data)
  return lines + common.format_table(T["gpu_suite_table"], items) + [""]


def _grid_error(data: dict, docs: str) -> list[str]:
  """The Spectraformer grid's error at M = GRID_M per component and
  weights; slopes; best and worst cell."""
  s = data["settings"]
  lines = _say(
    "grid_error",
    cmd=common.shown(data["command"]),
    d=data,
    m=_maybe(data.get("machine", {})),
    s=s,
    M=GRID_M,
    unbiased=", ".join(s["unbiased_weights"]),
  )
  if os.path.exists(os.path.join(docs, "spectral_error.png")):
    lines += ["![grid error vs M](spectral_error.png)", ""]
  cells = {}
  for c in data["curves"]:
    cells.setdefault((c["component"], c["weights"]), {})[c["regime"]] = c
  at = lambda c, key, metric: c[metric][key][c["M"].index(GRID_M)]
  mean = lambda c, metric: common.as_float(at(c, "mean", metric))

  def err(c, metric):
    if c is None or GRID_M not in c["M"]:
      return "–"
    if math.isnan(mean(c, metric)):
      return str(at(c, "mean", metric))
    sd = common.as_float(at(c, "std", metric))
    return f"{mean(c, metric):.4f} ± {sd:.4f}"

  rows = []
  for (component, weights), regimes in cells.items():
    p, g = regimes.get("presbn"), regimes.get("gauss")
    slope = None
    if p is not None:
      fit = p["M"], p["attention_error"]["mean"]
      slope = common.fit_slope(*fit, above=s["head_dim"])
    rows.append(
      [component, weights]
      + [err(c, k) for c in (p, g) for k in ("attention_error", "kernel_error")]
      + [_slope(slope, "+.2f")]
    )
  header = ["component", "weights"] + [
    f"{m} err. {r}"
    for r in ("presbn", "gauss")
    for m in ("attention", "kernel")
  ]
  lines += table(header + ["slope"], rows) + [""]
  for regime in ("presbn", "gauss"):
    ranked = sorted(
      (mean(c, "attention_error"), f"{cell[0]}-{cell[1]}")
      for cell, regimes in cells.items()
      if (c := regimes.get(regime)) and GRID_M in c["M"]
    )
    ranked = [r for r in ranked if not math.isnan(r[0])]
    if ranked:
      (lo, low), (hi, high) = ranked[0], ranked[-1]
      lines.append(
        f"* {regime}, M = {GRID_M}: lowest attention error {low} ({lo:.4f}), "
        f"highest {high} ({hi:.4f})."
      )
  return lines + [""]


# ----------------------------------------------------------------------------
# The page: its sections in order.
# ----------------------------------------------------------------------------
# The sections in order: input file in docs/ -> (command, None for an
# optional section left out without its input; renderer(data, docs) ->
# lines, or why the input is unusable). Titles: templates/report.md.
SECTIONS = {
  "kernel_error.json": (KERNEL_ERROR_CMD, _kernel_error),
  "attention_speed.json": (SPEED_CMD, _speed),
  "attention_pareto.json": (None, _pareto),
  "train_step_speed.json": (TRAIN_STEP_CMD, _train_step),
  "lra_table.md": (LRA_CMD, _lra),
  "spectral_error.json": (None, _grid_error),
  "attention_speed_spectral.json": (None, _grid_speed),
  "temperature.json": (None, _temperature),
  "gpu_suite.json": (None, _gpu_suite),
}
TITLES = dict(line.split(": ", 1) for line in T["titles"].splitlines())


def section(docs: str, file: str) -> list[str]:
  """The section of docs/<file> as lines: its title and body, or 'not run
  yet' with its command (nothing for an optional section)."""
  (command, render), title = SECTIONS[file], TITLES[file]
  path = os.path.join(docs, file)
  data, why = common.load_json(path)
  if file.endswith(".md") and os.path.exists(path):
    with open(path) as f:
      data, why = f.read(), None
  lines = why or render(data, docs)
  if isinstance(lines, str):
    if command is None:
      return []
    lines = _say("not_run", path=path, why=lines, command=command)
  return [f"## {title}", "", *lines]


pareto_section = functools.partial(section, file="attention_pareto.json")
train_step_section = functools.partial(section, file="train_step_speed.json")
temperature_section = functools.partial(section, file="temperature.json")
gpu_suite_section = functools.partial(section, file="gpu_suite.json")


def build(docs: str) -> str:
  """The whole BENCHMARKS.md text."""
  lines = [T["page"], ""]
  for name in SECTIONS:
    lines += section(docs, name)
  return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> str:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--docs", default="docs", help="inputs and output")
  parser.add_argument("--out", help="default <docs>/BENCHMARKS.md; '-': stdout")
  args = parser.parse_args(argv)
  text = build(args.docs)
  common.write(args.out or os.path.join(args.docs, "BENCHMARKS.md"), text)
  return text


if __name__ == "__main__":
  main()
