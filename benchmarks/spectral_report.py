"""The Spectraformer-grid sections of docs/BENCHMARKS.md (`make_report.py`).

Inputs (each optional; a section is left out while its input is missing, as
make_report does for its optional sections):

  docs/spectral_error.json, .png    benchmarks/spectral_error.py
  docs/attention_speed_spectral.json benchmarks/attention_speed.py (SPEED_CMD)

Every number is read from those files.
"""

import json
import math
import os
from typing import Any, List, Optional, Sequence

ERROR_CMD = "nice -n 19 python benchmarks/spectral_error.py"
# The grid's speed run: one cell per component (orf weights; the weight
# matrix does not change the attention cost, except fastfood_learnable,
# which rebuilds W from S, G, B in every call), beside rmfa, performer and
# softmax, in one process.
SPEED_VARIANTS = ("softmax", "rmfa", "performer", "spectra_trigrf_orf",
                  "spectra_posrf_orf", "spectra_oprf_orf", "spectra_gerf_orf",
                  "spectra_saderf_orf", "spectra_oprf_fastfoodl",
                  "spectra_posrf_sorf", "spectra_posrf_qmc",
                  "spectra_rmf_rademacher")
SPEED_CMD = ("nice -n 19 python benchmarks/attention_speed.py --variants "
             + ",".join(SPEED_VARIANTS) + " --lengths "
             "1024,2048,4096,8192,16384 --repeats 3 "
             "--out docs/attention_speed_spectral.json")
REPORT_M = 128
SPEED_L = 8192


def _load(path: str):
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError):
    return None


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> List[str]:
  lines = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
  return lines + ["| " + " | ".join(str(c) for c in row) + " |"
                  for row in rows]


def _num(x: Any) -> Optional[float]:
  try:
    return float(x)
  except (TypeError, ValueError):
    return None


def _err(curve: dict, metric: str, m: int) -> str:
  if m not in curve["M"]:
    return "–"
  i = curve["M"].index(m)
  mean, std = _num(curve[metric]["mean"][i]), _num(curve[metric]["std"][i])
  if mean is None or mean != mean:
    return str(curve[metric]["mean"][i])
  return f"{mean:.4f} ± {std:.4f}"


def _slope_above(curve: dict, metric: str, min_m: int) -> Optional[float]:
  """Least-squares slope of log(mean) vs log(M) over M > min_m (= d): the
  block-structured matrices change regime once M exceeds d, which a fit
  over all M would mix into the Monte Carlo rate."""
  pts = [(m, _num(v)) for m, v in zip(curve["M"], curve[metric]["mean"])
         if m > min_m]
  pts = [(m, v) for m, v in pts if v is not None and v == v and 0 < v]
  if len(pts) < 2 or not all(math.isfinite(v) for _, v in pts):
    return None
  x, y = zip(*[(math.log(m), math.log(v)) for m, v in pts])
  mx, my = sum(x) / len(x), sum(y) / len(y)
  return (sum((a - mx) * (b - my) for a, b in zip(x, y))
          / sum((a - mx)**2 for a in x))


