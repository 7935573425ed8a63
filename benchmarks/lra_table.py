r"""Our LRA runs beside the published LRA numbers, as a Markdown table.

  python benchmarks/lra_table.py 'runs/*/results.json'   # docs/lra_table.md
  python benchmarks/lra_table.py runs/a runs/b --out -     # to stdout

Arguments are `results.json` files (written by
`macformer_jax.training.train_and_evaluate`), run directories that hold one,
or glob patterns of either (quote them; `**` recurses). Published numbers
come from `benchmarks/lra_published.json`, which cites its sources and names
the harness family of every table.

**Harness families.** Our preset `lra` reproduces the original LRA harness
(Tay et al. 2021) and is shown beside that table; our preset `macformer`
reproduces the Skyformer-family PyTorch harness that Macformer used and is
shown beside the Skyformer table. The two families differ in model size,
pooling, sequence length and (for ListOps) tokenisation, so their numbers are
never put in one table (docs/METHOD.md §8.6).

**Full-scale rule.** A run is *full-scale* when it is not a `smoke` run and its
config equals its preset's published setting on every scale key: the config
that `configs/<task>.py:<attention>,preset=<preset>` builds today, compared
on data.max_len, data.batch_size, train.num_train_steps, model.emb_dim,
model.num_layers, model.num_heads, model.qkv_dim, model.mlp_dim and
attention.options.num_features (where both have it). Anything else is
*reduced*, and the table says which keys differ. The `data` column says
whether the test split came from files (`data.data_dir`, the release) or
was generated offline (ListOps: a fresh draw of the release's distribution,
not the release's test set).

`--progress` adds runs still in progress (the JSON files
benchmarks/full_length.py writes: steps done of the preset's, eval curve),
in a table of their own under their harness family, beside the published
ListOps numbers of the same attention, marked by the fraction of the
preset's steps they have done, and draws their curves (train loss; train and
val accuracy beside the published number) to `--curves` (default
lra_progress.png beside the table), linked under that table.

Cells of our runs are `last / best`: test accuracy (%) of the last checkpoint
(what LRA reported) and of the best-validation checkpoint (what the
Skyformer-family harness reported). Several runs of one (attention, preset,
scale, task) are averaged, with their count.
"""

import argparse
import dataclasses
import datetime
import glob
import importlib
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

PUBLISHED = os.path.join(REPO, "benchmarks", "lra_published.json")
TASKS = ("listops", "text", "retrieval", "image", "pathfinder")
TASK_TITLES = {"listops": "ListOps", "text": "Text", "retrieval": "Retrieval",
               "image": "Image", "pathfinder": "Pathfinder"}
FAMILY_OF_PRESET = {"lra": "lra_original", "macformer": "skyformer_pytorch"}
FAMILY_TITLES = {"lra_original": "Original LRA harness (Tay et al. 2021)",
                 "skyformer_pytorch": "Skyformer-family PyTorch harness "
                                      "(the harness Macformer used)"}
# Fields every results.json must have ("a.b" = nested under a).
REQUIRED = ("task", "attention", "steps", "test_accuracy",
            "test_accuracy_best_eval", "config", "config.data.max_len",
            "config.data.batch_size", "config.train.num_train_steps")
SCALE_KEYS = ("data.max_len", "data.batch_size", "train.num_train_steps",
              "model.emb_dim", "model.num_layers", "model.num_heads",
              "model.qkv_dim", "model.mlp_dim",
              "attention.options.num_features")
DISPLAY = {"transformer": "Transformer", "self_attention": "Self-Attention",
           "bigbird": "BigBird", "nystromformer": "Nyströmformer",
           "linear_transformer": "Linear Transformer",
           "kernelized_attention": "Kernelized Attention (Gaussian)"}


GENERATED_MARK = "†"  # a cell whose test split was generated offline
# Our attention -> the published row of the same method (progress table).
PUBLISHED_ROW = {"softmax": ("self_attention", "transformer"),
                 "performer": ("performer",), "linear": ("linear_transformer",)}


