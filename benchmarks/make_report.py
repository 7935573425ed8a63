r"""Renders docs/BENCHMARKS.md from the files the benchmark studies wrote.

  python -m benchmarks.make_report      # docs/*.json, *.md -> BENCHMARKS.md

Inputs, each optional: a missing one gives a "not run yet" section naming its
command (the grid, temperature and GPU sections are left out instead):
kernel_error.json/.png (benchmarks.kernel_error), attention_speed.json and
attention_speed_spectral.json (benchmarks/attention_speed.py),
attention_pareto.md/.png (benchmarks/attention_pareto.py),
train_step_speed.json, lra_table.md (benchmarks.lra_table),
spectral_error.json/.png (benchmarks.spectral_error), temperature.json
(benchmarks.temperature_study) and gpu_suite.json (benchmarks/gpu_suite.sh).
It also draws docs/attention_speed.png from attention_speed.json. Every
number is read from those files, except the reference value of an earlier
independent numpy measurement that the kernel-error section is checked
against.
"""

import argparse
import math
import os
from typing import List, Optional, Tuple

from benchmarks import common
from benchmarks.common import as_float, fmt, pm, table

KERNEL_ERROR_CMD = "python -m benchmarks.kernel_error"
SPEED_CMD = "python benchmarks/attention_speed.py"
LRA_CMD = ("python -m benchmarks.lra_table 'runs/*/results.json' "
           "--progress 'docs/results/full_length_listops_*.json'")
TEMPERATURE_CMD = ("python -m benchmarks.temperature_study run && "
                   "python -m benchmarks.temperature_study report")
GPU_SUITE_CMD = "bash benchmarks/gpu_suite.sh   # on a machine with one GPU"
REPORT_CMD = "python -m benchmarks.make_report"
TRAIN_STEP_CMD = ("python benchmarks/train_step_speed.py --task=listops "
                  "--preset=lra --max_len=2000 --batch_size=2 --steps=3 "
                  "--attentions=softmax,macformer_exp,performer,rfa,linear")
# The grid's speed run: one cell per component (orf weights; the weight
# matrix does not change the attention cost, except fastfood_learnable,
# which rebuilds W from S, G, B in every call), beside rmfa, performer and
# softmax, in one process.
GRID_SPEED_VARIANTS = (
    "softmax", "rmfa", "performer", "spectra_trigrf_orf", "spectra_posrf_orf",
    "spectra_oprf_orf", "spectra_gerf_orf", "spectra_saderf_orf",
    "spectra_oprf_fastfoodl", "spectra_posrf_sorf", "spectra_posrf_qmc",
    "spectra_rmf_rademacher")
GRID_SPEED_CMD = ("nice -n 19 python benchmarks/attention_speed.py "
                  "--variants " + ",".join(GRID_SPEED_VARIANTS) +
                  " --lengths 1024,2048,4096,8192,16384 --repeats 3 "
                  "--out docs/attention_speed_spectral.json")
# An earlier independent numpy measurement (not a paper number):
# exp kernel, D = 128, L = 1024, d = 32, PreSBN, non-causal, sampled degrees.
HARNESS_B_EXP_D128 = 0.026
KERNELS = ("exp", "trigh", "inverse", "log", "sqrt")
REPORT_DIMS = (128, 1024)
GRID_M, GRID_SPEED_L = 128, 8192


def _slope(x: Optional[float]) -> str:
  return "n/a" if x is None else f"{x:+.3f}"


def _machine(m: dict) -> str:
  return ", ".join([str(m.get("device", "?"))] + [
      f"{label} {m[key]}" for key, label in (
          ("host", "host"), ("cpu_count", "cores"), ("jax", "jax"))
      if m.get(key) is not None])


def _not_run(command: str, path: str, why: str) -> List[str]:
  return [f"Not run yet (`{path}` is {why}). Produce it with:", "",
          f"    {command}", ""]


