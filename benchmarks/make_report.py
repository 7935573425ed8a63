r"""Renders docs/BENCHMARKS.md from the files the benchmark studies wrote.

  python -m benchmarks.make_report      # docs/*.json, *.md -> BENCHMARKS.md

Each input is optional: a missing one gives a "not run yet" section naming
its command (the grid, temperature and GPU sections are left out instead).
It draws docs/attention_speed.png and docs/attention_pareto.png from their
JSON. Every number is read from those files, except an earlier independent
numpy measurement that the kernel-error section is checked against.
"""

import argparse
import math
import os

from benchmarks import common
from benchmarks.common import as_float
from benchmarks.common import fmt
from benchmarks.common import pm
from benchmarks.common import table

KERNEL_ERROR_CMD = "python -m benchmarks.kernel_error"
SPEED_CMD = "python -m benchmarks.attention_speed"
LRA_CMD = (
  "python -m benchmarks.lra_table 'runs/*/results.json' "
  "--progress 'docs/results/full_length_listops_*.json'"
)
TEMPERATURE_CMD = (
  "python -m benchmarks.temperature_study run && "
  "python -m benchmarks.temperature_study report"
)
GPU_SUITE_CMD = "bash benchmarks/gpu_suite.sh   # on a machine with one GPU"
REPORT_CMD = "python -m benchmarks.make_report"
TRAIN_STEP_CMD = (
  "python -m benchmarks.train_step_speed "
  "--baseline=<old checkout> --profile=/tmp/profile"
)
# An earlier independent numpy measurement (not a paper number):
# exp kernel, D = 128, L = 1024, d = 32, PreSBN, non-causal, sampled degrees.
HARNESS_B_EXP_D128 = 0.026
KERNELS = ("exp", "trigh", "inverse", "log", "sqrt")
REPORT_DIMS = (128, 1024)
GRID_M, GRID_SPEED_L = 128, 8192
LEVELS = (0.1, 0.07, 0.05, 0.03, 0.02, 0.015, 0.01, 0.007, 0.005, 0.003)


def _machine(m: dict) -> str:
  return ", ".join(
    [str(m.get("device", "?"))]
    + [
      f"{label} {m[key]}"
      for key, label in (
        ("host", "host"),
        ("cpu_count", "cores"),
        ("jax", "jax"),
      )
      if m.get(key) is not None
    ]
  )


def _not_run(command: str, path: str, why: str) -> list[str]:
  return [
    f"Not run yet (`{path}` is {why}). Produce it with:",
    "",
    f"    {command}",
    "",
  ]


def _input(docs: str, name: str, title: str, command: str | None):
  """(data, lines): the section's title, plus 'not run yet' if no data
  (no lines at all when `command` is None: the section is optional)."""
  path = os.path.join(docs, name)
  data, why = common.load_json(path)
  if data is None:
    return None, (
      []
      if command is None
      else [f"## {title}", ""] + _not_run(command, path, why)
    )
  return data, [f"## {title}", ""]


# ----------------------------------------------------------------------------
# Kernel error (benchmarks.kernel_error).
# ----------------------------------------------------------------------------
def _curve(
  curves,
  method="rmf",
  kernel="exp",
  allocation=None,
  projection=None,
  inputs="presbn",
) -> dict | None:
  key = (method, kernel, allocation, projection, inputs)
  return next(
    (
      c
      for c in curves
      if tuple(
        c.get(k)
        for k in ("method", "kernel", "allocation", "projection", "inputs")
      )
      == key
    ),
    None,
  )


def _row(curve: dict, name: str, label: str, metrics, slope_metrics):
  slopes = [curve[m]["slope"] for m in slope_metrics]
  return (
    [name, label]
    + ["n/a" if x is None else f"{x:+.3f}" for x in slopes]
    + [
      pm(
        curve[m]["mean"][curve["D"].index(d)],
        curve[m]["std"][curve["D"].index(d)],
      )
      if d in curve["D"]
      else "–"
      for d in REPORT_DIMS
      for m in metrics
    ]
  )


