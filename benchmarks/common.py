"""What the benchmark scripts share: JSON, run records, machine info,
Markdown tables and templates, number formats, log-log slopes, pyplot."""

from collections.abc import Sequence
import datetime
import json
import math
import os
import platform
import re
import sys
import time
from typing import Any

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_json(path: str) -> tuple[Any | None, str | None]:
  """(data, None), or (None, why the file is unusable)."""
  if not os.path.exists(path):
    return None, "missing"
  try:
    with open(path) as f:
      return json.load(f), None
  except (OSError, json.JSONDecodeError) as e:
    return None, f"unreadable ({e})"


def read_run(workdir: str) -> tuple[dict | None, list, list]:
  """A run_lra.py workdir: (results.json or None, the eval curve [[step,
  accuracy], ...], the train steps/s of metrics.jsonl)."""
  results, _ = load_json(os.path.join(workdir, "results.json"))
  path, rows = os.path.join(workdir, "metrics.jsonl"), []
  if os.path.exists(path):
    with open(path) as f:
      rows = [json.loads(line) for line in f]
  curve = [[r["step"], r["accuracy"]] for r in rows if r.get("split") == "eval"]
  train = [r for r in rows if r.get("split") == "train"]
  speed = [r["steps_per_sec"] for r in train if "steps_per_sec" in r]
  return results, curve, speed


def dumps(data: Any) -> str:
  """Indented JSON with every flat list of scalars on one line."""
  one_line = lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]"
  text = json.dumps(data, indent=1)
  return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", one_line, text) + "\n"


def write(path: str, text: str) -> None:
  """Writes `text` to `path`, creating its folder; '-' prints it."""
  if path == "-":
    print(text)
    return
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    f.write(text)
  print(f"wrote {path}")


def num(x: float):
  """JSON-safe number, 5 significant digits; non-finite -> 'inf'/'nan'."""
  return float(f"{x:.5g}") if math.isfinite(x := float(x)) else str(x)


def as_float(x: Any) -> float:
  """Inverse of `num` (numbers, None and the strings)."""
  return math.nan if x is None else float(x)


def fmt(x: Any, digits: int = 3) -> str:
  """A number in `digits` significant digits, in e-notation when tiny/huge."""
  v = as_float(x)
  if math.isfinite(v) and v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-3):
    return f"{v:.{digits - 1}e}"
  return f"{v:.{digits}g}"


def pm(mean: Any, std: Any) -> str:
  """'mean ± std' with the std at the mean's decimal places."""
  m, sd = as_float(mean), as_float(std)
  if not (math.isfinite(m) and math.isfinite(sd)):
    return fmt(mean)
  if m == 0 or abs(m) >= 1e4 or abs(m) < 1e-3:
    return f"{m:.2e} ± {sd:.1e}"
  decimals = max(0, 2 - math.floor(math.log10(abs(m))))
  return f"{m:.{decimals}f} ± {sd:.{decimals}f}"


def pct(x: float | None, digits: int = 2) -> str:
  """A fraction in [0, 1] in percent; '–' for None."""
  return "–" if x is None else f"{100 * x:.{digits}f}"


def templates(name: str) -> dict[str, str]:
  """The sections of benchmarks/templates/<name>.md, each started by a line
  `<!-- key -->` and stripped: `str.format` templates of page prose, or
  of a table (two lines: see `format_table`)."""
  with open(os.path.join(REPO, "benchmarks", "templates", name + ".md")) as f:
    parts = re.split(r"^<!-- (\w+) -->$", f.read(), flags=re.M)
  return {k: v.strip() for k, v in zip(parts[1::2], parts[2::2], strict=True)}


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
  """A Markdown table as lines."""
  line = lambda cells: "| " + " | ".join(str(c) for c in cells) + " |"
  return [line(header), "|" + "---|" * len(header)] + list(map(line, rows))