def _input(docs: str, name: str, title: str, command: Optional[str]):
  """(data, lines): the section's title, plus 'not run yet' if no data
  (no lines at all when `command` is None: the section is optional)."""
  path = os.path.join(docs, name)
  data, why = common.load_json(path)
  if data is None:
    return None, ([] if command is None else
                  [f"## {title}", ""] + _not_run(command, path, why))
  return data, [f"## {title}", ""]


# ----------------------------------------------------------------------------
# Kernel error.
# ----------------------------------------------------------------------------
def _curve(curves, method="rmf", kernel="exp", allocation=None,
           projection=None, inputs="presbn") -> Optional[dict]:
  key = (method, kernel, allocation, projection, inputs)
  return next((c for c in curves if tuple(c.get(k) for k in (
      "method", "kernel", "allocation", "projection", "inputs")) == key),
      None)


def _at(curve: dict, metric: str, dim: int, dims_key: str = "D") -> str:
  if dim not in curve[dims_key]:
    return "–"
  i = curve[dims_key].index(dim)
  return pm(curve[metric]["mean"][i], curve[metric]["std"][i])


def _row(curve: dict, name: str, label: str, metrics, slope_metrics):
  return ([name, label] + [_slope(curve[m]["slope"]) for m in slope_metrics]
          + [_at(curve, m, d) for d in REPORT_DIMS for m in metrics])


def _nonfinite(c: dict) -> str:
  return str(sum(v["nonfinite"] for v in c.values()
                 if isinstance(v, dict) and "nonfinite" in v))