def kernel_error_section(docs: str, rel_png: str) -> list[str]:
  data, lines = _input(
    docs,
    "kernel_error.json",
    "Approximation error of random Maclaurin features",
    KERNEL_ERROR_CMD,
  )
  if data is None:
    return lines
  s, curves = data["settings"], data["curves"]
  lines += [
    f"Command: `{common.shown(data.get('command', KERNEL_ERROR_CMD))}` "
    f"({data.get('date', '?')}, {data.get('runtime_s', {}).get('total', '?')}"
    f" s). Machine: {_machine(data.get('machine', {}))}.",
    "",
    f"Relative Frobenius error of the kernel matrix "
    f"({s['kernel_length']}×{s['kernel_length']}, K_ij = f(q_i·k_j)) and "
    f"of the non-causal attention output (L = {s['length']}, "
    f"d = {s['head_dim']}, v ~ N(0, 1)) against exact kernelized "
    f"attention, mean ± std over {s['seeds']} seeds, D = "
    f"{', '.join(str(d) for d in s['D'])}. Inputs: "
    f"{s['inputs']['presbn']} (Macformer) or {s['inputs']['raw']} (the "
    "authors' no-ppSBN ablation). Slopes are least-squares fits of "
    "log(mean error) vs log(D) over all D; Monte Carlo error falls as "
    "D^-1/2, i.e. slope -0.5.",
    "",
  ]
  if os.path.exists(os.path.join(docs, os.path.basename(rel_png))):
    lines += [f"![kernel and attention error vs D]({rel_png})", ""]
  both, raw = (
    ("kernel_error", "attention_error"),
    ("attention_error", "attention_error_truncated"),
  )
  tags = {
    ("stratified", "chained"): " (default)",
    ("sampled", "independent"): " (paper)",
  }
  rows = [
    _row(c, f"RMF {kernel}", f"{a}/{p}{tags.get((a, p), '')}", both, both)
    for kernel in KERNELS
    for a in ("stratified", "sampled")
    for p in ("chained", "independent")
    for c in [_curve(curves, kernel=kernel, allocation=a, projection=p)]
    if c is not None
  ]
  names = {"performer": "Performer FAVOR+", "rfa": "RFA (Fourier)"}
  rows += [
    _row(c, name, "softmax = exp kernel", both, both)
    for method, name in names.items()
    for c in [_curve(curves, method=method)]
    if c is not None
  ]
  header = ["method", "allocation/projection", "slope K", "slope attn"] + [
    f"{m} D={d}" for d in REPORT_DIMS for m in ("K err", "attn err")
  ]
  lines += ["### With PreSBN", ""] + table(header, rows) + [""]
  ref = _curve(
    curves, kernel="exp", allocation="sampled", projection="independent"
  )
  if ref is not None and 128 in ref["D"]:
    value = as_float(ref["attention_error"]["mean"][ref["D"].index(128)])
    lines += [
      "Check against an earlier independent numpy measurement "
      "(exp, D = 128, L = 1024, d = 32, PreSBN, non-causal, sampled "
      f"degrees): {fmt(value)} here vs {HARNESS_B_EXP_D128} there "
      f"(ratio {value / HARNESS_B_EXP_D128:.2f}; that measurement "
      "did not record its v distribution, on which the relative "
      "attention error depends).",
      "",
    ]
  outside = data.get("fraction_outside_radius", {}).get("raw", {})
  nonfinite = lambda c: str(
    sum(
      v["nonfinite"]
      for v in c.values()
      if isinstance(v, dict) and "nonfinite" in v
    )
  )
  raw_curves = [
    (
      k,
      k,
      math.nan,
      _curve(
        curves,
        kernel=k,
        allocation="sampled",
        projection="independent",
        inputs="raw",
      ),
    )
    for k in KERNELS
  ] + [
    (f"{m} (softmax)", "exp", 0.0, _curve(curves, method=m, inputs="raw"))
    for m in names
  ]
  rows = [
    _row(c, name, fmt(outside.get(k, default)), raw, raw[1:]) + [nonfinite(c)]
    for name, k, default, c in raw_curves
    if c
  ]
  header = (
    ["kernel", "pairs with abs(t) ≥ radius", "slope (vs f≤20)"]
    + [f"attn err D={d} {t}" for d in REPORT_DIMS for t in ("vs f", "vs f≤20")]
    + [f"non-finite values (of {4 * len(s['D']) * s['seeds']})"]
  )
  lines += (
    [
      "### Without PreSBN (paper's sampled/independent map)",
      "",
      f"Raw inputs {s['inputs']['raw']}. Where |q·k| reaches the radius of "
      "convergence (1 for inverse, log, sqrt) f itself is undefined or not "
      "its series, so the error is also given against f truncated at degree "
      f"{s['max_degree']} (what RMF estimates without bias); nan/inf are "
      "reported as such.",
      "",
    ]
    + table(header, rows)
    + [""]
  )
  var = data.get("variance")
  if var:
    keys = (
      "empirical_sampled_independent",
      "formula_sampled_independent",
      "empirical_sampled_chained",
      "empirical_stratified_independent",
      "formula_stratified_independent",
      "empirical_stratified_chained",
      "formula_stratified_chained",
    )
    ratios = (
      "chained_over_independent_sampled",
      "chained_over_independent_stratified",
      "stratified_over_sampled_chained",
    )
    lines += (
      [
        f"### Variance of φ(x)·φ(y) at D = {var['num_features']}, "
        f"d = {var['head_dim']}",
        "",
        f"Empirical variance over {var['num_draws']} independent draws, mean "
        f"over {var['num_pairs']} pairs per pair set ({var['inputs']}), "
        "beside the exact formulas. The chained layout (features share the "
        "factors of a chain) costs the ratio in the chained ÷ independent "
        "columns; its width is ≈ D instead of ≈ 2D.",
        "",
      ]
      + table(
        [
          "kernel",
          "pairs",
          "mean abs t",
          "sampled/indep.",
          "formula (METHOD.md §2.2)",
          "sampled/chained",
          "stratified/indep.",
          "formula",
          "stratified/chained",
          "formula",
          "chained ÷ indep. (sampled)",
          "chained ÷ indep. (stratified)",
          "stratified ÷ sampled (chained)",
        ],
        [
          [r["kernel"], r["pairs"], fmt(r["mean_abs_t"], 2)]
          + [f"{r[k]:.2e}" for k in keys]
          + [f"{r[k]:.3f}" for k in ratios]
          for r in var["rows"]
        ],
      )
      + [""]
    )
  return lines