class ResultsError(ValueError):
  """A results file that cannot be used; the message names the file."""


def _get(tree: Any, dotted: str) -> Any:
  """tree['a']['b'] for 'a.b'; KeyError if any level is missing."""
  for part in dotted.split("."):
    if not isinstance(tree, dict) or part not in tree:
      raise KeyError(dotted)
    tree = tree[part]
  return tree


def find_results(patterns: Sequence[str]) -> List[str]:
  """results.json paths from files, run directories and glob patterns.

  Raises:
    ResultsError: a path that does not exist, a directory without
      results.json, or a pattern that matches nothing.
  """
  paths = []
  for pattern in patterns:
    if any(ch in pattern for ch in "*?["):
      matches = sorted(glob.glob(pattern, recursive=True))
      if not matches:
        raise ResultsError(f"{pattern}: no file matches this pattern")
    else:
      matches = [pattern]
    for path in matches:
      if os.path.isdir(path):
        candidate = os.path.join(path, "results.json")
        if not os.path.isfile(candidate):
          raise ResultsError(f"{path}: directory has no results.json (the "
                             "run did not finish, or this is not a workdir)")
        path = candidate
      elif not os.path.exists(path):
        raise ResultsError(f"{path}: no such file")
      if path not in paths:
        paths.append(path)
  return paths


@dataclasses.dataclass
class Run:
  """One results.json, with its scale verdict."""
  path: str
  task: str
  attention: str
  preset: str
  smoke: bool
  steps: int
  last: float  # test accuracy of the last checkpoint, in [0, 1]
  best: float  # of the best-eval checkpoint
  best_step: Optional[int]
  max_len: int
  data: str  # 'files' or 'generated'
  full_scale: Optional[bool]  # None: no reference config for this task
  differences: List[str]

  @property
  def family(self) -> str:
    return FAMILY_OF_PRESET.get(self.preset, f"preset_{self.preset}")

  @property
  def scale(self) -> str:
    if self.full_scale is None:
      return "unknown"
    return "full" if self.full_scale else "reduced"


def reference_config(task: str, attention: str, preset: str
                     ) -> Optional[Dict[str, Any]]:
  """The config `configs/<task>.py` builds for this preset, as a dict.

  None when the task has no config module. An attention variant the
  configs do not know falls back to the default one (the scale keys other
  than num_features do not depend on it).
  """
  try:
    module = importlib.import_module(f"configs.{task}")
  except ImportError:
    return None
  try:
    config = module.get_config(f"{attention},preset={preset}")
  except ValueError:
    config = module.get_config(f"preset={preset}")
  return config.to_dict()


def scale_differences(config: Dict[str, Any], reference: Dict[str, Any]
                      ) -> List[str]:
  """'key value (preset: ref)' for every scale key that differs."""
  out = []
  for key in SCALE_KEYS:
    try:
      ref = _get(reference, key)
    except KeyError:
      continue
    try:
      value = _get(config, key)
    except KeyError:
      continue  # e.g. no num_features for softmax
    if value != ref:
      out.append(f"{key}={value} (preset: {ref})")
  return out


def _accuracy(path: str, data: Dict[str, Any], field: str) -> float:
  value = data[field]
  if not isinstance(value, (int, float)) or isinstance(value, bool):
    raise ResultsError(f"{path}: field '{field}' must be a number, got "
                       f"{value!r}")
  if not 0.0 <= value <= 1.0:
    raise ResultsError(f"{path}: field '{field}' = {value} is not a fraction "
                       "in [0, 1] (results.json stores accuracies as "
                       "fractions)")
  return float(value)