def kernel_error_section(docs: str, rel_png: str) -> List[str]:
  data, lines = _input(docs, "kernel_error.json",
                       "Approximation error of random Maclaurin features",
                       KERNEL_ERROR_CMD)
  if data is None:
    return lines
  s, curves = data["settings"], data["curves"]
  lines += [
      f"Command: `{data.get('command', KERNEL_ERROR_CMD)}` "
      f"({data.get('date', '?')}, {data.get('runtime_s', {}).get('total', '?')}"
      f" s). Machine: {_machine(data.get('machine', {}))}.", "",
      f"Relative Frobenius error of the kernel matrix "
      f"({s['kernel_length']}×{s['kernel_length']}, K_ij = f(q_i·k_j)) and "
      f"of the non-causal attention output (L = {s['length']}, "
      f"d = {s['head_dim']}, v ~ N(0, 1)) against exact kernelized "
      f"attention, mean ± std over {s['seeds']} seeds, D = "
      f"{', '.join(str(d) for d in s['D'])}. Inputs: "
      f"{s['inputs']['presbn']} (Macformer) or {s['inputs']['raw']} (the "
      "authors' no-ppSBN ablation). Slopes are least-squares fits of "
      "log(mean error) vs log(D) over all D; Monte Carlo error falls as "
      "D^-1/2, i.e. slope -0.5.", ""]
  if os.path.exists(os.path.join(docs, os.path.basename(rel_png))):
    lines += [f"![kernel and attention error vs D]({rel_png})", ""]
  both = ("kernel_error", "attention_error")
  rows = []
  for kernel in KERNELS:
    for allocation in ("stratified", "sampled"):
      for projection in ("chained", "independent"):
        c = _curve(curves, kernel=kernel, allocation=allocation,
                   projection=projection)
        if c is not None:
          tag = {("stratified", "chained"): " (default)",
                 ("sampled", "independent"): " (paper)"}.get(
                     (allocation, projection), "")
          rows.append(_row(c, f"RMF {kernel}",
                           f"{allocation}/{projection}{tag}", both, both))
  names = {"performer": "Performer FAVOR+", "rfa": "RFA (Fourier)"}
  for method, name in names.items():
    c = _curve(curves, method=method)
    if c is not None:
      rows.append(_row(c, name, "softmax = exp kernel", both, both))
  header = (["method", "allocation/projection", "slope K", "slope attn"] +
            [f"{m} D={d}" for d in REPORT_DIMS for m in ("K err", "attn err")])
  lines += ["### With PreSBN", ""] + table(header, rows) + [""]
  ref = _curve(curves, kernel="exp", allocation="sampled",
               projection="independent")
  if ref is not None and 128 in ref["D"]:
    value = as_float(ref["attention_error"]["mean"][ref["D"].index(128)])
    lines += ["Check against an earlier independent numpy measurement "
              "(exp, D = 128, L = 1024, d = 32, PreSBN, non-causal, sampled "
              f"degrees): {fmt(value)} here vs {HARNESS_B_EXP_D128} there "
              f"(ratio {value / HARNESS_B_EXP_D128:.2f}; that measurement "
              "did not record its v distribution, on which the relative "
              "attention error depends).", ""]
  outside = data.get("fraction_outside_radius", {}).get("raw", {})
  raw = ("attention_error", "attention_error_truncated")
  rows = []
  for kernel in KERNELS:
    c = _curve(curves, kernel=kernel, allocation="sampled",
               projection="independent", inputs="raw")
    if c is not None:
      rows.append(_row(c, kernel, fmt(outside.get(kernel, math.nan)), raw,
                       raw[1:]) + [_nonfinite(c)])
  for method in names:
    c = _curve(curves, method=method, inputs="raw")
    if c is not None:
      rows.append(_row(c, f"{method} (softmax)", fmt(outside.get("exp", 0.0)),
                       raw, raw[1:]) + [_nonfinite(c)])
  header = (["kernel", "pairs with abs(t) ≥ radius", "slope (vs f≤20)"] +
            [f"attn err D={d} {t}" for d in REPORT_DIMS
             for t in ("vs f", "vs f≤20")] +
            [f"non-finite values (of {4 * len(s['D']) * s['seeds']})"])
  lines += [
      "### Without PreSBN (paper's sampled/independent map)", "",
      f"Raw inputs {s['inputs']['raw']}. Where |q·k| reaches the radius of "
      "convergence (1 for inverse, log, sqrt) f itself is undefined or not "
      "its series, so the error is also given against f truncated at degree "
      f"{s['max_degree']} (what RMF estimates without bias); nan/inf are "
      "reported as such.", ""] + table(header, rows) + [""]
  var = data.get("variance")
  if var:
    keys = ("empirical_sampled_independent", "formula_sampled_independent",
            "empirical_sampled_chained", "empirical_stratified_independent",
            "formula_stratified_independent", "empirical_stratified_chained",
            "formula_stratified_chained")
    ratios = ("chained_over_independent_sampled",
              "chained_over_independent_stratified",
              "stratified_over_sampled_chained")
    rows = [[r["kernel"], r["pairs"], fmt(r["mean_abs_t"], 2)] +
            [f"{r[k]:.2e}" for k in keys] + [f"{r[k]:.3f}" for k in ratios]
            for r in var["rows"]]
    header = ["kernel", "pairs", "mean abs t", "sampled/indep.",
              "formula (METHOD.md §2.2)", "sampled/chained",
              "stratified/indep.", "formula", "stratified/chained", "formula",
              "chained ÷ indep. (sampled)", "chained ÷ indep. (stratified)",
              "stratified ÷ sampled (chained)"]
    lines += [
        f"### Variance of φ(x)·φ(y) at D = {var['num_features']}, "
        f"d = {var['head_dim']}", "",
        f"Empirical variance over {var['num_draws']} independent draws, mean "
        f"over {var['num_pairs']} pairs per pair set ({var['inputs']}), "
        "beside the exact formulas. The chained layout (features share the "
        "factors of a chain) costs the ratio in the chained ÷ independent "
        "columns; its width is ≈ D instead of ≈ 2D.", ""]
    lines += table(header, rows) + [""]
  return lines


# ----------------------------------------------------------------------------
# Attention speed.
# ----------------------------------------------------------------------------
def _variants(rows: List[dict]) -> List[str]:
  names = []
  for row in rows:
    names += [k for k, v in row.items() if isinstance(v, dict)
              and "median_ms" in v and k not in names]
  return names


