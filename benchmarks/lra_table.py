r"""Our LRA runs beside the published LRA numbers, as a Markdown table.

  python -m benchmarks.lra_table 'runs/*/results.json'   # docs/lra_table.md
  python -m benchmarks.lra_table runs/a runs/b --out -     # to stdout

Arguments: results.json files, run folders or quoted glob patterns;
`--progress`: benchmarks.full_length's JSON of runs in progress (their
curves go to lra_progress.png beside `--out`). Published numbers and their
sources: benchmarks/lra_published.json; preset `lra` is shown beside the
original LRA harness, `macformer` beside the Skyformer-family one, never in
one table (docs/METHOD.md §8.6). A run is *full* scale when it is no smoke
run and its config equals its preset's on every SCALE_KEYS. Prose and names:
benchmarks/templates/lra_table.md.
"""

import argparse
from collections.abc import Sequence
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
REQUIRED = (  # the fields of a results.json that we read, space-separated
  "task attention steps test_accuracy test_accuracy_best_eval config "
  "config.data.max_len config.data.batch_size config.train.num_train_steps"
)
SCALE_KEYS = (
  "data.max_len data.batch_size train.num_train_steps model.emb_dim "
  "model.num_layers model.num_heads model.qkv_dim model.mlp_dim "
  "attention.options.num_features"
)
PROGRESS_FIELDS = "task attention preset steps_done preset_steps eval_curve"
GENERATED_MARK = "†"  # a cell whose test split was generated offline
T = common.templates("lra_table")
# Family titles, published row names as shown, and our attention -> the
# published rows of the same method (the progress table's "published").
FAMILY_TITLES, DISPLAY, TWINS = (
  dict(line.split(": ") for line in T[key].splitlines())
  for key in ("families", "names", "twins")
)
MISSING = object()


class ResultsError(ValueError):
  """A results file that cannot be used; the message names the file."""


def _get(tree: Any, dotted: str) -> Any:
  """tree['a']['b'] for 'a.b'; MISSING if any level is missing."""
  for part in dotted.split("."):
    tree = tree.get(part, MISSING) if isinstance(tree, dict) else MISSING
  return tree


def _read_json(path: str, fields: str, hint: str) -> dict[str, Any]:
  """The JSON object at `path` with every (dotted) field of `fields`, or
  ResultsError naming the file and the field (and `hint`)."""
  try:
    with open(path) as f:
      data = json.load(f)
  except OSError as e:
    raise ResultsError(f"{path}: cannot read ({e.strerror})") from e
  except json.JSONDecodeError as e:
    raise ResultsError(f"{path}: not valid JSON ({e})") from e
  if not isinstance(data, dict):
    kind = type(data).__name__
    raise ResultsError(f"{path}: expected a JSON object, got {kind}")
  for field in fields.split():
    if _get(data, field) is MISSING:
      raise ResultsError(f"{path}: missing field '{field}' ({hint})")
  return data


def find_results(patterns: Sequence[str]) -> list[str]:
  """results.json paths from files, run folders and glob patterns; a path
  that does not exist, a folder without results.json or a pattern that
  matches nothing raises ResultsError."""
  paths = []
  for pattern in patterns:
    matches = [pattern]
    if any(ch in pattern for ch in "*?["):
      # Not an unfinished run's record (make_report keeps it beside the
      # results as <run>.progress.json).
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


def scale_differences(run: dict) -> list[str] | None:
  """'key=value (preset: ref)' per SCALE_KEYS where the run's config is not
  what configs/<task>.py builds for its attention and preset (None: no such
  config to compare with)."""
  try:
    module = importlib.import_module(f"configs.{run['task']}")
    config = module.get_config(f"{run['attention']},preset={run['preset']}")
  except (ImportError, ValueError):
    return None
  ref, out = config.to_dict(), ["smoke"] if run.get("smoke") else []
  for key in SCALE_KEYS.split():
    value, preset = _get(run["config"], key), _get(ref, key)
    if MISSING not in (value, preset) and value != preset:
      out.append(f"{key}={value} (preset: {preset})")
  return out


def load_run(path: str) -> dict[str, Any]:
  """One results.json, checked, with its scale verdict: `full_scale` (None:
  no configs/<task>.py) and `differences` from the preset's config."""
  needs = f"lra_table needs {REQUIRED}; macformer_jax.training writes them"
  run = _read_json(path, REQUIRED, needs)
  for field in ("test_accuracy", "test_accuracy_best_eval"):
    value = run[field]
    if type(value) not in (int, float) or not 0 <= value <= 1:
      raise ResultsError(
        f"{path}: field '{field}' = {value!r} is not a fraction in [0, 1] "
        "(results.json stores accuracies as fractions)"
      )
  config = run["config"]
  run["preset"] = run.get("preset", config.get("preset"))
  run["smoke"] = run.get("smoke", config.get("smoke"))
  diffs = scale_differences(run)
  full = None if diffs is None else not diffs
  if diffs is None:
    diffs = [f"no configs/{run['task']}.py to compare with"]
  return dict(
    run,
    path=path,
    family=FAMILY_OF_PRESET.get(run["preset"], f"preset_{run['preset']}"),
    max_len=config["data"]["max_len"],
    data="files" if config["data"].get("data_dir") else "generated",
    full_scale=full,
    scale={None: "unknown", True: "full", False: "reduced"}[full],
    differences=diffs,
  )


