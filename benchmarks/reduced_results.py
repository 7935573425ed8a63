"""Writes docs/RESULTS.md: the reduced ListOps comparison, from the runs.

  bash benchmarks/reduced_listops.sh          # trains (see its header)
  bash benchmarks/reduced_listops.sh "spectra_oprf_fastfoodl \
      spectra_posrf_orf spectra_posrf_sorf"   # Spectraformer grid rows
  python -m benchmarks.reduced_results        # this report

Copies each finished run under runs/reduced_listops_<attention> (results,
eval curve, median train steps/s) to docs/results/reduced_listops_<attention>
.json and an unfinished one's progress to ..._<attention>.progress.json, so
the report rebuilds from the repository alone (`--from_docs`), beside
Spectraformer's published, not comparable, numbers. Grid rows are optional.
"""

import argparse
import json
import os
import statistics

from benchmarks import common

ATTENTIONS = ("softmax", "macformer_exp")
# Spectraformer grid rows (docs/METHOD.md §7), optional.
SPECTRA = ("spectra_oprf_fastfoodl", "spectra_posrf_orf", "spectra_posrf_sorf")
PUBLISHED = os.path.join(common.REPO, "benchmarks",
                         "spectraformer_published.json")
PAGE = """# Reduced LRA run: ListOps on generated data, softmax vs Macformer
  (and Spectraformer grid rows)

**Scale, honestly:** this is *not* the LRA ListOps task. It is a
reduced, offline stand-in that trains in minutes on a 2-core CPU:
generated ListOps trees of {d[min_length]}-{d[max_length]} tokens (depth <=
  {d[max_depth]}, at most {d[max_args]} arguments; LRA: 500-2000 tokens,
  depth 10) padded to L = {c[data][max_len]},
  {d[num_train]}/{d[num_val]}/{d[num_test]} train/val/test examples (LRA:
  96k/2k/2k), a model with emb {m[emb_dim]}, {m[num_layers]} layers,
  {m[num_heads]} heads, MLP {m[mlp_dim]} (LRA: 512/4/8/1024), batch
  {c[data][batch_size]}, {c[train][num_train_steps]} steps of LRA's schedule
  ({o[learning_rate]} * linear warmup {o[warmup_steps]} * rsqrt decay; LRA:
  5000 steps). All runs use the same generated data (seed {c[seed]}), model
  size, schedule and number of steps; only the attention differs. Compare the
  two rows with each other, not with LRA's published ListOps numbers.

Reproduce (about 30 minutes on 2 CPU cores for both):

```bash
bash benchmarks/reduced_listops.sh     # trains both into runs/
python -m benchmarks.reduced_results   # writes this file
```

"""


def render(runs: dict, unfinished: dict = None) -> str:
  first = next(iter(runs.values()))
  c = first["config"]
  lines = common.table(
      ["attention", "params", "test acc. (last)",
       "test acc. (best eval, step)", "majority class",
       "train steps/s (median)"],
      [[name, f"{r['num_params']:,}", f"{100 * r['test_accuracy']:.2f}",
        f"{100 * r['test_accuracy_best_eval']:.2f} ({r['best_eval_step']})",
        f"{100 * r['majority_class_accuracy']:.2f}",
        f"{r['median_train_steps_per_sec']:.2f}"]
       for name, r in runs.items()])
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
  steps = sorted({s for r in runs.values() for s, _ in r["eval_curve"]})
  lines += ["", "Validation accuracy (%) during training:", ""] + (
      common.table(["step", *runs], [[str(step)] + [
          "" if a is None else f"{100 * a:.1f}" for a in (
              dict(r["eval_curve"]).get(step) for r in runs.values())]
                                     for step in steps]))
  for name, last in (unfinished or {}).items():
    ev = last["eval"]
    lines += ["", f"{name}: run not finished when this file was written "
              f"(last logged step {last['step']} of "
              f"{c['train']['num_train_steps']}"
              + (f", val. accuracy {100 * ev[1]:.1f}% at step {ev[0]}"
                 if ev else "") + ")."]
  with open(PUBLISHED) as f:
    pub = json.load(f)
  ours = {v: k for k, v in pub["ours"].items()}
  status = lambda p: (" (not finished)" if p in (unfinished or {}) else
                      " (not run)" if p and p not in runs else "")
  lines += ["", "## Spectraformer's published numbers (NOT comparable)", "",
            f"**Not comparable in scale or task:** {pub['harness']} "
            f"Source: {pub['source']}", ""] + common.table(
                ["published row", "our preset", *pub["columns"]],
                [[name, ours.get(name, "") + status(ours.get(name, ""))] +
                 [f"{v:g}" for v in values]
                 for name, values in pub["rows"].items()])
  lines += ["", f"Machine: {first['machine']['platform']}, "
            f"{first['machine']['cpus']} CPUs. Per-run results (with the "
            "full config): `docs/results/reduced_listops_<attention>.json`.",
            ""]
  d, m, o = c["data"]["offline"], c["model"], c["optimizer"]
  return common.fill(PAGE, c=c, d=d, m=m, o=o) + "\n".join(lines)


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
    progress = saved.replace(".json", ".progress.json")
    workdir = os.path.join(args.runs, f"reduced_listops_{attention}")
    results, curve, speeds = common.read_run(workdir)
    if results is not None and not args.from_docs:
      runs[attention] = dict(
          results, eval_curve=curve, machine=common.host(),
          median_train_steps_per_sec=statistics.median(speeds))
      common.write(saved, json.dumps(runs[attention], indent=1))
    elif os.path.exists(saved) or attention in ATTENTIONS:
      with open(saved) as f:  # an earlier run's copy in docs/results
        runs[attention] = json.load(f)
    elif os.path.exists(workdir) and not args.from_docs:
      with open(os.path.join(workdir, "metrics.jsonl")) as f:
        steps = [json.loads(line)["step"] for line in f]
      unfinished[attention] = {"step": max([0] + steps),
                               "eval": curve[-1] if curve else None}
      common.write(progress, json.dumps(unfinished[attention]))
    elif os.path.exists(progress):
      with open(progress) as f:
        unfinished[attention] = json.load(f)
  common.write(os.path.join(args.docs, "RESULTS.md"), render(runs,
                                                             unfinished))


if __name__ == "__main__":
  main()
