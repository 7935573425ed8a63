"""Writes docs/RESULTS.md: the reduced ListOps comparison, from the runs.

  bash benchmarks/reduced_listops.sh          # trains (see its header)
  bash benchmarks/reduced_listops.sh "spectra_oprf_fastfoodl \
      spectra_posrf_orf spectra_posrf_sorf"   # Spectraformer grid rows
  python benchmarks/reduced_results.py        # this report

The grid rows (`SPECTRA`) are optional: each appears once its run has
finished; a run still in progress is listed with its last logged step. The
published Spectraformer numbers (`benchmarks/spectraformer_published.json`)
are printed beside them, marked as not comparable in scale.

Reads `runs/reduced_listops_<attention>/{results.json,metrics.jsonl}`, copies
each run's results (with its eval curve and training throughput) to
`docs/results/reduced_listops_<attention>.json`, so the report can be rebuilt
from the repository alone (`--from_docs`), and renders docs/RESULTS.md. No
number in it is typed by hand.
"""

import argparse
import json
import os
import platform
import statistics
from typing import Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ATTENTIONS = ("softmax", "macformer_exp")
# Spectraformer grid rows (docs/METHOD.md §7), optional.
SPECTRA = ("spectra_oprf_fastfoodl", "spectra_posrf_orf", "spectra_posrf_sorf")
PUBLISHED = os.path.join(ROOT, "benchmarks", "spectraformer_published.json")


def read_metrics(workdir: str) -> tuple:
  """A run's eval curve [[step, accuracy], ...] and its train steps/s values,
  read from `workdir/metrics.jsonl`."""
  curve, speeds = [], []
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    for line in f:
      row = json.loads(line)
      if row["split"] == "eval":
        curve.append([row["step"], row["accuracy"]])
      elif row["split"] == "train" and "steps_per_sec" in row:
        speeds.append(row["steps_per_sec"])
  return curve, speeds


def collect(workdir: str) -> dict:
  """results.json plus the eval curve and median train steps/s of a run."""
  path = os.path.join(workdir, "results.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} is missing: run "
                            "`bash benchmarks/reduced_listops.sh` first")
  with open(path) as f:
    results = json.load(f)
  curve, speeds = read_metrics(workdir)
  results["eval_curve"] = curve
  results["median_train_steps_per_sec"] = statistics.median(speeds)
  results["machine"] = {"platform": platform.platform(),
                        "cpus": os.cpu_count()}
  return results


def progress(workdir: str) -> dict:
  """Last logged train step and eval accuracy of an unfinished run."""
  last = {"step": 0, "eval": None}
  path = os.path.join(workdir, "metrics.jsonl")
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        row = json.loads(line)
        last["step"] = max(last["step"], row["step"])
        if row["split"] == "eval":
          last["eval"] = (row["step"], row["accuracy"])
  return last


def published_section(runs: dict, unfinished: dict) -> list:
  """Spectraformer's published LRA numbers, beside our rows' names."""
  with open(PUBLISHED) as f:
    pub = json.load(f)
  cols = pub["columns"]
  ours = {v: k for k, v in pub["ours"].items()}
  lines = ["", "## Spectraformer's published numbers (NOT comparable)", "",
           f"**Not comparable in scale or task:** {pub['harness']} "
           f"Source: {pub['source']}", "",
           "| published row | our preset | " + " | ".join(cols) + " |",
           "|---|---|" + "---|" * len(cols)]
  for name, values in pub["rows"].items():
    preset = ours.get(name, "")
    if preset in unfinished:
      preset += " (not finished)"
    elif preset and preset not in runs:
      preset += " (not run)"
    lines.append(f"| {name} | {preset} | "
                 + " | ".join(f"{v:g}" for v in values) + " |")
  return lines


