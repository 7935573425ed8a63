r"""Regenerates docs/BENCHMARKS.md from the files the benchmark scripts wrote.

  python benchmarks/make_report.py      # docs/*.json, *.md -> BENCHMARKS.md

Inputs (each optional; a missing one gives a "not run yet" section naming
the command that produces it):

  docs/kernel_error.json, docs/kernel_error.png  benchmarks/kernel_error.py
  docs/attention_speed.json                      benchmarks/attention_speed.py
  docs/attention_pareto.md (+ .png)              benchmarks/attention_pareto.py
  docs/lra_table.md (+ lra_progress.png)         benchmarks/lra_table.py
  docs/spectral_error.json, .png                 benchmarks/spectral_error.py
  docs/attention_speed_spectral.json             benchmarks/attention_speed.py
    (the Spectraformer-grid sections, `spectral_report.py`; left out while
    their input is missing)
  docs/temperature.json                          benchmarks/temperature_study.py
  docs/gpu_suite.json (+ gpu_attention_speed_*)  benchmarks/gpu_suite.sh

(the last two sections are left out while their input is missing).

It also draws docs/attention_speed.png (fwd+bwd time vs L, log-log) from
attention_speed.json. Every number in the report is read from those files;
none is typed here, except the SPEC §6 harness-B reference value that the
kernel-error section is checked against.
"""

import argparse
import json
import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import spectral_report  # the Spectraformer-grid sections (this folder)

KERNEL_ERROR_CMD = "python benchmarks/kernel_error.py"
SPEED_CMD = "python benchmarks/attention_speed.py"
LRA_CMD = ("python benchmarks/lra_table.py 'runs/*/results.json' "
           "--progress 'docs/results/full_length_listops_*.json'")
TEMPERATURE_CMD = ("python benchmarks/temperature_study.py run && "
                   "python benchmarks/temperature_study.py report")
GPU_SUITE_CMD = "bash benchmarks/gpu_suite.sh   # on a machine with one GPU"
REPORT_CMD = "python benchmarks/make_report.py"
# SPEC §6 harness B (our earlier numpy measurement, not a paper number):
# exp kernel, D = 128, L = 1024, d = 32, PreSBN, non-causal, sampled degrees.
HARNESS_B_EXP_D128 = 0.026
KERNELS = ("exp", "trigh", "inverse", "log", "sqrt")
REPORT_DIMS = (128, 1024)


def _load_json(path: str) -> Tuple[Optional[Any], Optional[str]]:
  """(data, None) or (None, why it is unusable)."""
  if not os.path.exists(path):
    return None, "missing"
  try:
    with open(path) as f:
      return json.load(f), None
  except (OSError, json.JSONDecodeError) as e:
    return None, f"unreadable ({e})"


def _f(x: Any) -> float:
  """A JSON number, or the strings 'inf'/'nan' kernel_error.py writes."""
  if x is None:
    return math.nan
  return float(x)


def _fmt(x: Any, digits: int = 3) -> str:
  v = _f(x)
  if math.isnan(v):
    return "nan"
  if math.isinf(v):
    return "inf" if v > 0 else "-inf"
  if v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-3):
    return f"{v:.{digits - 1}e}"
  return f"{v:.{digits}g}"


def _pm(mean: Any, std: Any) -> str:
  """'mean ± std' with the std at the mean's decimal places."""
  m, sd = _f(mean), _f(std)
  if not (math.isfinite(m) and math.isfinite(sd)):
    return _fmt(mean)
  if m == 0 or abs(m) >= 1e4 or abs(m) < 1e-3:
    return f"{m:.2e} ± {sd:.1e}"
  decimals = max(0, 2 - math.floor(math.log10(abs(m))))
  return f"{m:.{decimals}f} ± {sd:.{decimals}f}"


def _slope(x: Optional[float]) -> str:
  return "n/a" if x is None else f"{x:+.3f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
  lines = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return lines


def _machine(machine: Dict[str, Any]) -> str:
  parts = [str(machine.get("device", "?"))]
  for key, label in (("host", "host"), ("cpu_count", "cores"),
                     ("jax", "jax")):
    if machine.get(key) is not None:
      parts.append(f"{label} {machine[key]}")
  return ", ".join(parts)