def crossover(rows: List[dict], fast: str, slow: str
              ) -> Tuple[Optional[float], str]:
  """Where `fast` overtakes `slow`, from the measured lengths.

  Returns:
    (L, sentence): L is the log-log interpolated length of the last change
    from slower to faster when `fast` stays faster after it (None if there
    is no such change); the sentence lists where `fast` is faster.
  """
  pts = sorted((r["length"], r[fast]["median_ms"], r[slow]["median_ms"])
               for r in rows if fast in r and slow in r)
  if not pts:
    return None, f"no length has both {fast} and {slow}"
  faster = ", ".join(str(l) for l, f, s in pts if f < s)
  slower = ", ".join(str(l) for l, f, s in pts if f >= s)
  length = None
  for (l0, f0, s0), (l1, f1, s1) in zip(pts, pts[1:]):
    if f0 >= s0 and f1 < s1 and all(f < s for l, f, s in pts if l >= l1):
      r0, r1 = math.log(f0 / s0), math.log(f1 / s1)
      length = math.exp(math.log(l0) + (math.log(l1) - math.log(l0)) *
                        r0 / (r0 - r1))
  if not slower:
    return length, (f"{fast} is faster than {slow} at every measured length "
                    f"(L = {faster}); the crossover lies below L = "
                    f"{pts[0][0]}")
  if not faster:
    return length, (f"{fast} is not faster than {slow} at any measured "
                    f"length (L = {slower})")
  text = (f"{fast} is faster than {slow} at L = {faster} and not at "
          f"L = {slower}")
  if length is not None:
    text += (f"; it overtakes {slow} at L ≈ {length:.0f} (log-log "
             "interpolation)")
  return length, text