def load_published(path: str = PUBLISHED) -> dict[str, Any]:
  """The published tables (see benchmarks/lra_published.json)."""
  return _read_json(path, "columns tables", "published numbers")


def load_progress(path: str) -> dict[str, Any]:
  """One progress JSON of benchmarks.full_length, checked."""
  hint = "a progress file of benchmarks/full_length.py?"
  return dict(_read_json(path, PROGRESS_FIELDS, hint), path=path)


def _cell(group: list[dict]) -> str:
  """`last / best` (mean over the runs), marks and the number of runs."""
  if not group:
    return "–"
  mean = lambda key: pct(sum(r[key] for r in group) / len(group))
  mark = any(r["data"] == "generated" for r in group) * GENERATED_MARK
  n = f" (n={len(group)})" if len(group) > 1 else ""
  return f"{mean('test_accuracy')} / {mean('test_accuracy_best_eval')}{mark}{n}"


def _ours_rows(runs: list[dict]) -> list[list[str]]:
  """One row per (attention, scale): `last / best` per task (mean of runs)."""
  groups: dict[tuple[str, str], dict[str, list[dict]]] = {}
  for run in runs:
    by_task = groups.setdefault((run["attention"], run["scale"]), {})
    by_task.setdefault(run["task"], []).append(run)
  rows = []
  for (attention, scale), by_task in sorted(groups.items()):
    lasts = [
      sum(r["test_accuracy"] for r in by_task[t]) / len(by_task[t])
      for t in TASKS
      if t in by_task
    ]
    avg = pct(sum(lasts) / len(lasts)) if len(lasts) == len(TASKS) else "–"
    extra = ",".join(sorted(t for t in by_task if t not in TASKS))
    name = f"{attention} (ours)" + (f" +{extra}" if extra else "")
    cells = [_cell(by_task.get(task, [])) for task in TASKS]
    rows.append([name, "this repo", _scale(scale), *cells, avg])
  return rows


def _scale(scale: str) -> str:
  return "**full**" if scale == "full" else f"*{scale}*"


def _published(published: dict, family: str | None):
  """(row name, table id, {column: value}) per published row of `family`."""
  for t in published["tables"]:
    for name, values in t["rows"].items() if t["harness"] == family else ():
      yield name, t["id"], dict(zip(published["columns"], values, strict=True))


def _twin(p: dict[str, Any], published: dict) -> tuple[float, str] | None:
  """(accuracy %, table id): the run's method and task published in the
  harness family of its preset."""
  family = FAMILY_OF_PRESET.get(p["preset"], p["preset"])
  names = TWINS.get(p["attention"], "").split()
  found = [
    (float(value[p["task"]]), table)
    for name, table, value in _published(published, family)
    if name in names and value.get(p["task"]) is not None
  ]
  return found[-1] if found else None


def _train_curve(p: dict[str, Any]) -> list[tuple[int, float, float]]:
  """(step, loss, accuracy) rows of a progress file, complete ones only."""
  rows = p.get("train_curve", [])
  return [tuple(row) for row in rows if None not in row[1:3]]


