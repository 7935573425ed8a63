r"""Our LRA runs beside the published LRA numbers, as a Markdown table.

  python -m benchmarks.lra_table 'runs/*/results.json'   # docs/lra_table.md
  python -m benchmarks.lra_table runs/a runs/b --out -     # to stdout

Arguments: results.json files (`train_and_evaluate`), run folders holding
one, or quoted glob patterns. Published numbers: benchmarks/lra_published.json
(with its sources). Preset `lra` is shown beside the original LRA harness
(Tay et al. 2021), preset `macformer` beside the Skyformer-family PyTorch
harness Macformer used; never in one table (docs/METHOD.md §8.6). A run is
*full-scale* when it is not `smoke` and its config equals what
`configs/<task>.py:<attention>,preset=<preset>` builds today on every
`SCALE_KEYS`; else *reduced*, with the keys that differ. Cells are
`last / best`: test accuracy (%) of the last checkpoint (as LRA reported)
and of the best-validation one (as the Skyformer family reported), mean over
runs. `--progress` adds runs in progress (benchmarks.full_length's JSON) in
a table of their own and draws their curves to `--curves`. The prose is in
benchmarks/templates/lra_table.md.
"""

import argparse
from collections.abc import Sequence
import dataclasses
import datetime
import glob
import importlib
import json
import os
import sys
from typing import Any

from benchmarks import common
from benchmarks.common import pct

PUBLISHED = os.path.join(common.REPO, "benchmarks", "lra_published.json")
TASKS = ("listops", "text", "retrieval", "image", "pathfinder")
TASK_TITLES = {t: "ListOps" if t == "listops" else t.title() for t in TASKS}
FAMILY_OF_PRESET = {"lra": "lra_original", "macformer": "skyformer_pytorch"}
FAMILY_TITLES = {
  "lra_original": "Original LRA harness (Tay et al. 2021)",
  "skyformer_pytorch": "Skyformer-family PyTorch harness "
  "(the harness Macformer used)",
}
REQUIRED = (
  "task",
  "attention",
  "steps",
  "test_accuracy",
  "test_accuracy_best_eval",
  "config",
  "config.data.max_len",
  "config.data.batch_size",
  "config.train.num_train_steps",
)
SCALE_KEYS = (
  "data.max_len",
  "data.batch_size",
  "train.num_train_steps",
  "model.emb_dim",
  "model.num_layers",
  "model.num_heads",
  "model.qkv_dim",
  "model.mlp_dim",
  "attention.options.num_features",
)
DISPLAY = {
  "transformer": "Transformer",
  "self_attention": "Self-Attention",
  "bigbird": "BigBird",
  "nystromformer": "Nyströmformer",
  "linear_transformer": "Linear Transformer",
  "kernelized_attention": "Kernelized Attention (Gaussian)",
}
GENERATED_MARK = "†"  # a cell whose test split was generated offline
# Our attention -> the published row of the same method (progress table).
PUBLISHED_ROW = {
  "softmax": ("self_attention", "transformer"),
  "performer": ("performer",),
  "linear": ("linear_transformer",),
}
PROGRESS_FIELDS = (
  "task",
  "attention",
  "preset",
  "steps_done",
  "preset_steps",
  "eval_curve",
)
T = common.templates("lra_table")


class ResultsError(ValueError):
  """A results file that cannot be used; the message names the file."""


def _get(tree: Any, dotted: str) -> Any:
  """tree['a']['b'] for 'a.b'; KeyError if any level is missing."""
  for part in dotted.split("."):
    if not isinstance(tree, dict) or part not in tree:
      raise KeyError(dotted)
    tree = tree[part]
  return tree


def _read_json(path: str, what: str = "") -> Any:
  """The parsed JSON file at `path`; ResultsError naming the file if not."""
  try:
    with open(path) as f:
      return json.load(f)
  except OSError as e:
    raise ResultsError(f"{path}: cannot read {what}({e.strerror})") from e
  except json.JSONDecodeError as e:
    raise ResultsError(f"{path}: not valid JSON ({e})") from e