def load_run(path: str) -> Run:
  """Reads and checks one results.json.

  Raises:
    ResultsError: unreadable file, invalid JSON, or a missing or malformed
      field; the message names the file and the field.
  """
  data = _read_json(path)
  if not isinstance(data, dict):
    raise ResultsError(f"{path}: expected a JSON object, got "
                       f"{type(data).__name__}")
  for field in REQUIRED:
    try:
      _get(data, field)
    except KeyError:
      raise ResultsError(
          f"{path}: missing field '{field}' (lra_table needs "
          f"{', '.join(REQUIRED)}; macformer_jax.training writes them)"
      ) from None
  config = data["config"]
  preset = data.get("preset", config.get("preset"))
  if preset is None:
    raise ResultsError(f"{path}: missing field 'preset' (nor config.preset)")
  smoke = bool(data.get("smoke", config.get("smoke", False)))
  task = data["task"]
  last = _accuracy(path, data, "test_accuracy")
  best = _accuracy(path, data, "test_accuracy_best_eval")
  reference = reference_config(task, data["attention"], preset)
  if reference is None:
    full, diffs = None, [f"no configs/{task}.py to compare with"]
  else:
    diffs = scale_differences(config, reference)
    if smoke:
      diffs.insert(0, "smoke")
    full = not diffs
  data_dir = config.get("data", {}).get("data_dir")
  return Run(path=path, task=task, attention=data["attention"],
             preset=preset, smoke=smoke, steps=int(data["steps"]), last=last,
             best=best, best_step=data.get("best_eval_step"),
             max_len=int(_get(config, "data.max_len")),
             data="files" if data_dir else "generated", full_scale=full,
             differences=diffs)


def load_published(path: str = PUBLISHED) -> Dict[str, Any]:
  """The published tables (see benchmarks/lra_published.json)."""
  try:
    with open(path) as f:
      published = json.load(f)
  except OSError as e:
    raise ResultsError(f"{path}: cannot read published numbers "
                       f"({e.strerror})") from e
  for key in ("columns", "tables"):
    if key not in published:
      raise ResultsError(f"{path}: missing field '{key}'")
  return published


# ----------------------------------------------------------------------------
# Rendering.
# ----------------------------------------------------------------------------
def _pct(x: Optional[float], digits: int = 2) -> str:
  return "–" if x is None else f"{100 * x:.{digits}f}"


def _ours_rows(runs: List[Run]) -> List[List[str]]:
  """One row per (attention, scale): `last / best` per task (mean of runs)."""
  groups: Dict[Tuple[str, str], Dict[str, List[Run]]] = {}
  for run in runs:
    groups.setdefault((run.attention, run.scale), {}).setdefault(
        run.task, []).append(run)
  rows = []
  for (attention, scale), by_task in sorted(groups.items()):
    cells, lasts = [], []
    for task in TASKS:
      group = by_task.get(task)
      if not group:
        cells.append("–")
        continue
      last = sum(r.last for r in group) / len(group)
      best = sum(r.best for r in group) / len(group)
      lasts.append(last)
      n = f" (n={len(group)})" if len(group) > 1 else ""
      generated = GENERATED_MARK if any(r.data == "generated"
                                        for r in group) else ""
      cells.append(f"{_pct(last)} / {_pct(best)}{generated}{n}")
    avg = _pct(sum(lasts) / len(lasts)) if len(lasts) == len(TASKS) else "–"
    scale_cell = "**full**" if scale == "full" else f"*{scale}*"
    extra = sorted(t for t in by_task if t not in TASKS)
    name = f"{attention} (ours)" + (f" +{','.join(extra)}" if extra else "")
    rows.append([name, "this repo", scale_cell] + cells + [avg])
  return rows


def _published_rows(table: Dict[str, Any], columns: List[str]
                    ) -> List[List[str]]:
  rows = []
  for name, values in table["rows"].items():
    by_col = dict(zip(columns, values))
    cells = ["–" if by_col.get(t) is None else f"{by_col[t]:.2f}"
             for t in TASKS]
    avg = by_col.get("avg")
    display = DISPLAY.get(name, name.replace("_", " ").title())
    rows.append([display, f"[{table['id']}](#sources)", "published"] + cells +
                ["–" if avg is None else f"{avg:.2f}"])
  return rows


