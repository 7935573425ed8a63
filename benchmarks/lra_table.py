r"""Our LRA runs beside the published LRA numbers, as a Markdown table.

  python -m benchmarks.lra_table 'runs/*/results.json'   # docs/lra_table.md
  python -m benchmarks.lra_table runs/a runs/b --out -     # to stdout

Arguments: results.json files, run folders or quoted glob patterns;
`--progress`: benchmarks.full_length's JSON of runs in progress (curves in
lra_progress.png beside `--out`). Published numbers: lra_published.json.
Preset `lra` is shown beside the original LRA harness, `macformer` beside
the Skyformer-family one (docs/METHOD.md §8.6). A run is *full* scale when
it is no smoke run and its config equals its preset's on every SCALE_KEYS.
"""

import argparse
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
  except (OSError, json.JSONDecodeError) as e:
    raise ResultsError(f"{path}: not valid JSON ({e})") from e
  for field in fields.split():
    if _get(data, field) is MISSING:
      raise ResultsError(f"{path}: missing field '{field}' ({hint})")
  return data


def find_results(args: list[str]) -> list[str]:
  """results.json paths from files, run folders and glob patterns;
  ResultsError for an argument that gives none."""
  paths = []
  for arg in args:
    path = os.path.join(arg, "results.json") if os.path.isdir(arg) else arg
    # Not an unfinished run's <run>.progress.json (make_report keeps it).
    found = sorted(glob.glob(path, recursive=True))
    found = [p for p in found if not p.endswith(".progress.json")]
    if not found:
      raise ResultsError(f"{arg}: {T['no_results']}")
    paths += [p for p in found if p not in paths]
  return paths


def scale_differences(run: dict) -> list[str] | None:
  """'key=value (preset: ref)' per SCALE_KEYS where the run's config differs
  from what configs/<task>.py builds (None: no such config)."""
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
  """One results.json, checked, with its scale verdict (`full_scale`, None:
  no configs/<task>.py) and its `differences` from the preset."""
  needs = f"lra_table needs {REQUIRED}; macformer_jax.training writes them"
  run = _read_json(path, REQUIRED, needs)
  for field in ("test_accuracy", "test_accuracy_best_eval"):
    if type(run[field]) not in (int, float) or not 0 <= run[field] <= 1:
      raise ResultsError(f"{path}: '{field}' = {run[field]} {T['fraction']}")
  config = run["config"]
  run["preset"] = run.get("preset", config.get("preset"))
  run["smoke"] = run.get("smoke", config.get("smoke"))
  diffs = scale_differences(run)
  full = None if diffs is None else not diffs
  return dict(
    run,
    path=path,
    family=FAMILY_OF_PRESET.get(run["preset"], ""),
    max_len=config["data"]["max_len"],
    data="files" if config["data"].get("data_dir") else "generated",
    full_scale=full,
    scale={None: "*unknown*", True: "**full**", False: "*reduced*"}[full],
    differences=[T["no_config"].format(**run)] if diffs is None else diffs,
  )


def load_published(path: str = PUBLISHED) -> dict[str, Any]:
  """The published tables (see benchmarks/lra_published.json)."""
  return _read_json(path, "columns tables", "published numbers")


def load_progress(path: str) -> dict[str, Any]:
  """One progress JSON of benchmarks.full_length, checked."""
  hint = "a progress file of benchmarks/full_length.py?"
  return dict(_read_json(path, PROGRESS_FIELDS, hint), path=path)


def _ours_rows(runs: list[dict]) -> list[list[str]]:
  """One row per (attention, scale): `last / best` per task, means of runs."""
  groups: dict[tuple[str, str], dict[str, list[dict]]] = {}
  for run in runs:
    by_task = groups.setdefault((run["attention"], run["scale"]), {})
    by_task.setdefault(run["task"], []).append(run)
  rows = []
  for (attention, scale), by_task in sorted(groups.items()):
    cells, lasts = [], []
    for g in (by_task.get(task) for task in TASKS):
      if not g:
        cells.append("–")
        continue
      keys = ("test_accuracy", "test_accuracy_best_eval")
      last, best = (sum(r[k] for r in g) / len(g) for k in keys)
      mark = any(r["data"] == "generated" for r in g) * GENERATED_MARK
      n = f" (n={len(g)})" if len(g) > 1 else ""
      cells.append(f"{pct(last)} / {pct(best)}{mark}{n}")
      lasts.append(last)
    avg = pct(sum(lasts) / len(lasts)) if len(lasts) == len(TASKS) else "–"
    rows.append([f"{attention} (ours)", "this repo", scale, *cells, avg])
  return rows


def _published(published: dict, family: str | None):
  """(row name, table id, {column: value}) per published row of `family`."""
  for t in published["tables"]:
    for name, values in t["rows"].items() if t["harness"] == family else ():
      yield name, t["id"], dict(zip(published["columns"], values, strict=True))