def find_results(patterns: Sequence[str]) -> list[str]:
  """results.json paths from files, run folders and glob patterns; a path
  that does not exist, a folder without results.json or a pattern that
  matches nothing raises ResultsError."""
  paths = []
  for pattern in patterns:
    matches = [pattern]
    if any(ch in pattern for ch in "*?["):
      # A pattern skips an unfinished run's progress record (reduced_results
      # keeps it beside the results as <run>.progress.json).
      matches = sorted(glob.glob(pattern, recursive=True))
      matches = [p for p in matches if not p.endswith(".progress.json")]
      if not matches:
        raise ResultsError(f"{pattern}: no file matches this pattern")
    for path in matches:
      if os.path.isdir(path):
        path = os.path.join(path, "results.json")
        if not os.path.isfile(path):
          raise ResultsError(
            f"{os.path.dirname(path)}: directory has no results.json (the "
            "run did not finish, or this is not a workdir)"
          )
      elif not os.path.exists(path):
        raise ResultsError(f"{path}: no such file")
      paths += [] if path in paths else [path]
  return paths


@dataclasses.dataclass
class Run:
  """One results.json, with its scale verdict."""

  path: str
  task: str
  attention: str
  preset: str
  steps: int
  last: float  # test accuracy of the last checkpoint, in [0, 1]
  best: float  # of the best-eval checkpoint
  best_step: int | None
  max_len: int
  data: str  # 'files' or 'generated'
  full_scale: bool | None  # None: no reference config for this task
  differences: list[str]

  @property
  def family(self) -> str:
    return FAMILY_OF_PRESET.get(self.preset, f"preset_{self.preset}")

  @property
  def scale(self) -> str:
    return {None: "unknown", True: "full", False: "reduced"}[self.full_scale]


def reference_config(task: str, attention: str, preset: str) -> dict | None:
  """What configs/<task>.py builds for this preset (None: no such module);
  an attention it does not know falls back to the default one."""
  try:
    module = importlib.import_module(f"configs.{task}")
  except ImportError:
    return None
  try:
    return module.get_config(f"{attention},preset={preset}").to_dict()
  except ValueError:
    return module.get_config(f"preset={preset}").to_dict()


def scale_differences(config: dict, reference: dict) -> list[str]:
  """'key value (preset: ref)' for every scale key that differs."""
  out = []
  for key in SCALE_KEYS:
    try:
      ref, value = _get(reference, key), _get(config, key)
    except KeyError:
      continue  # e.g. no num_features for softmax
    if value != ref:
      out.append(f"{key}={value} (preset: {ref})")
  return out


def _check(path: str, data: Any) -> None:
  """ResultsError naming the file and field if `data` is no results.json."""
  if not isinstance(data, dict):
    kind = type(data).__name__
    raise ResultsError(f"{path}: expected a JSON object, got {kind}")
  for field in REQUIRED:
    try:
      _get(data, field)
    except KeyError:
      raise ResultsError(
        f"{path}: missing field '{field}' (lra_table needs "
        f"{', '.join(REQUIRED)}; macformer_jax.training writes them)"
      ) from None
  for field in ("test_accuracy", "test_accuracy_best_eval"):
    value = data[field]
    if not isinstance(value, int | float) or isinstance(value, bool):
      raise ResultsError(
        f"{path}: field '{field}' must be a number, got {value!r}"
      )
    if not 0.0 <= value <= 1.0:
      raise ResultsError(
        f"{path}: field '{field}' = {value} is not a fraction in [0, 1] "
        "(results.json stores accuracies as fractions)"
      )


def load_run(path: str) -> Run:
  """Reads and checks one results.json (ResultsError naming the file and
  the field on any problem)."""
  data = _read_json(path)
  _check(path, data)
  config = data["config"]
  preset = data.get("preset", config.get("preset"))
  if preset is None:
    raise ResultsError(f"{path}: missing field 'preset' (nor config.preset)")
  reference = reference_config(data["task"], data["attention"], preset)
  if reference is None:
    full, diffs = None, [f"no configs/{data['task']}.py to compare with"]
  else:
    diffs = ["smoke"] if data.get("smoke", config.get("smoke")) else []
    diffs += scale_differences(config, reference)
    full = not diffs
  return Run(
    path=path,
    task=data["task"],
    attention=data["attention"],
    preset=preset,
    steps=int(data["steps"]),
    last=float(data["test_accuracy"]),
    best=float(data["test_accuracy_best_eval"]),
    best_step=data.get("best_eval_step"),
    max_len=int(_get(config, "data.max_len")),
    data="files" if config.get("data", {}).get("data_dir") else "generated",
    full_scale=full,
    differences=diffs,
  )


