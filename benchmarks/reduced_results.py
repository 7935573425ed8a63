"""Writes docs/RESULTS.md (the reduced ListOps comparison) from the runs of
benchmarks/reduced_listops.sh, copying each into docs/results/ so that
`--from_docs` rebuilds the page from the repository alone.

  python -m benchmarks.reduced_results [--from_docs]
"""

import argparse
import json
import os
import statistics

from benchmarks import common
from benchmarks.common import pct

ATTENTIONS = ("softmax", "macformer_exp")
# Spectraformer grid rows (docs/METHOD.md §7), optional.
SPECTRA = ("spectra_oprf_fastfoodl", "spectra_posrf_orf", "spectra_posrf_sorf")
PUBLISHED = os.path.join(
  common.REPO, "benchmarks", "spectraformer_published.json"
)


def render(runs: dict, unfinished: dict | None = None) -> str:
  first, unfinished = next(iter(runs.values())), unfinished or {}
  c, text = first["config"], common.templates("results")
  items = [
    dict(r, name=name, last=pct(r["test_accuracy"]))
    | dict(best=pct(r["test_accuracy_best_eval"]))
    | dict(majority=pct(r["majority_class_accuracy"]))
    for name, r in runs.items()
  ]
  lines = common.format_table(text["runs_table"], items)
  if all(a in runs for a in ATTENTIONS):
    speed = [runs[a]["median_train_steps_per_sec"] for a in ATTENTIONS]
    ratio = speed[1] / speed[0]
    max_len = c["data"]["max_len"]
    lines += ["", text["ratio"].format(ratio=ratio, max_len=max_len)]
  if any(a in runs for a in SPECTRA):
    lines += ["", text["spectra"]]
  steps = sorted({s for r in runs.values() for s, _ in r["eval_curve"]})
  curves = [dict(r["eval_curve"]) for r in runs.values()]
  acc = lambda a: "" if a is None else f"{100 * a:.1f}"
  rows = [[str(s)] + [acc(curve.get(s)) for curve in curves] for s in steps]
  lines += ["", "Validation accuracy (%) during training:", ""]
  lines += common.table(["step", *runs], rows)
  total = c["train"]["num_train_steps"]
  for name, last in unfinished.items():
    ev = last["eval"]
    ev = f", val. accuracy {100 * ev[1]:.1f}% at step {ev[0]}" if ev else ""
    fields = dict(name=name, step=last["step"], steps=total, eval=ev)
    lines += ["", text["unfinished"].format(**fields)]
  with open(PUBLISHED) as f:
    pub = json.load(f)
  ours = {v: k for k, v in pub["ours"].items()}
  rows = []
  for name, values in pub["rows"].items():
    preset = ours.get(name, "")
    if preset in unfinished:
      preset += " (not finished)"
    elif preset and preset not in runs:
      preset += " (not run)"
    rows.append([name, preset] + [f"{v:g}" for v in values])
  lines += ["", text["published"].format(**pub), ""]
  lines += common.table(["published row", "our preset", *pub["columns"]], rows)
  lines += ["", text["machine"].format(**first["machine"]), ""]
  d, m, o = c["data"]["offline"], c["model"], c["optimizer"]
  page = text["page"].format(c=c, d=d, m=m, o=o)
  return page + "\n\n" + "\n".join(lines)


def main(argv=None):
  """Reads runs/ (or, with --from_docs, docs/results/ only)."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--runs", default=os.path.join(common.REPO, "runs"))
  parser.add_argument("--docs", default=os.path.join(common.REPO, "docs"))
  parser.add_argument("--from_docs", action="store_true")
  args = parser.parse_args(argv)
  runs, unfinished, fresh = {}, {}, not args.from_docs
  for attention in ATTENTIONS + SPECTRA:
    name = f"reduced_listops_{attention}"
    saved = os.path.join(args.docs, "results", name + ".json")
    progress = saved.replace(".json", ".progress.json")
    workdir = os.path.join(args.runs, name)
    results, curve, speeds = common.read_run(workdir)
    if results is not None and fresh:
      speed = statistics.median(speeds)
      runs[attention] = dict(results, eval_curve=curve, machine=common.host())
      runs[attention]["median_train_steps_per_sec"] = speed
      common.write(saved, json.dumps(runs[attention], indent=1))
    elif os.path.exists(saved) or attention in ATTENTIONS:
      with open(saved) as f:  # an earlier run's copy in docs/results
        runs[attention] = json.load(f)
    elif os.path.exists(workdir) and fresh:
      with open(os.path.join(workdir, "metrics.jsonl")) as f:
        steps = [json.loads(line)["step"] for line in f]
      last = {"step": max([0] + steps), "eval": curve[-1] if curve else None}
      unfinished[attention] = last
      common.write(progress, json.dumps(last))
    elif os.path.exists(progress):
      unfinished[attention] = common.load_json(progress)[0]
  text = render(runs, unfinished)
  common.write(os.path.join(args.docs, "RESULTS.md"), text)


if __name__ == "__main__":
  main()