def _twin(p: dict[str, Any], published: dict) -> tuple[float, str] | None:
  """(accuracy %, table id) of the run's method and task, published in the
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
  fig, (loss, acc) = common.pyplot().subplots(1, 2, figsize=(11, 4))
  runs = sorted(progress, key=lambda p: (p["task"], p["attention"]))
  one_task = len({p["task"] for p in runs}) == 1
  for i, p in enumerate(runs):
    c, name = f"C{i}", p["attention"] + ("" if one_task else f" {p['task']}")
    if train := _train_curve(p):
      steps, losses, accs = zip(*train, strict=True)
      label = f"{name} ({p['steps_done']}/{p['preset_steps']} steps)"
      loss.plot(steps, losses, color=c, label=label)
      acc.plot(steps, [100 * a for a in accs], color=c, alpha=0.35, lw=1)
    if p["eval_curve"]:
      steps, accs = zip(*p["eval_curve"], strict=True)
      val = [100 * a for a in accs]
      acc.plot(steps, val, "o-", color=c, label=f"{name}: val")
    if twin := _twin(p, published):
      label = f"{name}: published test ({twin[1]})"
      acc.axhline(twin[0], color=c, ls="--", lw=1, label=label)
  presets = sorted({(p["preset"], p["preset_steps"]) for p in runs})
  note = ", ".join(f"preset {n}: {s} steps" for n, s in presets)
  for ax, ylabel in ((loss, "train loss (window mean)"), (acc, "accuracy (%)")):
    ax.set(xlabel=f"training step ({note})", ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  acc.set_title(T["plot_title"], fontsize=9)
  common.savefig(fig, path)


def _progress_item(p: dict[str, Any], published: dict) -> dict:
  """The cells of one run in progress (the template's progress_table)."""
  done, total, curve = p["steps_done"], p["preset_steps"], p["eval_curve"]
  at = lambda c: f"{pct(c[1], 1)} (step {c[0]})"
  item = dict(p, task=TASK_TITLES.get(p["task"], p["task"]), test="–")
  if p.get("finished") and "test_accuracy" in p:
    item["test"] = f"{pct(p['test_accuracy'])} / "
    item["test"] += pct(p.get("test_accuracy_best_eval"))
    item["test"] += f" (after {done} steps)" if done < total else ""
  item["scale"] = f"{done}/{total} steps ({100 * done / max(total, 1):.0f}%)"
  item["scale"] += f", L={p['max_len']}" if p.get("max_len") else ""
  step, loss, acc = (_train_curve(p) or [(None,) * 3])[-1]
  item["train"] = (
    "–" if step is None else f"{loss:.3f} / {pct(acc, 1)} (step {step})"
  )
  item["last"] = at(curve[-1]) if curve else "–"
  item["best"] = at(max(curve, key=lambda c: c[1])) if curve else "–"
  twin = _twin(p, published)
  item["twin"] = (
    "–" if twin is None else f"{twin[0]:.2f} ([{twin[1]}](#sources))"
  )
  item["curve"] = " ".join(f"{s}:{100 * a:.1f}" for s, a in curve) or "–"
  return item


def _section(preset, runs, published, progress, curves) -> list[str]:
  """Our runs of one preset beside its harness family's published tables,
  then its runs in progress."""
  family = FAMILY_OF_PRESET.get(preset)
  ours = [r for r in runs if r["preset"] == preset]
  tables = list(_published(published, family))
  if not ours and not tables:
    return []
  lines = [f"## {FAMILY_TITLES[family]}: our preset `{preset}`", ""]
  families = published.get("harness_families", {})
  if description := families.get(family, {}).get("description"):
    lines += [description, ""]
  mine = sorted(
    (p for p in progress if p["preset"] == preset),
    key=lambda p: (p["task"], p["attention"]),
  )
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
    items = [_progress_item(p, published) for p in mine]
    lines += [T["progress"].format(preset=preset), ""]
    lines += common.format_table(T["progress_table"], items) + [""]
    lines += [T["curves"].format(curves=curves), ""] if curves else []
  return lines


def render(runs, published, command=None, progress=(), curves=None) -> str:
  """The page: one table per preset (harness family), then every run and
  the sources; `curves`: the progress plot, relative to the page."""
  lines = [T["page"], ""]
  if command:
    date = datetime.date.today().isoformat()
    lines += [T["generated"].format(command=command, date=date), ""]
  lines += [T["legend"].format(mark=GENERATED_MARK), ""]
  for preset in FAMILY_OF_PRESET:  # configs/common.py PRESETS
    lines += _section(preset, runs, published, progress, curves)
  order = lambda r: (r["family"], r["task"], r["attention"], r["path"])
  step = lambda r: (
    ""
    if r.get("best_eval_step") is None
    else (f" (step {r['best_eval_step']})")
  )
  items = [
    dict(r, last=pct(r["test_accuracy"]))
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


def main(argv: list[str] | None = None) -> str:
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