# ----------------------------------------------------------------------------
# Attention speed (benchmarks.attention_speed), also the Spectraformer grid's.
# ----------------------------------------------------------------------------
def _variants(rows: list[dict]) -> list[str]:
  return list(
    dict.fromkeys(
      k
      for row in rows
      for k, v in row.items()
      if isinstance(v, dict) and "median_ms" in v
    )
  )


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
  if not slower:
    return length, (
      f"{fast} is faster than {slow} at every measured length "
      f"(L = {faster}); the crossover lies below L = "
      f"{pts[0][0]}"
    )
  if not faster:
    return length, (
      f"{fast} is not faster than {slow} at any measured length (L = {slower})"
    )
  text = f"{fast} is faster than {slow} at L = {faster} and not at L = {slower}"
  if length is not None:
    text += f"; it overtakes {slow} at L ≈ {length:.0f} (log-log interpolation)"
  return length, text


def speed_plot(data: dict, path: str) -> None:
  """fwd+bwd time vs L per variant, log-log, crossover lines."""
  plt = common.pyplot()
  rows = sorted(data["rows"], key=lambda r: r["length"])
  variants = _variants(rows)
  fig, ax = plt.subplots(figsize=(7.5, 5))
  for name in variants:
    pts = [(r["length"], r[name]["median_ms"]) for r in rows if name in r]
    ax.plot(
      *zip(*pts, strict=True),
      marker="o",
      label=name,
      lw=2.5 if name == "rmfa" else 1.5,
    )
  for slow, color in (("softmax", "C3"), ("performer", "C1")):
    length = (
      crossover(rows, "rmfa", slow)[0]
      if "rmfa" in variants and slow in variants
      else None
    )
    if length is not None:
      ax.axvline(length, color=color, ls=":", lw=1)
      ax.text(
        length,
        ax.get_ylim()[1],
        f" rmfa < {slow}\n L≈{length:.0f}",
        va="top",
        fontsize=8,
        color=color,
      )
  ax.set_xscale("log", base=2)
  ax.set(
    yscale="log", xlabel="sequence length L", ylabel="fwd+bwd time (ms, median)"
  )
  shapes = data.get("shapes", {})
  ax.set_title(
    f"Attention core speed on {data.get('device', '?')} "
    f"(B={shapes.get('batch')}, H={shapes.get('heads')}, "
    f"Dh={shapes.get('head_dim')}, M={shapes.get('num_features')})",
    fontsize=10,
  )
  ax.grid(True, which="both", alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _by_length(rows, variants, cell) -> list[str]:
  return table(
    ["L"] + variants,
    [
      [str(r["length"])] + [cell(r, v) if v in r else "–" for v in variants]
      for r in rows
    ],
  ) + [""]


def speed_section(docs: str, png_name: str, draw: bool = True) -> list[str]:
  data, lines = _input(
    docs,
    "attention_speed.json",
    "Attention speed vs sequence length",
    SPEED_CMD,
  )
  if data is not None and not data.get("rows"):
    data, lines = (
      None,
      lines
      + _not_run(
        SPEED_CMD, os.path.join(docs, "attention_speed.json"), "without rows"
      ),
    )
  if data is None:
    return lines
  rows = sorted(data["rows"], key=lambda r: r["length"])
  variants = _variants(rows)
  lines += [
    f"Command: `{common.shown(data.get('command', SPEED_CMD))}`. "
    f"Machine: {_machine(data)}. Measure: "
    f"{data.get('measure', '?')}.",
    "",
  ]
  # Speed-ups of every variant against softmax, and of rmfa vs Performer.
  ratios = [
    (v, "softmax") for v in variants if "softmax" in variants and v != "softmax"
  ]
  ratios += [
    ("rmfa", base)
    for base in ("performer", "performer_peer")
    if "rmfa" in variants and base in variants
  ]
  lines += table(
    ["L"]
    + [f"{v} ms" for v in variants]
    + [f"{v} speed-up vs {base}" for v, base in ratios],
    [
      [str(r["length"])]
      + [f"{r[v]['median_ms']:.1f}" if v in r else "–" for v in variants]
      + [
        f"{r[b]['median_ms'] / r[v]['median_ms']:.2f}×"
        if v in r and b in r
        else "–"
        for v, b in ratios
      ]
      for r in rows
    ],
  ) + [""]
  has = lambda key: any(key in r.get(v, {}) for r in rows for v in variants)
  if has("fwd_median_ms"):
    lines += ["Forward only (ms, median):", ""] + _by_length(
      rows, variants, lambda r, v: f"{r[v]['fwd_median_ms']:.1f}"
    )
  if has("fwd_bwd_temp_bytes"):
    lines += (
      [
        "Memory: XLA scratch of the compiled fwd+bwd (MiB; "
        "`memory_analysis().temp_size_in_bytes`; on a GPU the device "
        "peak is in the JSON):",
        "",
      ]
      + table(
        ["L"] + variants,
        [
          [str(r["length"])]
          + [
            f"{r[v]['fwd_bwd_temp_bytes'] / 2**20:.1f}"
            if r.get(v, {}).get("fwd_bwd_temp_bytes") is not None
            else ("OOM" if v in r.get("oom", []) else "–")
            for v in variants
          ]
          for r in rows
        ],
      )
      + [""]
    )
  if any("fraction_of_matmul" in r.get("rmfa", {}) for r in rows):
    lines += [
      "RMFA's matmul FLOPs per second as a fraction of this machine's "
      "float32 matmul throughput: "
      + ", ".join(
        f"L={r['length']}: {100 * r['rmfa']['fraction_of_matmul']:.0f}%"
        for r in rows
        if "rmfa" in r
      )
      + ".",
      "",
    ]
  if "rmfa" in variants:
    lines += [
      f"* {crossover(rows, 'rmfa', slow)[1]}."
      for slow in ("softmax", "performer")
      if slow in variants
    ] + [""]
  if draw:
    speed_plot(data, os.path.join(docs, png_name))
    lines += [f"![attention time vs L]({png_name})", ""]
  return lines


def grid_speed_section(docs: str) -> list[str]:
  data, lines = _input(
    docs,
    "attention_speed_spectral.json",
    "Spectraformer grid: attention speed",
    None,
  )
  if data is None or not data.get("rows"):
    return []
  rows = sorted(data["rows"], key=lambda r: r["length"])
  variants, shapes = _variants(rows), data.get("shapes", {})
  lines += [
    f"Command: `{common.shown(data.get('command', '?'))}`. Machine: "
    f"{data.get('device')}, {data.get('host')}, jax {data.get('jax')}. "
    f"Measure: {data.get('measure')}; B = {shapes.get('batch')}, H = "
    f"{shapes.get('heads')}, Dh = {shapes.get('head_dim')}, M = "
    f"{shapes.get('num_features')}. All variants ran in one process, "
    "alternating within each repeat; on a shared machine compare ratios "
    "within this table, not absolute times across runs.",
    "",
    "fwd+bwd time (ms, median):",
    "",
  ] + _by_length(rows, variants, lambda r, v: f"{r[v]['median_ms']:.1f}")
  at = [r for r in rows if r["length"] == GRID_SPEED_L]
  timed = (
    sorted(
      (at[0][v]["median_ms"], v)
      for v in variants
      if v.startswith("spectra_") and v in at[0]
    )
    if at
    else []
  )
  if timed:
    r, bases = at[0], ("rmfa", "performer", "softmax")
    body = [
      [v, f"{ms:.1f}"]
      + [f"{ms / r[b]['median_ms']:.2f}×" if b in r else "–" for b in bases]
      for ms, v in (timed[0], timed[-1])
    ]
    body += [
      [b, f"{r[b]['median_ms']:.1f}", "", "", ""] for b in bases if b in r
    ]
    lines += (
      [f"At L = {GRID_SPEED_L} (one run):", ""]
      + table(
        [
          "variant",
          "fwd+bwd ms",
          "time / rmfa",
          "time / performer",
          "time / softmax",
        ],
        body,
      )
      + ["", f"Fastest grid cell: {timed[0][1]}; slowest: {timed[-1][1]}.", ""]
    )
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


def pareto_plot(data: dict, path: str) -> None:
  """Error vs fwd+bwd time, a curve per method, a panel per (scale, L)."""
  plt, res, scales = common.pyplot(), data["results"], data["scales"]
  lengths = sorted({r["length"] for r in res})
  fig, axes = plt.subplots(
    len(scales),
    len(lengths),
    squeeze=False,
    figsize=(4.5 * len(lengths), 3.8 * len(scales)),
  )
  for i, s in enumerate(scales):
    for j, length in enumerate(lengths):
      ax = axes[i][j]
      for n in dict.fromkeys(r["method"] for r in res):
        pts = sorted(
          (r["ms"], r["errors"][f"{s:g}"])
          for r in res
          if r["method"] == n and r["length"] == length
        )
        ax.plot(
          *zip(*pts, strict=True),
          "-" if n.startswith("rmfa") else "--",
          marker="o",
          ms=3,
          label=n,
          lw=2.2 if n in ("rmfa", "performer_peer") else 1,
        )
      ax.set(
        xscale="log", yscale="log", xlabel="fwd+bwd ms", ylabel="relative error"
      )
      ax.set_title(f"L = {length}, s = {s:.3g}", fontsize=9)
      ax.grid(True, which="both", alpha=0.3)
  axes[0][-1].legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def pareto_section(docs: str, png_name: str) -> list[str]:
  data, lines = _input(
    docs, "attention_pareto.json", "Time against error (Pareto)", None
  )
  if data is None:
    return lines
  res, sh = data["results"], data["shapes"]
  methods = list(dict.fromkeys(r["method"] for r in res))
  lengths = sorted({r["length"] for r in res})
  pareto_plot(data, os.path.join(docs, png_name))
  lines += [
    f"Command: `{common.shown(data['command'])}`. Machine: "
    f"{data['device']}, {data['host']}, {data['cpus']} CPUs, jax "
    f"{data['jax']}; matmul {data['matmul_gflops']:.0f} GFLOP/s. "
    f"Measure: {data['measure']} ({data['rows']} rows, "
    f"{data['draws']} draws). B = {sh['batch']}, H = {sh['heads']}, "
    f"Dh = {sh['head_dim']}; q, k PreSBN'd and scaled by s. All runs "
    "in one process: compare ratios, not absolute times across "
    f"runs.",
    "",
    f"![time vs error]({png_name})",
    "",
  ]
  peer = "performer_peer" if "performer_peer" in methods else "favor"
  for length in lengths:
    for s in data["scales"]:
      pts = {
        n: [
          (r["ms"], r["errors"][f"{s:g}"])
          for r in res
          if r["method"] == n and r["length"] == length
        ]
        for n in methods
      }
      lines += [
        f"L = {length}, s = {s:.3g}: fwd+bwd ms to reach error <= e "
        "(log-log interpolation between feature counts; - not "
        "reached)",
        "",
      ] + table(
        ["method"] + [f"{e:g}" for e in LEVELS],
        [
          [n]
          + [
            "-" if t is None else f"{t:.1f}"
            for t in (time_to_reach(pts[n], e) for e in LEVELS)
          ]
          for n in methods
        ],
      )
      if "rmfa" in pts and peer in pts:
        ratios = [
          f"{e:g}: " + (f"{tp / tr:.2f}x" if tp else "rmfa only")
          for e in LEVELS
          for tp, tr in [
            (time_to_reach(pts[peer], e), time_to_reach(pts["rmfa"], e))
          ]
          if tr
        ]
        lines += [
          "",
          f"{peer} time / rmfa time at equal error: "
          + (", ".join(ratios) or "no common level"),
        ]
      lines.append("")
  by = {(r["method"], r["length"], r["num_features"]): r for r in res}
  mib = lambda r: f"{r['temp_bytes'] / 2**20:.1f}"
  return (
    lines
    + [
      "Equal M (fwd+bwd ms, temp MiB of the compiled fwd+bwd; "
      f"ratio = {peer} / rmfa):",
      "",
    ]
    + table(
      [
        "L",
        "M",
        "rmfa ms",
        f"{peer} ms",
        "ratio",
        "rmfa MiB",
        f"{peer} MiB",
        "rmfa % of matmul",
      ],
      [
        [
          length,
          m,
          f"{a['ms']:.1f}",
          f"{p['ms']:.1f}",
          f"{p['ms'] / a['ms']:.2f}x",
          mib(a),
          mib(p),
          f"{100 * a['fraction_of_matmul']:.0f}%",
        ]
        for length in lengths
        for m in sorted({r["num_features"] for r in res})
        for a, p in [(by.get(("rmfa", length, m)), by.get((peer, length, m)))]
        if a and p
      ],
    )
    + [""]
  )


# ----------------------------------------------------------------------------
# Training step (benchmarks.train_step_speed).
# ----------------------------------------------------------------------------
def train_step_section(docs: str) -> list[str]:
  """Before/after table per attention, first steps, the profiles' top ops."""
  title = "One LRA training step per attention"
  data, lines = _input(docs, "train_step_speed.json", title, TRAIN_STEP_CMD)
  results = data.get("results") if isinstance(data, dict) else None
  base = bool(isinstance(data, dict) and data.get("baseline"))
  label = {"baseline": "before", "this": "after" if base else "this"}
  rows = [
    (r, label[k], r[k] if "this" in r else r)
    for r in results or []
    if isinstance(r, dict)
    for k in (("baseline", "this") if "this" in r else ("this",))
  ]
  if data is not None and not (
    rows
    and len(rows) >= len(results)
    and all(
      isinstance(row, dict) and "matmul_share" in row for _, _, row in rows
    )
  ):
    return [f"## {title}", ""] + _not_run(
      TRAIN_STEP_CMD,
      os.path.join(docs, "train_step_speed.json"),
      "in an older format: no XLA cost analysis, compile time or "
      "memory per attention",
    )
  if data is None:
    return lines
  lines += (
    [
      f"Command: `{common.shown(data['command'])}` (commit "
      f"{data.get('commit', '?')}"
      + (
        f"; baseline `{data['baseline']}`, {data['rounds']} round(s), "
        "interleaved"
        if base
        else ""
      )
      + f"). Machine: {data['device']}, "
      f"{data.get('host', {}).get('cpus')} cores, jax {data['jax']}. Task "
      f"{data['task']}, preset {data['preset']}, {data['dtype']}, "
      f"{data.get('num_devices', 1)} device(s). The real `Engine.train` step "
      "(forward, backward, AdamW update) on random tokens; s/step: median "
      f"of {data['steps']} steps after the first; GFLOP: XLA's cost "
      "analysis; % of matmul: the achieved GFLOP/s over a float32 2048³ "
      "matmul timed in the same process; memory: XLA's temp buffers and the "
      "process's peak RSS."
      + (
        " before = the baseline checkout's library, after = this one, one "
        "process each, alternating; speed-up = median of the per-round "
        "ratios."
        if base
        else ""
      ),
      "",
    ]
    + table(
      [
        "attention",
        "checkout",
        "batch",
        "L",
        "s/step",
        "steps/s",
        "speed-up",
        "GFLOP/step",
        "GFLOP/s",
        "% of matmul",
        "compile (s)",
        "XLA temp (GiB)",
        "peak RSS (GiB)",
      ],
      [
        [
          row["attention"],
          lab,
          row["batch_size"],
          row["max_len"],
          f"{row['s_per_step']:.3f}",
          f"{row['steps_per_sec']:.3f}",
          f"{r['speedup']:.2f}x" if lab == "after" else "–",
          f"{row['gflop_per_step']:.1f}",
          f"{row['gflops']:.1f}",
          f"{100 * row['matmul_share']:.1f}%",
          f"{row['compile_s']:.1f}",
          fmt(row.get("xla_temp_gib")),
          f"{row['peak_rss_gib']:.2f}",
        ]
        for r, lab, row in rows
      ],
    )
    + [""]
  )
  first = data.get("first_step", {})
  if first:
    lines += [
      "First step of a new process (compile included), and of the "
      "next one sharing its persistent compilation cache:",
      "",
    ]
    lines += table(
      ["attention", "checkout", "new process (s)", "next process (s)", "cache"],
      [
        [
          a,
          label[k],
          f"{f['cold_s']:.1f}",
          f"{f['warm_s']:.1f}",
          "yes" if f["cache"] else "no",
        ]
        for a, by in first.items()
        for k, f in by.items()
      ],
    ) + [""]
  for _, lab, row in rows:
    prof = row.get("profile")
    if prof:
      lines += (
        [
          f"Top XLA ops of one step: {row['attention']}, {lab} "
          f"({prof['ops_ms']:.0f} ms of ops):",
          "",
        ]
        + table(
          ["ms", "share", "op", "model op"],
          [
            [
              f"{op['ms']:.1f}",
              f"{100 * op['share']:.1f}%",
              op["op"],
              f"`{op['op_name']}`",
            ]
            for op in prof["top_ops"]
          ],
        )
        + [""]
      )
  return lines


# ----------------------------------------------------------------------------
# LRA table, temperature, GPU suite, Spectraformer grid error.
# ----------------------------------------------------------------------------
def lra_section(docs: str) -> list[str]:
  """docs/lra_table.md, one heading level down."""
  path = os.path.join(docs, "lra_table.md")
  lines = ["## LRA accuracy", ""]
  if not os.path.exists(path):
    return lines + _not_run(LRA_CMD, path, "missing")
  with open(path) as f:
    return (
      lines
      + [
        ("#" + line if line.startswith("#") else line)
        for line in f.read().splitlines()
        if not line.startswith("# ")
      ]
      + [""]
    )


def temperature_section(docs: str) -> list[str]:
  """Accuracy vs q/k scale per kernel (docs/temperature.json), in short."""
  data, lines = _input(
    docs, "temperature.json", "The q/k scale (temperature) of Macformer", None
  )
  if data is None:
    return lines
  lines += [
    f"`{TEMPERATURE_CMD}`; details, variance cost and plot: "
    "[TEMPERATURE.md](TEMPERATURE.md). Reduced ListOps (L = 256), "
    f"{data['setup']['steps']} steps; test accuracy (%), mean ± std "
    "over seeds; paired difference to the authors' default Dh^-1/4 "
    "with the same seed (95% t-interval).",
    "",
  ]
  rows = []
  for r in data["summary"]:
    scale = (
      "learned"
      if r["setting"] == "learn"
      else "-"
      if r["kernel"] == "softmax"
      else f"{r['scale']:.2f}"
    )
    if "learned_scale_mean" in r:
      scale = f"learned ({r['learned_scale_mean']:.2f})"
    d = r.get("paired_diff")
    diff = (
      "-"
      if d is None
      else (
        f"{100 * d['mean']:+.1f} [{100 * d['ci95'][0]:+.1f}, "
        f"{100 * d['ci95'][1]:+.1f}]"
      )
    )
    std = None if r["test_std"] is None else 100 * r["test_std"]
    rows.append(
      [
        r["kernel"],
        r["setting"],
        scale,
        str(len(r["seeds"])),
        pm(100 * r["test_mean"], std),
        diff,
      ]
    )
  return (
    lines
    + table(
      ["kernel", "setting", "s", "seeds", "test acc.", "vs default"], rows
    )
    + [""]
  )


def gpu_suite_section(docs: str) -> list[str]:
  """What benchmarks/gpu_suite.sh produced (docs/gpu_suite.json)."""
  data, lines = _input(docs, "gpu_suite.json", "GPU suite", None)
  if data is None:
    return lines
  lines += [
    f"`{GPU_SUITE_CMD}` on {data['device']}, {data['date']} (commit "
    f"{data['commit']}): {data['total_s']} s of a {data['budget_s']}"
    f" s budget, exit status {data['status']}.",
    "",
  ]
  return (
    lines
    + table(
      ["stage", "exit", "seconds", "output"],
      [
        [
          st["stage"],
          str(st["rc"]),
          str(st["seconds"]),
          st.get("json", st.get("skipped", "")),
        ]
        for st in data["stages"]
      ],
    )
    + [""]
  )


def grid_error_section(docs: str) -> list[str]:
  data, lines = _input(
    docs, "spectral_error.json", "Spectraformer grid: approximation error", None
  )
  if data is None:
    return lines
  s, m = data["settings"], data.get("machine", {})
  lines += [
    f"Command: `{common.shown(data['command'])}` "
    f"({data['date']}, {data['runtime_s']} s;"
    f" {m.get('device')}, {m.get('cpu_count')} cores, jax {m.get('jax')}).",
    "",
    "Relative Frobenius error against the exact softmax kernel "
    f"exp(q·k/√d) (d = {s['head_dim']}): the kernel matrix "
    f"({s['kernel_length']}×{s['kernel_length']}, the unbiased estimator "
    f"phi(x)·phi(y)) and the attention output (L = {s['length']}, the "
    "stabilised features `layers.SpectralAttention` runs), mean ± std over "
    f"{s['seeds']} seeds, at M = {GRID_M} features. Inputs: presbn = "
    f"{s['regimes']['presbn']}; gauss = {s['regimes']['gauss']}. gerf is "
    "at its initial A = 0 (= posrf in distribution) and "
    "fastfood_learnable at its initial S, G, B (= fastfood); training "
    "moves both. Weight matrices with Gaussian marginals (unbiased with "
    f"every component): {', '.join(s['unbiased_weights'])}. Slope: "
    "least-squares slope of log(mean attention error) vs log(M) over "
    f"M > d = {s['head_dim']}, presbn (Monte Carlo: -0.5; below M = d the "
    "block-structured matrices are in another regime).",
    "",
  ]
  if os.path.exists(os.path.join(docs, "spectral_error.png")):
    lines += ["![grid error vs M](spectral_error.png)", ""]
  cells = {}
  for c in data["curves"]:
    cells.setdefault((c["component"], c["weights"]), {})[c["regime"]] = c
  mean = lambda c, metric: as_float(c[metric]["mean"][c["M"].index(GRID_M)])

  def err(c, metric):
    if c is None or GRID_M not in c["M"]:
      return "–"
    sd = c[metric]["std"][c["M"].index(GRID_M)]
    return (
      str(c[metric]["mean"][c["M"].index(GRID_M)])
      if math.isnan(mean(c, metric))
      else f"{mean(c, metric):.4f} ± {as_float(sd):.4f}"
    )

  rows = []
  for (component, weights), regimes in cells.items():
    p, g = regimes.get("presbn"), regimes.get("gauss")
    slope = (
      None
      if p is None
      else common.fit_slope(
        p["M"], p["attention_error"]["mean"], above=s["head_dim"]
      )
    )
    rows.append(
      [component, weights]
      + [err(c, k) for c in (p, g) for k in ("attention_error", "kernel_error")]
      + ["n/a" if slope is None else f"{slope:+.2f}"]
    )
  lines += table(
    [
      "component",
      "weights",
      "attention err. presbn",
      "kernel err. presbn",
      "attention err. gauss",
      "kernel err. gauss",
      "slope",
    ],
    rows,
  ) + [""]
  for regime in ("presbn", "gauss"):
    ranked = sorted(
      (mean(c, "attention_error"), f"{cell[0]}-{cell[1]}")
      for cell, regimes in cells.items()
      for c in [regimes.get(regime)]
      if c and GRID_M in c["M"]
    )
    ranked = [r for r in ranked if not math.isnan(r[0])]
    if ranked:
      lines.append(
        f"* {regime}, M = {GRID_M}: lowest attention error "
        f"{ranked[0][1]} ({ranked[0][0]:.4f}), highest {ranked[-1][1]} "
        f"({ranked[-1][0]:.4f})."
      )
  return lines + [""]


def build(docs: str, draw_speed_png: bool = True) -> str:
  """The whole BENCHMARKS.md text."""
  lines = [
    "# Benchmarks",
    "",
    f"Generated by `{REPORT_CMD}` from the JSON, PNG and Markdown "
    "files in docs/ that the benchmark scripts write; do not edit by "
    "hand. Each section names the command and the machine that "
    "produced it.",
    "",
  ]
  lines += kernel_error_section(docs, "kernel_error.png")
  lines += speed_section(docs, "attention_speed.png", draw_speed_png)
  lines += pareto_section(docs, "attention_pareto.png")
  lines += train_step_section(docs) + lra_section(docs)
  lines += grid_error_section(docs) + grid_speed_section(docs)
  lines += temperature_section(docs) + gpu_suite_section(docs)
  return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> str:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "--docs",
    default="docs",
    help="folder with the inputs; the report goes there",
  )
  parser.add_argument(
    "--out",
    default=None,
    help="output path (default <docs>/BENCHMARKS.md; '-' for stdout)",
  )
  args = parser.parse_args(argv)
  text = build(args.docs)
  out = args.out or os.path.join(args.docs, "BENCHMARKS.md")
  if out == "-":
    print(text)
  else:
    common.write(out, text)
  return text


if __name__ == "__main__":
  main()
