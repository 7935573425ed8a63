"""Writes docs/RESULTS.md: the reduced ListOps comparison, from the runs.

  bash benchmarks/reduced_listops.sh          # trains (see its header)
  bash benchmarks/reduced_listops.sh "spectra_oprf_fastfoodl \
      spectra_posrf_orf spectra_posrf_sorf"   # Spectraformer grid rows
  python -m benchmarks.reduced_results        # this report

Reads runs/reduced_listops_<attention>/{results.json,metrics.jsonl}, copies
each run's results (with its eval curve and median train steps/s) to
docs/results/reduced_listops_<attention>.json, so the report rebuilds from
the repository alone (`--from_docs`), and renders docs/RESULTS.md beside
Spectraformer's published, not comparable, numbers. The grid rows are
optional; an unfinished one is listed with its last logged step.
"""

import argparse
import json
import os
import platform
import statistics

from benchmarks import common

ATTENTIONS = ("softmax", "macformer_exp")
# Spectraformer grid rows (docs/METHOD.md §7), optional.
SPECTRA = ("spectra_oprf_fastfoodl", "spectra_posrf_orf", "spectra_posrf_sorf")
PUBLISHED = os.path.join(common.REPO, "benchmarks",
                         "spectraformer_published.json")


def _rows(workdir: str):
  path = os.path.join(workdir, "metrics.jsonl")
  if os.path.exists(path):
    with open(path) as f:
      yield from (json.loads(line) for line in f)


def read_metrics(workdir: str) -> tuple:
  """A run's eval curve [[step, accuracy], ...] and its train steps/s."""
  rows = list(_rows(workdir))
  return ([[r["step"], r["accuracy"]] for r in rows if r["split"] == "eval"],
          [r["steps_per_sec"] for r in rows
           if r["split"] == "train" and "steps_per_sec" in r])


def collect(workdir: str) -> dict:
  """results.json plus the eval curve and median train steps/s of a run."""
  results, _ = common.load_json(os.path.join(workdir, "results.json"))
  if results is None:
    raise FileNotFoundError(f"{workdir}/results.json is missing: run "
                            "`bash benchmarks/reduced_listops.sh` first")
  curve, speeds = read_metrics(workdir)
  return dict(results, eval_curve=curve,
              median_train_steps_per_sec=statistics.median(speeds),
              machine={"platform": platform.platform(),
                       "cpus": os.cpu_count()})


def progress(workdir: str) -> dict:
  """Last logged train step and eval accuracy of an unfinished run."""
  rows = list(_rows(workdir))
  evals = [(r["step"], r["accuracy"]) for r in rows if r["split"] == "eval"]
  return {"step": max([0] + [r["step"] for r in rows]),
          "eval": evals[-1] if evals else None}


def published_section(runs: dict, unfinished: dict) -> list:
  """Spectraformer's published LRA numbers, beside our rows' names."""
  with open(PUBLISHED) as f:
    pub = json.load(f)
  ours = {v: k for k, v in pub["ours"].items()}
  lines = ["", "## Spectraformer's published numbers (NOT comparable)", "",
           f"**Not comparable in scale or task:** {pub['harness']} "
           f"Source: {pub['source']}", "",
           "| published row | our preset | " + " | ".join(pub["columns"])
           + " |", "|---|---|" + "---|" * len(pub["columns"])]
  for name, values in pub["rows"].items():
    preset = ours.get(name, "")
    if preset in unfinished:
      preset += " (not finished)"
    elif preset and preset not in runs:
      preset += " (not run)"
    lines.append(f"| {name} | {preset} | "
                 + " | ".join(f"{v:g}" for v in values) + " |")
  return lines