def _table(header: List[str], rows: List[List[str]]) -> List[str]:
  lines = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  return lines


def _read_json(path: str) -> Any:
  """The parsed JSON file at `path`; ResultsError naming the file if not."""
  try:
    with open(path) as f:
      return json.load(f)
  except OSError as e:
    raise ResultsError(f"{path}: cannot read ({e.strerror})") from e
  except json.JSONDecodeError as e:
    raise ResultsError(f"{path}: not valid JSON ({e})") from e


def load_progress(path: str) -> Dict[str, Any]:
  """One progress JSON of benchmarks/full_length.py, checked."""
  data = _read_json(path)
  for field in ("task", "attention", "preset", "steps_done", "preset_steps",
                "eval_curve"):
    if field not in data:
      raise ResultsError(f"{path}: missing field '{field}' (a progress file "
                         "of benchmarks/full_length.py?)")
  data["path"] = path
  return data


def _published_twin(p: Dict[str, Any], published: Dict[str, Any],
                    family: str) -> Optional[Tuple[float, str]]:
  """(accuracy %, table id) of the same method and task in `family`."""
  twin = None
  for table in published["tables"]:
    if table.get("harness") != family:
      continue
    for name in PUBLISHED_ROW.get(p["attention"], ()):
      if name in table["rows"]:
        value = dict(zip(published["columns"],
                         table["rows"][name])).get(p["task"])
        if value is not None:
          twin = (float(value), table["id"])
  return twin


def _train_curve(p: Dict[str, Any]) -> List[Tuple[int, float, float]]:
  """(step, loss, accuracy) rows of a progress file, complete ones only."""
  return [tuple(row) for row in p.get("train_curve", [])
          if row[1] is not None and row[2] is not None]