def load_published(path: str = PUBLISHED) -> dict[str, Any]:
  """The published tables (see benchmarks/lra_published.json)."""
  published = _read_json(path, "published numbers ")
  for key in ("columns", "tables"):
    if key not in published:
      raise ResultsError(f"{path}: missing field '{key}'")
  return published


def load_progress(path: str) -> dict[str, Any]:
  """One progress JSON of benchmarks.full_length, checked."""
  data = _read_json(path)
  for field in PROGRESS_FIELDS:
    if field not in data:
      raise ResultsError(
        f"{path}: missing field '{field}' (a progress file "
        "of benchmarks/full_length.py?)"
      )
  return dict(data, path=path)


# ----------------------------------------------------------------------------
# Rendering.
# ----------------------------------------------------------------------------
def _scale(scale: str) -> str:
  return "**full**" if scale == "full" else f"*{scale}*"


def _cell(group: list[Run]) -> str:
  """`last / best` (mean over the runs), marks and the number of runs."""
  mean = lambda key: pct(sum(getattr(r, key) for r in group) / len(group))
  mark = any(r.data == "generated" for r in group) * GENERATED_MARK
  n = f" (n={len(group)})" if len(group) > 1 else ""
  return f"{mean('last')} / {mean('best')}{mark}{n}" if group else "–"


def _ours_rows(runs: list[Run]) -> list[list[str]]:
  """One row per (attention, scale): `last / best` per task (mean of runs)."""
  groups: dict[tuple[str, str], dict[str, list[Run]]] = {}
  for run in runs:
    by_task = groups.setdefault((run.attention, run.scale), {})
    by_task.setdefault(run.task, []).append(run)
  rows = []
  for (attention, scale), by_task in sorted(groups.items()):
    lasts = [
      sum(r.last for r in g) / len(g) for g in map(by_task.get, TASKS) if g
    ]
    avg = pct(sum(lasts) / len(lasts)) if len(lasts) == len(TASKS) else "–"
    extra = ",".join(sorted(t for t in by_task if t not in TASKS))
    name = f"{attention} (ours)" + (f" +{extra}" if extra else "")
    cells = [_cell(by_task.get(task, [])) for task in TASKS]
    rows.append([name, "this repo", _scale(scale), *cells, avg])
  return rows


def _published_rows(published: dict, tables: list[dict]) -> list[list[str]]:
  rows = []
  for t in tables:
    for name, values in t["rows"].items():
      value = dict(zip(published["columns"], values, strict=False))
      cells = [value.get(c) for c in TASKS + ("avg",)]
      title = DISPLAY.get(name, name.replace("_", " ").title())
      rows.append([title, f"[{t['id']}](#sources)", "published"])
      rows[-1] += ["–" if v is None else f"{v:.2f}" for v in cells]
  return rows


def _published_twin(
  p: dict[str, Any], published: dict[str, Any], family: str
) -> tuple[float, str] | None:
  """(accuracy %, table id) of the same method and task in `family`."""
  twin = None
  for table in published["tables"]:
    for name in PUBLISHED_ROW.get(p["attention"], ()):
      if table.get("harness") == family and name in table["rows"]:
        row = zip(published["columns"], table["rows"][name], strict=False)
        value = dict(row).get(p["task"])
        twin = twin if value is None else (float(value), table["id"])
  return twin


def _train_curve(p: dict[str, Any]) -> list[tuple[int, float, float]]:
  """(step, loss, accuracy) rows of a progress file, complete ones only."""
  rows = p.get("train_curve", [])
  return [tuple(row) for row in rows if None not in row[1:3]]