def error_section(docs: str) -> List[str]:
  data = _load(os.path.join(docs, "spectral_error.json"))
  lines = ["## Spectraformer grid: approximation error", ""]
  if data is None:
    return []
  s = data["settings"]
  m = data.get("machine", {})
  lines += [
      f"Command: `{data['command']}` ({data['date']}, {data['runtime_s']} s;"
      f" {m.get('device')}, {m.get('cpu_count')} cores, jax {m.get('jax')}).",
      "",
      "Relative Frobenius error against the exact softmax kernel "
      f"exp(q·k/√d) (d = {s['head_dim']}): the kernel matrix "
      f"({s['kernel_length']}×{s['kernel_length']}, the unbiased estimator "
      f"phi(x)·phi(y)) and the attention output (L = {s['length']}, the "
      "stabilised features `layers.SpectralAttention` runs), mean ± std over "
      f"{s['seeds']} seeds, at M = {REPORT_M} features. Inputs: presbn = "
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
  by_cell = {}
  for c in data["curves"]:
    by_cell.setdefault((c["component"], c["weights"]), {})[c["regime"]] = c
  rows = []
  for (component, weights), regimes in by_cell.items():
    p, g = regimes.get("presbn"), regimes.get("gauss")
    slope = (_slope_above(p, "attention_error", s["head_dim"]) if p
             else None)
    rows.append([component, weights,
                 _err(p, "attention_error", REPORT_M) if p else "–",
                 _err(p, "kernel_error", REPORT_M) if p else "–",
                 _err(g, "attention_error", REPORT_M) if g else "–",
                 _err(g, "kernel_error", REPORT_M) if g else "–",
                 "n/a" if slope is None else f"{slope:+.2f}"])
  lines += _table(["component", "weights", "attention err. presbn",
                   "kernel err. presbn", "attention err. gauss",
                   "kernel err. gauss", "slope"], rows) + [""]
  for regime in ("presbn", "gauss"):
    ranked = []
    for (component, weights), regimes in by_cell.items():
      c = regimes.get(regime)
      if c and REPORT_M in c["M"]:
        v = _num(c["attention_error"]["mean"][c["M"].index(REPORT_M)])
        if v is not None and v == v:
          ranked.append((v, f"{component}-{weights}"))
    if ranked:
      ranked.sort()
      lines.append(
          f"* {regime}, M = {REPORT_M}: lowest attention error "
          f"{ranked[0][1]} ({ranked[0][0]:.4f}), highest {ranked[-1][1]} "
          f"({ranked[-1][0]:.4f}).")
  return lines + [""]


def speed_section(docs: str) -> List[str]:
  data = _load(os.path.join(docs, "attention_speed_spectral.json"))
  lines = ["## Spectraformer grid: attention speed", ""]
  if data is None or not data.get("rows"):
    return []
  rows = sorted(data["rows"], key=lambda r: r["length"])
  variants = []
  for r in rows:
    for key, value in r.items():
      if isinstance(value, dict) and "median_ms" in value and (
          key not in variants):
        variants.append(key)
  shapes = data.get("shapes", {})
  lines += [
      f"Command: `{data.get('command', SPEED_CMD)}`. Machine: "
      f"{data.get('device')}, {data.get('host')}, jax {data.get('jax')}. "
      f"Measure: {data.get('measure')}; B = {shapes.get('batch')}, H = "
      f"{shapes.get('heads')}, Dh = {shapes.get('head_dim')}, M = "
      f"{shapes.get('num_features')}. All variants ran in one process, "
      "alternating within each repeat; on a shared machine compare ratios "
      "within this table, not absolute times across runs.", "",
      "fwd+bwd time (ms, median):", ""]
  lines += _table(["L"] + variants, [
      [str(r["length"])] + [f"{r[v]['median_ms']:.1f}" if v in r else "–"
                            for v in variants] for r in rows]) + [""]
  at = [r for r in rows if r["length"] == SPEED_L]
  cells = [v for v in variants if v.startswith("spectra_")]
  if at and cells:
    r = at[0]
    timed = sorted((r[v]["median_ms"], v) for v in cells if v in r)
    if timed:
      lines += [f"At L = {SPEED_L} (one run):", ""]
      table = []
      for ms, v in (timed[0], timed[-1]):
        table.append([v, f"{ms:.1f}"] + [
            f"{ms / r[b]['median_ms']:.2f}×" if b in r else "–"
            for b in ("rmfa", "performer", "softmax")])
      for b in ("rmfa", "performer", "softmax"):
        if b in r:
          table.append([b, f"{r[b]['median_ms']:.1f}", "", "", ""])
      lines += _table(["variant", "fwd+bwd ms", "time / rmfa",
                       "time / performer", "time / softmax"], table)
      lines += ["", f"Fastest grid cell: {timed[0][1]}; slowest: "
                f"{timed[-1][1]}.", ""]
  return lines


def section(docs: str) -> List[str]:
  """Both grid sections."""
  return error_section(docs) + speed_section(docs)
