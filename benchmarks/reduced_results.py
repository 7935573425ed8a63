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

ATTENTIONS = ("softmax", "macformer_exp")
# Spectraformer grid rows (docs/METHOD.md §7), optional.
SPECTRA = ("spectra_oprf_fastfoodl", "spectra_posrf_orf", "spectra_posrf_sorf")
PUBLISHED = os.path.join(
  common.REPO, "benchmarks", "spectraformer_published.json"
)


def render(runs: dict, unfinished: dict = None) -> str:
  first = next(iter(runs.values()))
  c = first["config"]
  lines = common.table(
    [
      "attention",
      "params",
      "test acc. (last)",
      "test acc. (best eval, step)",
      "majority class",
      "train steps/s (median)",
    ],
    [
      [
        name,
        f"{r['num_params']:,}",
        f"{100 * r['test_accuracy']:.2f}",
        f"{100 * r['test_accuracy_best_eval']:.2f} ({r['best_eval_step']})",
        f"{100 * r['majority_class_accuracy']:.2f}",
        f"{r['median_train_steps_per_sec']:.2f}",
      ]
      for name, r in runs.items()
    ],
  )
  if all(a in runs for a in ATTENTIONS):
    ratio = (
      runs["macformer_exp"]["median_train_steps_per_sec"]
      / runs["softmax"]["median_train_steps_per_sec"]
    )
    lines += [
      "",
      f"macformer_exp trains {ratio:.2f}x as many steps per "
      f"second as softmax at L = {c['data']['max_len']} (the runs "
      "were sequential on a machine shared with other work, so "
      "take speed from docs/BENCHMARKS.md).",
    ]
  if any(a in runs for a in SPECTRA):
    lines += [
      "",
      "The Spectraformer rows ran later, on the same 2 cores "
      "shared with other jobs: their steps/s measure the machine's "
      "load, not the attention (docs/BENCHMARKS.md has the grid's "
      "speed from one run).",
    ]
  steps = sorted({s for r in runs.values() for s, _ in r["eval_curve"]})
  lines += ["", "Validation accuracy (%) during training:", ""] + (
    common.table(
      ["step", *runs],
      [
        [str(step)]
        + [
          "" if a is None else f"{100 * a:.1f}"
          for a in (dict(r["eval_curve"]).get(step) for r in runs.values())
        ]
        for step in steps
      ],
    )
  )
  for name, last in (unfinished or {}).items():
    ev = last["eval"]
    lines += [
      "",
      f"{name}: run not finished when this file was written "
      f"(last logged step {last['step']} of "
      f"{c['train']['num_train_steps']}"
      + (f", val. accuracy {100 * ev[1]:.1f}% at step {ev[0]}" if ev else "")
      + ").",
    ]
  with open(PUBLISHED) as f:
    pub = json.load(f)
  ours = {v: k for k, v in pub["ours"].items()}
  status = lambda p: (
    " (not finished)"
    if p in (unfinished or {})
    else " (not run)"
    if p and p not in runs
    else ""
  )
  lines += [
    "",
    "## Spectraformer's published numbers (NOT comparable)",
    "",
    f"**Not comparable in scale or task:** {pub['harness']} "
    f"Source: {pub['source']}",
    "",
  ] + common.table(
    ["published row", "our preset", *pub["columns"]],
    [
      [name, ours.get(name, "") + status(ours.get(name, ""))]
      + [f"{v:g}" for v in values]
      for name, values in pub["rows"].items()
    ],
  )
  lines += [
    "",
    f"Machine: {first['machine']['platform']}, "
    f"{first['machine']['cpus']} CPUs. Per-run results (with the "
    "full config): `docs/results/reduced_listops_<attention>.json`.",
    "",
  ]
  d, m, o = c["data"]["offline"], c["model"], c["optimizer"]
  return (
    common.templates("results")["page"].format(c=c, d=d, m=m, o=o)
    + "\n\n"
    + "\n".join(lines)
  )


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--runs", default=os.path.join(common.REPO, "runs"))
  parser.add_argument("--docs", default=os.path.join(common.REPO, "docs"))
  parser.add_argument(
    "--from_docs",
    action="store_true",
    help="rebuild from docs/results/*.json only",
  )
  args = parser.parse_args(argv)
  runs, unfinished = {}, {}
  for attention in ATTENTIONS + SPECTRA:
    saved = os.path.join(
      args.docs, "results", f"reduced_listops_{attention}.json"
    )
    progress = saved.replace(".json", ".progress.json")
    workdir = os.path.join(args.runs, f"reduced_listops_{attention}")
    results, curve, speeds = common.read_run(workdir)
    if results is not None and not args.from_docs:
      runs[attention] = dict(
        results,
        eval_curve=curve,
        machine=common.host(),
        median_train_steps_per_sec=statistics.median(speeds),
      )
      common.write(saved, json.dumps(runs[attention], indent=1))
    elif os.path.exists(saved) or attention in ATTENTIONS:
      with open(saved) as f:  # an earlier run's copy in docs/results
        runs[attention] = json.load(f)
    elif os.path.exists(workdir) and not args.from_docs:
      with open(os.path.join(workdir, "metrics.jsonl")) as f:
        steps = [json.loads(line)["step"] for line in f]
      unfinished[attention] = {
        "step": max([0] + steps),
        "eval": curve[-1] if curve else None,
      }
      common.write(progress, json.dumps(unfinished[attention]))
    elif os.path.exists(progress):
      with open(progress) as f:
        unfinished[attention] = json.load(f)
  common.write(os.path.join(args.docs, "RESULTS.md"), render(runs, unfinished))


if __name__ == "__main__":
  main()