def plot_progress(progress: List[Dict[str, Any]], published: Dict[str, Any],
                  path: str) -> None:
  """Train loss, and train / val accuracy beside the published number.

  One colour per run; val accuracy as dots, train accuracy (mean per
  logging window) as a faint line, the same method's published test
  accuracy as a dashed line.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
  runs = sorted(progress, key=lambda p: (p["task"], p["attention"]))
  one_task = len({p["task"] for p in runs}) == 1
  for i, p in enumerate(runs):
    color = f"C{i}"
    name = p["attention"] + ("" if one_task else f" {p['task']}")
    label = f"{name} ({p['steps_done']}/{p['preset_steps']} steps)"
    train = _train_curve(p)
    if train:
      steps, losses, accs = zip(*train)
      ax_loss.plot(steps, losses, color=color, label=label)
      ax_acc.plot(steps, [100 * a for a in accs], color=color, alpha=0.35,
                  lw=1)
    if p["eval_curve"]:
      steps, accs = zip(*p["eval_curve"])
      ax_acc.plot(steps, [100 * a for a in accs], "o-", color=color,
                  label=f"{name}: val")
    twin = _published_twin(
        p, published, FAMILY_OF_PRESET.get(p["preset"], p["preset"]))
    if twin:
      ax_acc.axhline(twin[0], color=color, ls="--", lw=1,
                     label=f"{name}: published test ({twin[1]})")
  presets = sorted({(p["preset"], p["preset_steps"]) for p in runs})
  note = ", ".join(f"preset {n}: {s} steps" for n, s in presets)
  for ax, ylabel in ((ax_loss, "train loss (window mean)"),
                     (ax_acc, "accuracy (%)")):
    ax.set_xlabel(f"training step ({note})")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  ax_acc.set_title("train (faint), val (dots), published test (dashed)",
                   fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _progress_rows(progress: List[Dict[str, Any]], published: Dict[str, Any],
                   family: str) -> List[List[str]]:
  """One row per in-progress run: steps done, val curve, published twin."""
  rows = []
  for p in sorted(progress, key=lambda p: (p["task"], p["attention"])):
    done, total = p["steps_done"], p["preset_steps"]
    scale = f"{done}/{total} steps ({100 * done / max(total, 1):.0f}%)"
    if p.get("max_len"):
      scale += f", L={p['max_len']}"
    curve = p["eval_curve"]
    last = (f"{_pct(curve[-1][1], 1)} (step {curve[-1][0]})" if curve
            else "–")
    best = max(curve, key=lambda c: c[1]) if curve else None
    best_cell = f"{_pct(best[1], 1)} (step {best[0]})" if best else "–"
    test = "–"
    if p.get("finished") and "test_accuracy" in p:
      test = (f"{_pct(p['test_accuracy'])} / "
              f"{_pct(p.get('test_accuracy_best_eval'))}")
      if done < total:
        test += f" (after {done} steps)"
    published_twin = _published_twin(p, published, family)
    twin = ("–" if published_twin is None else
            f"{published_twin[0]:.2f} ([{published_twin[1]}](#sources))")
    train = _train_curve(p)
    train_cell = (f"{train[-1][1]:.3f} / {_pct(train[-1][2], 1)} "
                  f"(step {train[-1][0]})" if train else "–")
    curve_cell = " ".join(f"{s}:{100 * a:.1f}" for s, a in curve) or "–"
    rows.append([f"{p['attention']} (ours)", TASK_TITLES.get(p["task"],
                                                            p["task"]),
                 scale, train_cell, last, best_cell, test, twin, curve_cell])
  return rows


def render(runs: List[Run], published: Dict[str, Any],
           command: Optional[str] = None,
           progress: Optional[List[Dict[str, Any]]] = None,
           curves: Optional[str] = None) -> str:
  """The Markdown document: one table per harness family, then every run.

  `curves`: the progress plot's path relative to the document, shown under
  the progress tables.
  """
  columns = published["columns"]
  header = (["model", "source", "scale"] +
            [TASK_TITLES[t] for t in TASKS] + ["Avg"])
  lines = ["# LRA results beside the published numbers", ""]
  if command:
    lines += [f"Generated by `{command}` on "
              f"{datetime.date.today().isoformat()}.", ""]
  lines += [
      "Test accuracy in %. Our cells are `last / best`: the last checkpoint "
      "(as LRA reported) / the best-validation checkpoint (as the "
      "Skyformer-family harness reported). **full** = the run's config "
      "equals its preset's published scale (max_len, batch size, steps, "
      "model size, features) and is not a smoke run; *reduced* = anything "
      "else (see the run list for what differs). "
      f"{GENERATED_MARK} = test split generated offline (ListOps: the "
      "release's distribution, not its test set). Numbers from the two "
      "harness families are not comparable with each other.", ""]
  families = list(FAMILY_TITLES)
  families += sorted({r.family for r in runs} - set(families))
  for family in families:
    ours = [r for r in runs if r.family == family]
    tables = [t for t in published["tables"] if t.get("harness") == family]
    if not ours and not tables:
      continue
    preset = next((p for p, f in FAMILY_OF_PRESET.items() if f == family),
                  family.replace("preset_", ""))
    title = FAMILY_TITLES.get(family, f"Preset {preset} (no published "
                                      "harness family)")
    lines += [f"## {title}: our preset `{preset}`", ""]
    description = published.get("harness_families", {}).get(
        family, {}).get("description")
    if description:
      lines += [description, ""]
    rows = _ours_rows(ours)
    for table in tables:
      rows += _published_rows(table, columns)
    mine = [p for p in progress or [] if
            FAMILY_OF_PRESET.get(p["preset"], "") == family]
    if not ours:
      lines += [f"No finished run with preset `{preset}` yet"
                + ("; the runs in progress are below the table." if mine
                   else "."), ""]
    lines += _table(header, rows) + [""]
    if mine:
      lines += [
          f"Runs of preset `{preset}` at its full length, with their "
          "progress (benchmarks/full_length.py; resumable). Validation "
          "accuracy (%) on the generated data's val split (the preset's 62 "
          "batches) during training, not test accuracy; test only once a "
          "run has done the preset's steps. Train loss / accuracy: the "
          "mean over the last logging window (50 steps). The published "
          "column is the same method's test accuracy after the published "
          "schedule.", ""]
      lines += _table(["model", "task", "scale",
                       "train loss / acc. (last window)",
                       "val acc. (last eval)",
                       "best val", "test last / best", "published",
                       "val curve (step:acc)"],
                      _progress_rows(mine, published, family)) + [""]
      if curves:
        lines += [f"![training curves of the runs in progress]({curves})",
                  ""]
  lines += ["## Runs", ""]
  run_rows = []
  for r in sorted(runs, key=lambda r: (r.family, r.task, r.attention,
                                       r.path)):
    best_step = "" if r.best_step is None else f" (step {r.best_step})"
    scale = "**full**" if r.scale == "full" else f"*{r.scale}*"
    why = "; ".join(r.differences) if r.differences else "matches the preset"
    run_rows.append([f"`{r.path}`", r.task, r.attention, r.preset,
                     str(r.steps), str(r.max_len), r.data, scale, why,
                     _pct(r.last), _pct(r.best) + best_step])
  if run_rows:
    lines += _table(["file", "task", "attention", "preset", "steps",
                     "max_len", "data", "scale", "scale check", "last",
                     "best-eval"], run_rows) + [""]
  else:
    lines += ["No results.json given.", ""]
  lines += ["## Sources", ""]
  for table in published["tables"]:
    lines += [f"* `{table['id']}` ({table.get('harness', '?')}): "
              f"{table['source']} {table.get('notes', '')}".rstrip()]
  lines += ["* Rule and data: `benchmarks/lra_table.py`, "
            "`benchmarks/lra_published.json`.", ""]
  return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> str:
  parser = argparse.ArgumentParser(
      description=__doc__.splitlines()[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("results", nargs="*",
                      help="results.json files, run dirs or glob patterns")
  parser.add_argument("--out", default="docs/lra_table.md",
                      help="Markdown output ('-' for stdout)")
  parser.add_argument("--published", default=PUBLISHED)
  parser.add_argument("--progress", nargs="*", default=[],
                      help="progress JSON files of benchmarks/full_length.py "
                      "(glob patterns allowed; none matching is fine)")
  parser.add_argument("--curves", default=None,
                      help="where to draw the progress runs' curves (PNG, "
                      "linked from the table; default lra_progress.png "
                      "beside --out, none with --out -; '': none)")
  args = parser.parse_args(argv)
  argv_list = sys.argv[1:] if argv is None else list(argv)
  command = " ".join(["python", "benchmarks/lra_table.py"] +
                     [f"'{a}'" if any(c in a for c in "*?[ ") else a
                      for a in argv_list])
  try:
    runs = [load_run(p) for p in find_results(args.results)]
    progress = [load_progress(p) for pattern in args.progress
                for p in sorted(glob.glob(pattern))]
    published = load_published(args.published)
    curves = None
    if args.curves is None and args.out != "-":
      args.curves = os.path.join(os.path.dirname(args.out),
                                 "lra_progress.png")
    if progress and args.curves:
      os.makedirs(os.path.dirname(os.path.abspath(args.curves)),
                  exist_ok=True)
      plot_progress(progress, published, args.curves)
      curves = (os.path.basename(args.curves) if args.out == "-" else
                os.path.relpath(os.path.abspath(args.curves),
                                os.path.dirname(os.path.abspath(args.out))))
    text = render(runs, published, command, progress, curves)
  except ResultsError as e:
    if argv is None:  # command line: one clear line, no traceback
      sys.exit(f"lra_table: {e}")
    raise
  if args.out == "-":
    print(text)
  else:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
      f.write(text)
    print(f"wrote {args.out} ({len(runs)} runs)")
  return text


if __name__ == "__main__":
  main()