def plot_progress(progress: list[dict], published: dict, path: str) -> None:
  """Train loss; train accuracy (faint), val accuracy (dots) and the same
  method's published test accuracy (dashed), one colour per run."""
  plt = common.pyplot()
  fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
  runs = sorted(progress, key=lambda p: (p["task"], p["attention"]))
  one_task = len({p["task"] for p in runs}) == 1
  for i, p in enumerate(runs):
    color, name = (
      f"C{i}",
      p["attention"] + ("" if one_task else f" {p['task']}"),
    )
    if train := _train_curve(p):
      steps, losses, accs = zip(*train, strict=True)
      label = f"{name} ({p['steps_done']}/{p['preset_steps']} steps)"
      ax_loss.plot(steps, losses, color=color, label=label)
      ax_acc.plot(steps, [100 * a for a in accs], color=color, alpha=0.35, lw=1)
    if p["eval_curve"]:
      steps, accs = zip(*p["eval_curve"], strict=True)
      ax_acc.plot(
        steps, [100 * a for a in accs], "o-", color=color, label=f"{name}: val"
      )
    if twin := _twin(p, published):
      label = f"{name}: published test ({twin[1]})"
      ax_acc.axhline(twin[0], color=color, ls="--", lw=1, label=label)
  presets = sorted({(p["preset"], p["preset_steps"]) for p in runs})
  note = ", ".join(f"preset {n}: {s} steps" for n, s in presets)
  for ax, ylabel in (
    (ax_loss, "train loss (window mean)"),
    (ax_acc, "accuracy (%)"),
  ):
    ax.set(xlabel=f"training step ({note})", ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  ax_acc.set_title(
    "train (faint), val (dots), published test (dashed)", fontsize=9
  )
  common.savefig(fig, path)


def _progress_item(p: dict[str, Any], published: dict) -> dict:
  """The cells of one run in progress (the template's progress_table)."""
  done, total, curve = p["steps_done"], p["preset_steps"], p["eval_curve"]
  at = lambda c: f"{pct(c[1], 1)} (step {c[0]})" if c else "–"
  test = "–"
  if p.get("finished") and "test_accuracy" in p:
    test = (
      f"{pct(p['test_accuracy'])} / {pct(p.get('test_accuracy_best_eval'))}"
    )
    test += f" (after {done} steps)" if done < total else ""
  scale = f"{done}/{total} steps ({100 * done / max(total, 1):.0f}%)"
  scale += f", L={p['max_len']}" if p.get("max_len") else ""
  train, twin = _train_curve(p), _twin(p, published)
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


def _section(preset, runs, published, progress, curves) -> list[str]:
  """Our runs of one preset beside its harness family's published tables,
  then its runs in progress."""
  family = FAMILY_OF_PRESET.get(preset)
  ours = [r for r in runs if r["preset"] == preset]
  tables = list(_published(published, family))
  if not ours and not tables:
    return []
  title = FAMILY_TITLES.get(family, T["no_family"].format(preset=preset))
  lines = [f"## {title}: our preset `{preset}`", ""]
  families = published.get("harness_families", {})
  description = families.get(family, {}).get("description")
  lines += [description, ""] if description else []
  mine = [p for p in progress if p["preset"] == preset]
  if not ours:
    more = "; the runs in progress are below the table." if mine else "."
    lines += [T["no_runs"].format(preset=preset, more=more), ""]
  header = ["model", "source", "scale", *TASK_TITLES.values(), "Avg"]
  rows = _ours_rows(ours) + [
    [DISPLAY.get(name, name.replace("_", " ").title())]
    + [f"[{table}](#sources)", "published"]
    + ["–" if v.get(c) is None else f"{v[c]:.2f}" for c in (*TASKS, "avg")]
    for name, table, v in tables
  ]
  lines += common.table(header, rows) + [""]
  if mine:
    mine.sort(key=lambda p: (p["task"], p["attention"]))
    items = [_progress_item(p, published) for p in mine]
    lines += [T["progress"].format(preset=preset), ""]
    lines += common.format_table(T["progress_table"], items) + [""]
    if curves:
      lines += [f"![training curves of the runs in progress]({curves})", ""]
  return lines


def render(runs, published, command=None, progress=(), curves=None) -> str:
  """The Markdown page: one table per preset (harness family), then every
  run and the sources; `curves`: the progress plot, relative to the page."""
  lines = [T["page"], ""]
  if command:
    date = datetime.date.today().isoformat()
    lines += [T["generated"].format(command=command, date=date), ""]
  lines += [T["legend"].format(mark=GENERATED_MARK), ""]
  others = sorted({r["preset"] for r in runs} - set(FAMILY_OF_PRESET))
  for preset in [*FAMILY_OF_PRESET, *others]:
    lines += _section(preset, runs, published, progress, curves)
  order = lambda r: (r["family"], r["task"], r["attention"], r["path"])
  step = lambda r: (
    ""
    if r.get("best_eval_step") is None
    else (f" (step {r['best_eval_step']})")
  )
  items = [
    dict(r, scale=_scale(r["scale"]), last=pct(r["test_accuracy"]))
    | dict(check="; ".join(r["differences"]) or "matches the preset")
    | dict(best=pct(r["test_accuracy_best_eval"]) + step(r))
    for r in sorted(runs, key=order)
  ]
  table = common.format_table(T["runs_table"], items)
  lines += ["## Runs", ""] + (table if items else ["No results.json given."])
  lines += ["", "## Sources", ""] + [
    f"* `{t['id']}` ({t['harness']}): {t['source']} {t['notes']}".rstrip()
    for t in published["tables"]
  ]
  return "\n".join(lines + [T["sources"], ""])


def main(argv: Sequence[str] | None = None) -> str:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("results", nargs="*", help="results.json, dirs, globs")
  parser.add_argument("--out", default="docs/lra_table.md", help="'-': stdout")
  parser.add_argument("--progress", nargs="*", default=[], help="globs")
  args = parser.parse_args(argv)
  try:
    runs = [load_run(p) for p in find_results(args.results)]
    paths = [p for pattern in args.progress for p in sorted(glob.glob(pattern))]
    progress, published = [load_progress(p) for p in paths], load_published()
    curves = "lra_progress.png" if progress and args.out != "-" else None
    if curves:
      folder = os.path.dirname(os.path.abspath(args.out))
      os.makedirs(folder, exist_ok=True)
      plot_progress(progress, published, os.path.join(folder, curves))
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