def speed_plot(data: dict, path: str) -> None:
  """fwd+bwd time vs L per variant, log-log, crossover lines."""
  plt = common.pyplot()
  rows = sorted(data["rows"], key=lambda r: r["length"])
  variants = _variants(rows)
  fig, ax = plt.subplots(figsize=(7.5, 5))
  for name in variants:
    pts = [(r["length"], r[name]["median_ms"]) for r in rows if name in r]
    ax.plot(*zip(*pts), marker="o", label=name,
            lw=2.5 if name == "rmfa" else 1.5)
  for slow, color in (("softmax", "C3"), ("performer", "C1")):
    if "rmfa" in variants and slow in variants:
      length, _ = crossover(rows, "rmfa", slow)
      if length is not None:
        ax.axvline(length, color=color, ls=":", lw=1)
        ax.text(length, ax.get_ylim()[1], f" rmfa < {slow}\n L≈{length:.0f}",
                va="top", fontsize=8, color=color)
  ax.set_xscale("log", base=2)
  ax.set_yscale("log")
  ax.set_xlabel("sequence length L")
  ax.set_ylabel("fwd+bwd time (ms, median)")
  shapes = data.get("shapes", {})
  ax.set_title(f"Attention core speed on {data.get('device', '?')} "
               f"(B={shapes.get('batch')}, H={shapes.get('heads')}, "
               f"Dh={shapes.get('head_dim')}, M={shapes.get('num_features')})",
               fontsize=10)
  ax.grid(True, which="both", alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _ms_table(rows, variants, key: str, cell) -> List[str]:
  return table(["L"] + variants, [[str(r["length"])] + [
      cell(r, v) if v in r else "–" for v in variants] for r in rows]) + [""]


def speed_section(docs: str, png_name: str, draw: bool = True) -> List[str]:
  data, lines = _input(docs, "attention_speed.json",
                       "Attention speed vs sequence length", SPEED_CMD)
  if data is not None and not data.get("rows"):
    data, lines = None, lines + _not_run(
        SPEED_CMD, os.path.join(docs, "attention_speed.json"),
        "without rows")
  if data is None:
    return lines
  rows = sorted(data["rows"], key=lambda r: r["length"])
  variants = _variants(rows)
  lines += [f"Command: `{data.get('command', SPEED_CMD)}`. Machine: "
            f"{_machine(data)}. Measure: {data.get('measure', '?')}.", ""]
  # Speed-ups of every variant against softmax, and of rmfa vs Performer.
  ratios = [(v, "softmax") for v in variants
            if "softmax" in variants and v != "softmax"]
  ratios += [("rmfa", base) for base in ("performer", "performer_peer")
             if "rmfa" in variants and base in variants]
  header = (["L"] + [f"{v} ms" for v in variants] +
            [f"{v} speed-up vs {base}" for v, base in ratios])
  lines += table(header, [
      [str(r["length"])] +
      [f"{r[v]['median_ms']:.1f}" if v in r else "–" for v in variants] +
      [f"{r[b]['median_ms'] / r[v]['median_ms']:.2f}×" if v in r and b in r
       else "–" for v, b in ratios] for r in rows]) + [""]
  if any("fwd_median_ms" in r.get(v, {}) for r in rows for v in variants):
    lines += ["Forward only (ms, median):", ""] + _ms_table(
        rows, variants, "fwd", lambda r, v: f"{r[v]['fwd_median_ms']:.1f}")
  if any("fwd_bwd_temp_bytes" in r.get(v, {}) for r in rows
         for v in variants):
    lines += ["Memory: XLA scratch of the compiled fwd+bwd (MiB; "
              "`memory_analysis().temp_size_in_bytes`; on a GPU the device "
              "peak is in the JSON):", ""]
    lines += table(["L"] + variants, [[str(r["length"])] + [
        f"{r[v]['fwd_bwd_temp_bytes'] / 2**20:.1f}"
        if v in r and r[v].get("fwd_bwd_temp_bytes") is not None
        else ("OOM" if v in r.get("oom", []) else "–")
        for v in variants] for r in rows]) + [""]
  if any("fraction_of_matmul" in r.get("rmfa", {}) for r in rows):
    lines += ["RMFA's matmul FLOPs per second as a fraction of this machine's "
              "float32 matmul throughput: " + ", ".join(
                  f"L={r['length']}: "
                  f"{100 * r['rmfa']['fraction_of_matmul']:.0f}%"
                  for r in rows if "rmfa" in r) + ".", ""]
  if "rmfa" in variants:
    lines += [f"* {crossover(rows, 'rmfa', slow)[1]}."
              for slow in ("softmax", "performer") if slow in variants] + [""]
  if draw:
    speed_plot(data, os.path.join(docs, png_name))
    lines += [f"![attention time vs L]({png_name})", ""]
  return lines


# ----------------------------------------------------------------------------
# Training step, LRA table, temperature, GPU suite.
# ----------------------------------------------------------------------------
def train_step_section(docs: str) -> List[str]:
  """One full LRA training step per attention (train_step_speed.json)."""
  data, lines = _input(docs, "train_step_speed.json",
                       "One LRA training step per attention", TRAIN_STEP_CMD)
  if data is None:
    return lines
  base = {r["attention"]: r["s_per_step"] for r in data["results"]}
  lines += [f"`{data.get('command', TRAIN_STEP_CMD)}`", "",
            f"Task {data['task']}, preset {data['preset']}, {data['dtype']}, "
            f"device {data['device']}, host {data['host']}, jax "
            f"{data['jax']}: forward, backward and AdamW update of the whole "
            "model on random tokens; the first step (compilation) is timed "
            "apart.", ""]
  return lines + table(
      ["attention", "params", "batch", "L", "s/step", "steps/s",
       "vs softmax", "first step (s)"],
      [[r["attention"], f"{r['num_params']:,}", str(r["batch_size"]),
        str(r["max_len"]), f"{r['s_per_step']:.3f}",
        f"{r['steps_per_sec']:.3f}",
        f"{base['softmax'] / r['s_per_step']:.2f}x" if "softmax" in base
        else "-", f"{r['first_step_s']:.1f}"] for r in data["results"]]) + [""]


def lra_section(docs: str) -> List[str]:
  """docs/lra_table.md, one heading level down."""
  path = os.path.join(docs, "lra_table.md")
  lines = ["## LRA accuracy", ""]
  if not os.path.exists(path):
    return lines + _not_run(LRA_CMD, path, "missing")
  with open(path) as f:
    body = [("#" + line if line.startswith("#") else line)
            for line in f.read().splitlines() if not line.startswith("# ")]
  return lines + body + [""]


def temperature_section(docs: str) -> List[str]:
  """Accuracy vs q/k scale per kernel (docs/temperature.json), in short."""
  data, lines = _input(docs, "temperature.json",
                       "The q/k scale (temperature) of Macformer", None)
  if data is None:
    return lines
  lines += [f"`{TEMPERATURE_CMD}`; details, variance cost and plot: "
            "[TEMPERATURE.md](TEMPERATURE.md). Reduced ListOps (L = 256), "
            f"{data['setup']['steps']} steps; test accuracy (%), mean ± std "
            "over seeds; paired difference to the authors' default Dh^-1/4 "
            "with the same seed (95% t-interval).", ""]
  rows = []
  for r in data["summary"]:
    scale = ("learned" if r["setting"] == "learn" else
             "-" if r["kernel"] == "softmax" else f"{r['scale']:.2f}")
    if "learned_scale_mean" in r:
      scale = f"learned ({r['learned_scale_mean']:.2f})"
    d = r.get("paired_diff")
    diff = "-" if d is None else (
        f"{100 * d['mean']:+.1f} [{100 * d['ci95'][0]:+.1f}, "
        f"{100 * d['ci95'][1]:+.1f}]")
    std = None if r["test_std"] is None else 100 * r["test_std"]
    rows.append([r["kernel"], r["setting"], scale, str(len(r["seeds"])),
                 pm(100 * r["test_mean"], std), diff])
  return lines + table(["kernel", "setting", "s", "seeds", "test acc.",
                        "vs default"], rows) + [""]


def gpu_suite_section(docs: str) -> List[str]:
  """What benchmarks/gpu_suite.sh produced (docs/gpu_suite.json)."""
  if not os.path.exists(os.path.join(docs, "gpu_suite.json")):
    return []
  data, lines = _input(docs, "gpu_suite.json", "GPU suite", GPU_SUITE_CMD)
  if data is None:
    return lines
  lines += [f"`{GPU_SUITE_CMD}` on {data['device']}, {data['date']} (commit "
            f"{data['commit']}): {data['total_s']} s of a {data['budget_s']}"
            f" s budget, exit status {data['status']}.", ""]
  return lines + table(["stage", "exit", "seconds", "output"], [
      [st["stage"], str(st["rc"]), str(st["seconds"]),
       st.get("json", st.get("skipped", ""))] for st in data["stages"]]) + [""]


# ----------------------------------------------------------------------------
# The Spectraformer grid.
# ----------------------------------------------------------------------------
def grid_error_section(docs: str) -> List[str]:
  data, lines = _input(docs, "spectral_error.json",
                       "Spectraformer grid: approximation error", None)
  if data is None:
    return lines
  s, m = data["settings"], data.get("machine", {})
  lines += [
      f"Command: `{data['command']}` ({data['date']}, {data['runtime_s']} s;"
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
      "block-structured matrices are in another regime).", ""]
  if os.path.exists(os.path.join(docs, "spectral_error.png")):
    lines += ["![grid error vs M](spectral_error.png)", ""]
  cells = {}
  for c in data["curves"]:
    cells.setdefault((c["component"], c["weights"]), {})[c["regime"]] = c

  def err(c, metric):
    if c is None or GRID_M not in c["M"]:
      return "–"
    i = c["M"].index(GRID_M)
    mean, std = c[metric]["mean"][i], c[metric]["std"][i]
    if math.isnan(as_float(mean)):
      return str(mean)
    return f"{as_float(mean):.4f} ± {as_float(std):.4f}"
  rows = []
  for (component, weights), regimes in cells.items():
    p, g = regimes.get("presbn"), regimes.get("gauss")
    slope = None if p is None else common.fit_slope(
        p["M"], p["attention_error"]["mean"], above=s["head_dim"])
    rows.append([component, weights, err(p, "attention_error"),
                 err(p, "kernel_error"), err(g, "attention_error"),
                 err(g, "kernel_error"),
                 "n/a" if slope is None else f"{slope:+.2f}"])
  lines += table(["component", "weights", "attention err. presbn",
                  "kernel err. presbn", "attention err. gauss",
                  "kernel err. gauss", "slope"], rows) + [""]
  for regime in ("presbn", "gauss"):
    ranked = sorted(
        (as_float(c["attention_error"]["mean"][c["M"].index(GRID_M)]),
         f"{cell[0]}-{cell[1]}") for cell, regimes in cells.items()
        for c in [regimes.get(regime)] if c and GRID_M in c["M"])
    ranked = [r for r in ranked if not math.isnan(r[0])]
    if ranked:
      lines.append(
          f"* {regime}, M = {GRID_M}: lowest attention error "
          f"{ranked[0][1]} ({ranked[0][0]:.4f}), highest {ranked[-1][1]} "
          f"({ranked[-1][0]:.4f}).")
  return lines + [""]


def grid_speed_section(docs: str) -> List[str]:
  data, lines = _input(docs, "attention_speed_spectral.json",
                       "Spectraformer grid: attention speed", None)
  if data is None or not data.get("rows"):
    return []
  rows = sorted(data["rows"], key=lambda r: r["length"])
  variants = _variants(rows)
  shapes = data.get("shapes", {})
  lines += [
      f"Command: `{data.get('command', GRID_SPEED_CMD)}`. Machine: "
      f"{data.get('device')}, {data.get('host')}, jax {data.get('jax')}. "
      f"Measure: {data.get('measure')}; B = {shapes.get('batch')}, H = "
      f"{shapes.get('heads')}, Dh = {shapes.get('head_dim')}, M = "
      f"{shapes.get('num_features')}. All variants ran in one process, "
      "alternating within each repeat; on a shared machine compare ratios "
      "within this table, not absolute times across runs.", "",
      "fwd+bwd time (ms, median):", ""]
  lines += _ms_table(rows, variants, "median",
                     lambda r, v: f"{r[v]['median_ms']:.1f}")
  at = [r for r in rows if r["length"] == GRID_SPEED_L]
  timed = sorted((at[0][v]["median_ms"], v) for v in variants
                 if v.startswith("spectra_") and v in at[0]) if at else []
  if timed:
    r, bases = at[0], ("rmfa", "performer", "softmax")
    body = [[v, f"{ms:.1f}"] + [f"{ms / r[b]['median_ms']:.2f}×" if b in r
                                else "–" for b in bases]
            for ms, v in (timed[0], timed[-1])]
    body += [[b, f"{r[b]['median_ms']:.1f}", "", "", ""] for b in bases
             if b in r]
    lines += [f"At L = {GRID_SPEED_L} (one run):", ""] + table(
        ["variant", "fwd+bwd ms", "time / rmfa", "time / performer",
         "time / softmax"], body)
    lines += ["", f"Fastest grid cell: {timed[0][1]}; slowest: "
              f"{timed[-1][1]}.", ""]
  return lines


def build(docs: str, draw_speed_png: bool = True) -> str:
  """The whole BENCHMARKS.md text."""
  lines = ["# Benchmarks", "",
           f"Generated by `{REPORT_CMD}` from the JSON, PNG and Markdown "
           "files in docs/ that the benchmark scripts write; do not edit by "
           "hand. Each section names the command and the machine that "
           "produced it.", ""]
  lines += kernel_error_section(docs, "kernel_error.png")
  lines += speed_section(docs, "attention_speed.png", draw_speed_png)
  pareto = os.path.join(docs, "attention_pareto.md")  # attention_pareto.py
  if os.path.exists(pareto):
    with open(pareto) as f:
      lines += f.read().splitlines() + [""]
  lines += train_step_section(docs) + lra_section(docs)
  lines += grid_error_section(docs) + grid_speed_section(docs)
  lines += temperature_section(docs) + gpu_suite_section(docs)
  return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> str:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--docs", default="docs",
                      help="folder with the inputs; the report goes there")
  parser.add_argument("--out", default=None, help="output path (default "
                      "<docs>/BENCHMARKS.md; '-' for stdout)")
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