def plot_progress(
  progress: list[dict[str, Any]], published: dict[str, Any], path: str
) -> None:
  """Train loss; train accuracy (faint), val accuracy (dots) and the same
  method's published test accuracy (dashed), one colour per run."""
  plt = common.pyplot()
  fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
  runs = sorted(progress, key=lambda p: (p["task"], p["attention"]))
  one_task = len({p["task"] for p in runs}) == 1
  for i, p in enumerate(runs):
    color = f"C{i}"
    name = p["attention"] + ("" if one_task else f" {p['task']}")
    train = _train_curve(p)
    if train:
      steps, losses, accs = zip(*train, strict=False)
      label = f"{name} ({p['steps_done']}/{p['preset_steps']} steps)"
      ax_loss.plot(steps, losses, color=color, label=label)
      ax_acc.plot(steps, [100 * a for a in accs], color=color, alpha=0.35, lw=1)
    if p["eval_curve"]:
      steps, accs = zip(*p["eval_curve"], strict=False)
      acc = [100 * a for a in accs]
      ax_acc.plot(steps, acc, "o-", color=color, label=f"{name}: val")
    family = FAMILY_OF_PRESET.get(p["preset"], p["preset"])
    twin = _published_twin(p, published, family)
    if twin:
      label = f"{name}: published test ({twin[1]})"
      ax_acc.axhline(twin[0], color=color, ls="--", lw=1, label=label)
  note = ", ".join(
    f"preset {n}: {s} steps"
    for n, s in sorted({(p["preset"], p["preset_steps"]) for p in runs})
  )
  for ax, ylabel in (
    (ax_loss, "train loss (window mean)"),
    (ax_acc, "accuracy (%)"),
  ):
    ax.set_xlabel(f"training step ({note})")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  title = "train (faint), val (dots), published test (dashed)"
  ax_acc.set_title(title, fontsize=9)
  common.savefig(fig, path)


def _progress_item(p: dict[str, Any], published: dict, family: str) -> dict:
  """The cells of one run in progress: steps done, val curve, published
  twin."""
  done, total, curve = p["steps_done"], p["preset_steps"], p["eval_curve"]
  at = lambda c: f"{pct(c[1], 1)} (step {c[0]})" if c else "–"
  test = "–"
  if p.get("finished") and "test_accuracy" in p:
    test = f"{pct(p['test_accuracy'])} / "
    test += pct(p.get("test_accuracy_best_eval"))
    test += f" (after {done} steps)" if done < total else ""
  scale = f"{done}/{total} steps ({100 * done / max(total, 1):.0f}%)"
  scale += f", L={p['max_len']}" if p.get("max_len") else ""
  train, twin = _train_curve(p), _published_twin(p, published, family)
  step, loss, acc = train[-1] if train else (None, None, None)
  return dict(
    p,
    task=TASK_TITLES.get(p["task"], p["task"]),
    scale=scale,
    train=f"{loss:.3f} / {pct(acc, 1)} (step {step})" if train else "–",
    last=at(curve[-1] if curve else None),
    best=at(max(curve, key=lambda c: c[1]) if curve else None),
    test=test,
    twin="–" if twin is None else f"{twin[0]:.2f} ([{twin[1]}](#sources))",
    curve=" ".join(f"{s}:{100 * a:.1f}" for s, a in curve) or "–",
  )