def render(runs: dict, unfinished: dict = None) -> str:
  first = next(iter(runs.values()))
  c = first["config"]
  d, m, o = c["data"]["offline"], c["model"], c["optimizer"]
  lines = [
      "# Reduced LRA run: ListOps on generated data, softmax vs Macformer "
      "(and Spectraformer grid rows)", "",
      "**Scale, honestly:** this is *not* the LRA ListOps task. It is a",
      "reduced, offline stand-in that trains in minutes on a 2-core CPU:",
      f"generated ListOps trees of {d['min_length']}-{d['max_length']} "
      f"tokens (depth <= {d['max_depth']}, at most {d['max_args']} "
      "arguments; LRA: 500-2000 tokens, depth 10) padded to L = "
      f"{c['data']['max_len']}, {d['num_train']}/{d['num_val']}/"
      f"{d['num_test']} train/val/test examples (LRA: 96k/2k/2k), a model "
      f"with emb {m['emb_dim']}, {m['num_layers']} layers, {m['num_heads']} "
      f"heads, MLP {m['mlp_dim']} (LRA: 512/4/8/1024), batch "
      f"{c['data']['batch_size']}, {c['train']['num_train_steps']} steps of "
      f"LRA's schedule ({o['learning_rate']} * linear warmup "
      f"{o['warmup_steps']} * rsqrt decay; LRA: 5000 steps). All runs use "
      f"the same generated data (seed {c['seed']}), model size, schedule and "
      "number of steps; only the attention differs. Compare the two rows "
      "with each other, not with LRA's published ListOps numbers.", "",
      "Reproduce (about 30 minutes on 2 CPU cores for both):", "",
      "```bash",
      "bash benchmarks/reduced_listops.sh     # trains both into runs/",
      "python -m benchmarks.reduced_results   # writes this file",
      "```", "",
      "| attention | params | test acc. (last) | test acc. (best eval, step) "
      "| majority class | train steps/s (median) |",
      "|---|---|---|---|---|---|"]
  lines += [
      f"| {name} | {r['num_params']:,} | {100 * r['test_accuracy']:.2f} | "
      f"{100 * r['test_accuracy_best_eval']:.2f} ({r['best_eval_step']}) | "
      f"{100 * r['majority_class_accuracy']:.2f} | "
      f"{r['median_train_steps_per_sec']:.2f} |" for name, r in runs.items()]
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
  for step in sorted({s for r in runs.values() for s, _ in r["eval_curve"]}):
    accs = [dict(r["eval_curve"]).get(step) for r in runs.values()]
    lines.append(f"| {step} | " + " | ".join(
        "" if a is None else f"{100 * a:.1f}" for a in accs) + " |")
  for name, last in (unfinished or {}).items():
    ev = last["eval"]
    lines += ["", f"{name}: run not finished when this file was written "
              f"(last logged step {last['step']} of "
              f"{c['train']['num_train_steps']}"
              + (f", val. accuracy {100 * ev[1]:.1f}% at step {ev[0]}"
                 if ev else "") + ")."]
  lines += published_section(runs, unfinished or {})
  lines += ["", f"Machine: {first['machine']['platform']}, "
            f"{first['machine']['cpus']} CPUs. Per-run results (with the "
            "full config): `docs/results/reduced_listops_<attention>.json`.",
            ""]
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--runs", default=os.path.join(common.REPO, "runs"))
  parser.add_argument("--docs", default=os.path.join(common.REPO, "docs"))
  parser.add_argument("--from_docs", action="store_true",
                      help="rebuild from docs/results/*.json only")
  args = parser.parse_args(argv)
  runs, unfinished = {}, {}
  for attention in ATTENTIONS + SPECTRA:
    saved = os.path.join(args.docs, "results",
                         f"reduced_listops_{attention}.json")
    workdir = os.path.join(args.runs, f"reduced_listops_{attention}")
    finished = os.path.exists(os.path.join(workdir, "results.json"))
    if args.from_docs or (not finished and os.path.exists(saved)):
      if os.path.exists(saved) or attention in ATTENTIONS:
        with open(saved) as f:  # an earlier run's copy in docs/results
          runs[attention] = json.load(f)
    elif finished or attention in ATTENTIONS:
      runs[attention] = collect(workdir)
      common.write(saved, json.dumps(runs[attention], indent=1))
    elif os.path.exists(workdir):
      unfinished[attention] = progress(workdir)
  common.write(os.path.join(args.docs, "RESULTS.md"), render(runs,
                                                             unfinished))


if __name__ == "__main__":
  main()