def render(runs: dict, unfinished: Optional[dict] = None) -> str:
  first = next(iter(runs.values()))
  c = first["config"]
  offline = c["data"]["offline"]
  lines = [
      "# Reduced LRA run: ListOps on generated data, softmax vs Macformer "
      "(and Spectraformer grid rows)",
      "",
      "**Scale, honestly:** this is *not* the LRA ListOps task. It is a",
      "reduced, offline stand-in that trains in minutes on a 2-core CPU:",
      f"generated ListOps trees of {offline['min_length']}-"
      f"{offline['max_length']} tokens (depth <= {offline['max_depth']}, at "
      f"most {offline['max_args']} arguments; LRA: 500-2000 tokens, depth 10) "
      f"padded to L = {c['data']['max_len']}, "
      f"{offline['num_train']}/{offline['num_val']}/{offline['num_test']} "
      "train/val/test examples (LRA: 96k/2k/2k), a model with emb "
      f"{c['model']['emb_dim']}, {c['model']['num_layers']} layers, "
      f"{c['model']['num_heads']} heads, MLP {c['model']['mlp_dim']} (LRA: "
      f"512/4/8/1024), batch {c['data']['batch_size']}, "
      f"{c['train']['num_train_steps']} steps of LRA's schedule "
      f"({c['optimizer']['learning_rate']} * linear warmup "
      f"{c['optimizer']['warmup_steps']} * rsqrt decay; LRA: 5000 steps). "
      "All runs use the same generated data (seed "
      f"{c['seed']}), model size, schedule and number of steps; only the "
      "attention differs. Compare the two rows with each other, not with "
      "LRA's published ListOps numbers.",
      "",
      "Reproduce (about 30 minutes on 2 CPU cores for both):",
      "",
      "```bash",
      "bash benchmarks/reduced_listops.sh     # trains both into runs/",
      "python benchmarks/reduced_results.py   # writes this file",
      "```",
      "",
      "| attention | params | test acc. (last) | test acc. (best eval, step) "
      "| majority class | train steps/s (median) |",
      "|---|---|---|---|---|---|",
  ]
  for name, r in runs.items():
    lines.append(
        f"| {name} | {r['num_params']:,} | {100 * r['test_accuracy']:.2f} | "
        f"{100 * r['test_accuracy_best_eval']:.2f} ({r['best_eval_step']}) | "
        f"{100 * r['majority_class_accuracy']:.2f} | "
        f"{r['median_train_steps_per_sec']:.2f} |")
  if all(a in runs for a in ATTENTIONS):
    ratio = (runs["macformer_exp"]["median_train_steps_per_sec"]
             / runs["softmax"]["median_train_steps_per_sec"])
    lines += ["", f"macformer_exp trains {ratio:.2f}x as many steps per "
              f"second as softmax at L = {c['data']['max_len']} (the runs "
              "were sequential on a machine shared with other work, so "
              "take speed from docs/BENCHMARKS.md)."]
  if any(a in runs for a in SPECTRA):
    lines += ["", "The Spectraformer rows ran later, on the same 2 cores "
              "shared with other jobs: their steps/s measure the machine's "
              "load, not the attention (docs/BENCHMARKS.md has the grid's "
              "speed from one run)."]
  lines += ["", "Validation accuracy (%) during training:", "",
            "| step | " + " | ".join(runs) + " |",
            "|---|" + "---|" * len(runs)]
  steps = sorted({s for r in runs.values() for s, _ in r["eval_curve"]})
  for step in steps:
    cells = []
    for r in runs.values():
      acc = dict(r["eval_curve"]).get(step)
      cells.append("" if acc is None else f"{100 * acc:.1f}")
    lines.append(f"| {step} | " + " | ".join(cells) + " |")
  for name, last in (unfinished or {}).items():
    ev = last["eval"]
    lines += ["", f"{name}: run not finished when this file was written "
              f"(last logged step {last['step']} of "
              f"{c['train']['num_train_steps']}"
              + (f", val. accuracy {100 * ev[1]:.1f}% at step {ev[0]}"
                 if ev else "") + ")."]
  lines += published_section(runs, unfinished or {})
  machine = first["machine"]
  lines += ["", f"Machine: {machine['platform']}, {machine['cpus']} CPUs. "
            "Per-run results (with the full config): "
            "`docs/results/reduced_listops_<attention>.json`.", ""]
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--runs", default=os.path.join(ROOT, "runs"))
  parser.add_argument("--docs", default=os.path.join(ROOT, "docs"))
  parser.add_argument("--from_docs", action="store_true",
                      help="rebuild from docs/results/*.json only")
  args = parser.parse_args(argv)
  out_dir = os.path.join(args.docs, "results")
  runs, unfinished = {}, {}
  for attention in ATTENTIONS + SPECTRA:
    saved = os.path.join(out_dir, f"reduced_listops_{attention}.json")
    workdir = os.path.join(args.runs, f"reduced_listops_{attention}")
    finished = os.path.exists(os.path.join(workdir, "results.json"))
    if args.from_docs or (not finished and os.path.exists(saved)):
      if os.path.exists(saved) or attention in ATTENTIONS:
        with open(saved) as f:  # an earlier run's copy in docs/results
          runs[attention] = json.load(f)
      continue
    if not finished and attention in SPECTRA:
      if os.path.exists(workdir):
        unfinished[attention] = progress(workdir)
      continue
    runs[attention] = collect(workdir)
    os.makedirs(out_dir, exist_ok=True)
    with open(saved, "w") as f:
      json.dump(runs[attention], f, indent=1)
  text = render(runs, unfinished)
  with open(os.path.join(args.docs, "RESULTS.md"), "w") as f:
    f.write(text)
  print(text)


if __name__ == "__main__":
  main()