def _family(family, runs, published, progress, curves) -> list[str]:
  """The section of one harness family: our runs beside its published
  tables, then its runs in progress."""
  ours = [r for r in runs if r.family == family]
  tables = [t for t in published["tables"] if t.get("harness") == family]
  if not ours and not tables:
    return []
  presets = [p for p, f in FAMILY_OF_PRESET.items() if f == family]
  preset = presets[0] if presets else family.replace("preset_", "")
  title = f"Preset {preset} (no published harness family)"
  lines = [f"## {FAMILY_TITLES.get(family, title)}: our preset `{preset}`", ""]
  families = published.get("harness_families", {})
  description = families.get(family, {}).get("description")
  lines += [description, ""] if description else []
  mine = [p for p in progress if FAMILY_OF_PRESET.get(p["preset"]) == family]
  if not ours:
    more = "; the runs in progress are below the table." if mine else "."
    lines += [T["no_runs"].format(preset=preset, more=more), ""]
  header = ["model", "source", "scale", *TASK_TITLES.values(), "Avg"]
  rows = _ours_rows(ours) + _published_rows(published, tables)
  lines += common.table(header, rows) + [""]
  if mine:
    mine.sort(key=lambda p: (p["task"], p["attention"]))
    items = [_progress_item(p, published, family) for p in mine]
    lines += [T["progress"].format(preset=preset), ""]
    lines += common.format_table(T["progress_table"], items) + [""]
    if curves:
      lines += [f"![training curves of the runs in progress]({curves})", ""]
  return lines


def render(
  runs: list[Run],
  published: dict[str, Any],
  command: str | None = None,
  progress: list[dict[str, Any]] | None = None,
  curves: str | None = None,
) -> str:
  """The Markdown document: one table per harness family, then every run;
  `curves` is the progress plot's path relative to the document."""
  lines = [T["page"], ""]
  if command:
    date = datetime.date.today().isoformat()
    lines += [T["generated"].format(command=command, date=date), ""]
  lines += [T["legend"].format(mark=GENERATED_MARK), ""]
  others = sorted({r.family for r in runs} - set(FAMILY_TITLES))
  for family in list(FAMILY_TITLES) + others:
    lines += _family(family, runs, published, progress or [], curves)
  items = [
    dict(vars(r), scale=_scale(r.scale), last=pct(r.last))
    | dict(check="; ".join(r.differences) or "matches the preset")
    | dict(
      best=pct(r.best)
      + ("" if r.best_step is None else f" (step {r.best_step})")
    )
    for r in sorted(runs, key=lambda r: (r.family, r.task, r.attention, r.path))
  ]
  table = common.format_table(T["runs_table"], items)
  lines += ["## Runs", ""] + (table if items else ["No results.json given."])
  lines += ["", "## Sources", ""] + [
    f"* `{t['id']}` ({t.get('harness', '?')}): "
    f"{t['source']} {t.get('notes', '')}".rstrip()
    for t in published["tables"]
  ]
  return "\n".join(lines + [T["sources"], ""])


def main(argv: Sequence[str] | None = None) -> str:
  parser = argparse.ArgumentParser(
    description=__doc__.splitlines()[0],
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument(
    "results", nargs="*", help="results.json files, run dirs or glob patterns"
  )
  parser.add_argument(
    "--out", default="docs/lra_table.md", help="Markdown ('-' for stdout)"
  )
  parser.add_argument(
    "--progress",
    nargs="*",
    default=[],
    help="progress JSON files of benchmarks.full_length "
    "(glob patterns allowed; none matching is fine)",
  )
  parser.add_argument(
    "--curves",
    default=None,
    help="the progress runs' curves (PNG; default "
    "lra_progress.png beside --out; '': none)",
  )
  args = parser.parse_args(argv)
  if args.curves is None and args.out != "-":
    args.curves = os.path.join(os.path.dirname(args.out), "lra_progress.png")
  try:
    runs = [load_run(p) for p in find_results(args.results)]
    progress = [
      load_progress(p)
      for pattern in args.progress
      for p in sorted(glob.glob(pattern))
    ]
    published = load_published()
    curves = None
    if progress and args.curves:
      os.makedirs(os.path.dirname(os.path.abspath(args.curves)), exist_ok=True)
      plot_progress(progress, published, args.curves)
      curves = os.path.basename(args.curves)
      if args.out != "-":
        out = os.path.dirname(os.path.abspath(args.out))
        curves = os.path.relpath(os.path.abspath(args.curves), out)
    command = common.command("lra_table", argv)
    text = render(runs, published, command, progress, curves)
  except ResultsError as e:
    if argv is None:  # command line: one clear line, no traceback
      sys.exit(f"lra_table: {e}")
    raise
  common.write(args.out, text)
  return text


if __name__ == "__main__":
  main()