def format_table(spec: str, items: Sequence[Any], **fields) -> list[str]:
  """A Markdown table from a template of two lines (see `templates`): the
  header row, formatted with `fields`, and a row of `str.format` cells,
  filled from each item (a mapping)."""
  head, row = (line[2:-2].split(" | ") for line in spec.splitlines())
  cells = [[cell.format_map(item) for cell in row] for item in items]
  return table([h.format(**fields) for h in head], cells)


def fit_slope(dims, values, above: float = 0) -> float | None:
  """Least-squares slope of log(value) vs log(dim), over dims > `above`
  with finite positive values (None if fewer than two)."""
  x, y = np.asarray(dims, float), np.array(list(map(as_float, values)))
  ok = (x > above) & np.isfinite(y) & (y > 0)
  if ok.sum() < 2:
    return None
  return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def machine() -> dict:
  """The device, host and versions a measurement ran on."""
  import jax  # pylint: disable=g-import-not-at-top

  return {
    "device": f"{jax.devices()[0].platform}:{jax.devices()[0].device_kind}",
    "host": platform.processor() or platform.machine(),
    "cpu_count": os.cpu_count(),
    "jax": jax.__version__,
    "python": platform.python_version(),
  }


def machine_line(m: dict) -> str:
  """A `machine()` record in words: 'cpu:cpu, host x86_64, cores 2, jax 0.4'."""
  keys = (("host", "host"), ("cpu_count", "cores"), ("jax", "jax"))
  parts = [f"{k} {m[key]}" for key, k in keys if m.get(key) is not None]
  return ", ".join([str(m.get("device", "?")), *parts])


def host() -> dict:
  """The platform and CPU count (the CPU-only studies' machine)."""
  return {"platform": platform.platform(), "cpus": os.cpu_count()}


def now() -> str:
  return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def command(module: str, argv: Sequence[str] | None) -> str:
  """The command line that ran `benchmarks.<module>` with `argv`."""
  args = list(sys.argv[1:] if argv is None else argv)
  quote = lambda a: f"'{a}'" if any(c in a for c in "*?[ ") else a
  return " ".join([f"python -m benchmarks.{module}", *map(quote, args)])


def pyplot():
  """matplotlib.pyplot on the headless Agg backend."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  return plt


def savefig(fig, path: str, dpi: int = 110, **layout) -> None:
  """Lays out (`fig.tight_layout(**layout)`), writes and closes a figure."""
  fig.tight_layout(**layout)
  fig.savefig(path, dpi=dpi)
  pyplot().close(fig)


def time_call(fn, args: Sequence[Any], repeats: int = 1) -> list[float]:
  """Seconds of `repeats` calls of fn(*args), each waited for."""
  import jax  # pylint: disable=g-import-not-at-top

  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return times


def matmul_gflops(size: int = 2048, repeats: int = 5, reduce=min) -> float:
  """This process's float32 matmul throughput (GFLOP/s), the roofline."""
  import jax  # pylint: disable=g-import-not-at-top

  a = jax.random.normal(jax.random.key(0), (size, size))
  fn = jax.jit(lambda a: a @ a)
  jax.block_until_ready(fn(a))
  return 2 * size**3 / reduce(time_call(fn, (a,), repeats)) / 1e9


# --- bench_t3 ---
def flags(doc: str, **defaults):
  """An argparse parser described by `doc`'s first line, with one flag
  `--<name>` per keyword, of its default's type."""
  import argparse  # pylint: disable=g-import-not-at-top

  parser = argparse.ArgumentParser(description=doc.splitlines()[0])
  for name, default in defaults.items():
    parser.add_argument(f"--{name}", type=type(default), default=default)
  return parser


def interleaved(calls: dict, repeats: int) -> dict[Any, list[float]]:
  """Seconds of each {key: (fn, args)} per repeat, the keys alternating
  within each repeat, each timed call after an untimed one (the call before
  may have freed GBs: the page faults of reusing them are not its cost)."""
  import jax  # pylint: disable=g-import-not-at-top

  times = {key: [] for key in calls}
  for _ in range(repeats):
    for key, (fn, args) in calls.items():
      jax.block_until_ready(fn(*args))
      times[key] += time_call(fn, args)
  return times