def _not_run(command: str, path: str, why: str) -> List[str]:
  return [f"Not run yet (`{path}` is {why}). Produce it with:", "",
          f"    {command}", ""]


# ----------------------------------------------------------------------------
# Kernel error.
# ----------------------------------------------------------------------------
def _curve(curves, method="rmf", kernel="exp", allocation=None,
           projection=None, inputs="presbn") -> Optional[dict]:
  for c in curves:
    if (c.get("method"), c.get("kernel"), c.get("allocation"),
        c.get("projection"), c.get("inputs")) == (method, kernel, allocation,
                                                  projection, inputs):
      return c
  return None


def _at(curve: dict, metric: str, dim: int) -> str:
  dims = curve.get("D", [])
  if dim not in dims:
    return "–"
  i = dims.index(dim)
  return _pm(curve[metric]["mean"][i], curve[metric]["std"][i])


def kernel_error_section(docs: str, rel_png: str) -> List[str]:
  path = os.path.join(docs, "kernel_error.json")
  lines = ["## Approximation error of random Maclaurin features", ""]
  data, why = _load_json(path)
  if data is None:
    return lines + _not_run(KERNEL_ERROR_CMD, path, why)
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
  # Table 1: PreSBN, every RMF variant and the baselines.
  rows = []
  for kernel in KERNELS:
    for allocation in ("stratified", "sampled"):
      for projection in ("chained", "independent"):
        c = _curve(curves, kernel=kernel, allocation=allocation,
                   projection=projection)
        if c is None:
          continue
        default = " (default)" if (allocation, projection) == (
            "stratified", "chained") else ""
        paper = " (paper)" if (allocation, projection) == (
            "sampled", "independent") else ""
        rows.append([f"RMF {kernel}", f"{allocation}/{projection}"
                     f"{default}{paper}",
                     _slope(c["kernel_error"]["slope"]),
                     _slope(c["attention_error"]["slope"])] +
                    [_at(c, m, d) for d in REPORT_DIMS
                     for m in ("kernel_error", "attention_error")])
  for method in ("performer", "rfa"):
    c = _curve(curves, method=method)
    if c is not None:
      rows.append([{"performer": "Performer FAVOR+", "rfa": "RFA (Fourier)"}[
          method], "softmax = exp kernel", _slope(c["kernel_error"]["slope"]),
                   _slope(c["attention_error"]["slope"])] +
                  [_at(c, m, d) for d in REPORT_DIMS
                   for m in ("kernel_error", "attention_error")])
  header = (["method", "allocation/projection", "slope K", "slope attn"] +
            [f"{m} D={d}" for d in REPORT_DIMS for m in ("K err", "attn err")])
  lines += ["### With PreSBN", ""] + _table(header, rows) + [""]
  ref = _curve(curves, kernel="exp", allocation="sampled",
               projection="independent")
  if ref is not None and 128 in ref["D"]:
    value = _f(ref["attention_error"]["mean"][ref["D"].index(128)])
    lines += [f"Check against SPEC §6 harness B (exp, D = 128, L = 1024, "
              f"d = 32, PreSBN, non-causal, sampled degrees): "
              f"{_fmt(value)} here vs {HARNESS_B_EXP_D128} there "
              f"(ratio {value / HARNESS_B_EXP_D128:.2f}; SPEC does not state "
              "its v distribution, on which the relative attention error "
              "depends).", ""]
  # Table 2: raw inputs.
  rows = []
  outside = data.get("fraction_outside_radius", {}).get("raw", {})
  for kernel in KERNELS:
    c = _curve(curves, kernel=kernel, allocation="sampled",
               projection="independent", inputs="raw")
    if c is None:
      continue
    rows.append([kernel, _fmt(outside.get(kernel, math.nan)),
                 _slope(c["attention_error_truncated"]["slope"])] +
                [_at(c, m, d) for d in REPORT_DIMS
                 for m in ("attention_error", "attention_error_truncated")] +
                [str(sum(c[m]["nonfinite"] for m in c
                         if isinstance(c[m], dict) and "nonfinite" in c[m]))])
  for method in ("performer", "rfa"):
    c = _curve(curves, method=method, inputs="raw")
    if c is not None:
      rows.append([f"{method} (softmax)", _fmt(outside.get("exp", 0.0)),
                   _slope(c["attention_error_truncated"]["slope"])] +
                  [_at(c, m, d) for d in REPORT_DIMS
                   for m in ("attention_error", "attention_error_truncated")] +
                  [str(sum(c[m]["nonfinite"] for m in c
                           if isinstance(c[m], dict) and "nonfinite" in c[m]))])
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
      "reported as such.", ""] + _table(header, rows) + [""]
  # Table 3: variance.
  var = data.get("variance")
  if var:
    rows = []
    for r in var["rows"]:
      rows.append([
          r["kernel"], r["pairs"], _fmt(r["mean_abs_t"], 2),
          f"{r['empirical_sampled_independent']:.2e}",
          f"{r['formula_sampled_independent']:.2e}",
          f"{r['empirical_sampled_chained']:.2e}",
          f"{r['empirical_stratified_independent']:.2e}",
          f"{r['formula_stratified_independent']:.2e}",
          f"{r['empirical_stratified_chained']:.2e}",
          f"{r['formula_stratified_chained']:.2e}",
          f"{r['chained_over_independent_sampled']:.3f}",
          f"{r['chained_over_independent_stratified']:.3f}",
          f"{r['stratified_over_sampled_chained']:.3f}"])
    header = ["kernel", "pairs", "mean abs t", "sampled/indep.",
              "formula (SPEC §1.3)", "sampled/chained", "stratified/indep.",
              "formula", "stratified/chained", "formula",
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
    lines += _table(header, rows) + [""]
  return lines


# ----------------------------------------------------------------------------
# Attention speed.
# ----------------------------------------------------------------------------
def _variants(rows: List[dict]) -> List[str]:
  names = []
  for row in rows:
    for key, value in row.items():
      if isinstance(value, dict) and "median_ms" in value and key not in names:
        names.append(key)
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
  faster = [l for l, f, s in pts if f < s]
  slower = [l for l, f, s in pts if f >= s]
  length = None
  # The last sign change, if `fast` is faster from there to the end.
  for (l0, f0, s0), (l1, f1, s1) in zip(pts, pts[1:]):
    if f0 >= s0 and f1 < s1 and all(f < s for l, f, s in pts if l >= l1):
      r0, r1 = math.log(f0 / s0), math.log(f1 / s1)
      length = math.exp(math.log(l0) + (math.log(l1) - math.log(l0)) *
                        r0 / (r0 - r1))
  lengths = lambda ls: ", ".join(str(l) for l in ls)
  if not slower:
    text = (f"{fast} is faster than {slow} at every measured length "
            f"(L = {lengths(faster)}); the crossover lies below L = "
            f"{pts[0][0]}")
  elif not faster:
    text = (f"{fast} is not faster than {slow} at any measured length "
            f"(L = {lengths(slower)})")
  else:
    text = (f"{fast} is faster than {slow} at L = {lengths(faster)} and "
            f"not at L = {lengths(slower)}")
    if length is not None:
      text += (f"; it overtakes {slow} at L ≈ {length:.0f} (log-log "
               "interpolation)")
  return length, text


def speed_plot(data: dict, path: str) -> None:
  """fwd+bwd time vs L per variant, log-log, crossover lines."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  rows = sorted(data["rows"], key=lambda r: r["length"])
  fig, ax = plt.subplots(figsize=(7.5, 5))
  for name in _variants(rows):
    pts = [(r["length"], r[name]["median_ms"]) for r in rows if name in r]
    ax.plot(*zip(*pts), marker="o", label=name,
            lw=2.5 if name == "rmfa" else 1.5)
  for slow, color in (("softmax", "C3"), ("performer", "C1")):
    if "rmfa" in _variants(rows) and slow in _variants(rows):
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


def _speed_command(data: dict) -> str:
  if data.get("command"):
    return data["command"]
  shapes = data.get("shapes", {})
  rows = sorted(data.get("rows", []), key=lambda r: r["length"])
  parts = [SPEED_CMD,
           "--lengths " + ",".join(str(r["length"]) for r in rows),
           "--variants " + ",".join(_variants(rows))]
  for key in ("batch", "heads", "head_dim", "num_features"):
    if key in shapes:
      parts.append(f"--{key} {shapes[key]}")
  return " ".join(parts)


def _forward_and_memory_tables(rows: List[dict],
                               variants: List[str]) -> List[str]:
  """Forward-only times and XLA scratch memory, where the JSON has them."""
  lines = []
  if any("fwd_median_ms" in r.get(v, {}) for r in rows for v in variants):
    lines += ["Forward only (ms, median):", ""]
    lines += _table(["L"] + variants, [
        [str(r["length"])] + [f"{r[v]['fwd_median_ms']:.1f}"
                              if v in r else "–" for v in variants]
        for r in rows]) + [""]
  if any("fwd_bwd_temp_bytes" in r.get(v, {}) for r in rows
         for v in variants):
    lines += ["Memory: XLA scratch of the compiled fwd+bwd (MiB; "
              "`memory_analysis().temp_size_in_bytes`; on a GPU the device "
              "peak is in the JSON):", ""]
    lines += _table(["L"] + variants, [
        [str(r["length"])] + [
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
  return lines


def speed_section(docs: str, png_name: str, draw: bool = True) -> List[str]:
  path = os.path.join(docs, "attention_speed.json")
  lines = ["## Attention speed vs sequence length", ""]
  data, why = _load_json(path)
  if data is None or not data.get("rows"):
    return lines + _not_run(SPEED_CMD, path, why or "without rows")
  rows = sorted(data["rows"], key=lambda r: r["length"])
  variants = _variants(rows)
  command = _speed_command(data)
  recorded = "" if data.get("command") else (
      " (reconstructed from the settings in the JSON, which does not record "
      "its command line)")
  lines += [f"Command: `{command}`{recorded}. Machine: "
            f"{_machine(data)}. Measure: {data.get('measure', '?')}.", ""]
  # Speed-ups (base time / variant time) of every variant but softmax
  # against softmax and against Performer.
  ratios = [(v, "softmax") for v in variants
            if "softmax" in variants and v != "softmax"]
  ratios += [("rmfa", base) for base in ("performer", "performer_peer")
             if "rmfa" in variants and base in variants]
  header = (["L"] + [f"{v} ms" for v in variants] +
            [f"{v} speed-up vs {base}" for v, base in ratios])
  table_rows = []
  for r in rows:
    cells = [str(r["length"])]
    cells += [f"{r[v]['median_ms']:.1f}" if v in r else "–" for v in variants]
    cells += [f"{r[base]['median_ms'] / r[v]['median_ms']:.2f}×"
              if v in r and base in r else "–" for v, base in ratios]
    table_rows.append(cells)
  lines += _table(header, table_rows) + [""]
  lines += _forward_and_memory_tables(rows, variants)
  if "rmfa" in variants:
    for slow in ("softmax", "performer"):
      if slow in variants:
        lines.append(f"* {crossover(rows, 'rmfa', slow)[1]}.")
    lines.append("")
  if draw:
    speed_plot(data, os.path.join(docs, png_name))
    lines += [f"![attention time vs L]({png_name})", ""]
  return lines


# ----------------------------------------------------------------------------
# LRA table.
# ----------------------------------------------------------------------------
def lra_section(docs: str) -> List[str]:
  path = os.path.join(docs, "lra_table.md")
  lines = ["## LRA accuracy", ""]
  if not os.path.exists(path):
    return lines + _not_run(LRA_CMD, path, "missing")
  with open(path) as f:
    text = f.read()
  body = []
  for line in text.splitlines():
    if line.startswith("# "):
      continue  # our own section title replaces it
    if line.startswith("#"):
      line = "#" + line  # one level down
    body.append(line)
  return lines + body + [""]


TRAIN_STEP_CMD = ("python benchmarks/train_step_speed.py --task=listops "
                  "--preset=lra --max_len=2000 --batch_size=2 --steps=3 "
                  "--attentions=softmax,macformer_exp,performer,rfa,linear")


def train_step_section(docs: str) -> List[str]:
  """One full LRA training step per attention (train_step_speed.json)."""
  path = os.path.join(docs, "train_step_speed.json")
  lines = ["## One LRA training step per attention", ""]
  data, error = _load_json(path)
  if data is None:
    return lines + _not_run(TRAIN_STEP_CMD, path, error or "missing")
  rows = data["results"]
  base = {r["attention"]: r["s_per_step"] for r in rows}
  lines += [f"`{data.get('command', TRAIN_STEP_CMD)}`", "",
            f"Task {data['task']}, preset {data['preset']}, {data['dtype']}, "
            f"device {data['device']}, host {data['host']}, jax "
            f"{data['jax']}: forward, backward and AdamW update of the whole "
            "model on random tokens; the first step (compilation) is timed "
            "apart.", ""]
  header = ["attention", "params", "batch", "L", "s/step", "steps/s",
            "vs softmax", "first step (s)"]
  table = []
  for r in rows:
    speedup = (f"{base['softmax'] / r['s_per_step']:.2f}x"
               if "softmax" in base else "-")
    table.append([r["attention"], f"{r['num_params']:,}",
                  str(r["batch_size"]), str(r["max_len"]),
                  f"{r['s_per_step']:.3f}", f"{r['steps_per_sec']:.3f}",
                  speedup, f"{r['first_step_s']:.1f}"])
  return lines + _table(header, table) + [""]


def temperature_section(docs: str) -> List[str]:
  """Accuracy vs q/k scale per kernel (docs/temperature.json), in short."""
  path = os.path.join(docs, "temperature.json")
  lines = ["## The q/k scale (temperature) of Macformer", ""]
  if not os.path.exists(path):
    return []
  data, error = _load_json(path)
  if data is None:
    return lines + _not_run(TEMPERATURE_CMD, path, error)
  setup = data["setup"]
  lines += [f"`{TEMPERATURE_CMD}`; details, variance cost and plot: "
            "[TEMPERATURE.md](TEMPERATURE.md). Reduced ListOps (L = 256), "
            f"{setup['steps']} steps; test accuracy (%), mean ± std over "
            "seeds; paired difference to the authors' default Dh^-1/4 with "
            "the same seed (95% t-interval).", ""]
  rows = []
  for r in data["summary"]:
    scale = ("learned" if r["setting"] == "learn" else
             "-" if r["kernel"] == "softmax" else f"{r['scale']:.2f}")
    if "learned_scale_mean" in r:
      scale = f"learned ({r['learned_scale_mean']:.2f})"
    diff = "-"
    if "paired_diff" in r:
      d = r["paired_diff"]
      diff = (f"{100 * d['mean']:+.1f} [{100 * d['ci95'][0]:+.1f}, "
              f"{100 * d['ci95'][1]:+.1f}]")
    rows.append([r["kernel"], r["setting"], scale, str(len(r["seeds"])),
                 _pm(100 * r["test_mean"], None if r["test_std"] is None
                     else 100 * r["test_std"]), diff])
  return lines + _table(["kernel", "setting", "s", "seeds", "test acc.",
                         "vs default"], rows) + [""]


def gpu_suite_section(docs: str) -> List[str]:
  """What benchmarks/gpu_suite.sh produced (docs/gpu_suite.json)."""
  path = os.path.join(docs, "gpu_suite.json")
  lines = ["## GPU suite", ""]
  if not os.path.exists(path):
    return []
  data, error = _load_json(path)
  if data is None:
    return lines + _not_run(GPU_SUITE_CMD, path, error)
  lines += [f"`{GPU_SUITE_CMD}` on {data['device']}, {data['date']} (commit "
            f"{data['commit']}): {data['total_s']} s of a {data['budget_s']}"
            f" s budget, exit status {data['status']}.", ""]
  rows = [[st["stage"], str(st["rc"]), str(st["seconds"]),
           st.get("json", st.get("skipped", ""))] for st in data["stages"]]
  return lines + _table(["stage", "exit", "seconds", "output"], rows) + [""]


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
  lines += train_step_section(docs)
  lines += lra_section(docs)
  lines += spectral_report.section(docs)
  lines += temperature_section(docs)
  lines += gpu_suite_section(docs)
  return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> str:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--docs", default="docs",
                      help="folder with the inputs; the report goes there")
  parser.add_argument("--out", default=None,
                      help="output path (default <docs>/BENCHMARKS.md; '-' "
                           "for stdout)")
  args = parser.parse_args(argv)
  text = build(args.docs)
  out = args.out or os.path.join(args.docs, "BENCHMARKS.md")
  if out == "-":
    print(text)
  else:
    with open(out, "w") as f:
      f.write(text)
    print(f"wrote {out}")
  return text


if __name__ == "__main__":
  main()
