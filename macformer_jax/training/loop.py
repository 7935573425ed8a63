"""The run: `train_and_evaluate(config, workdir)`, one loop for every task.

Tasks differ only through their `TaskSpec` and config values;
there is no task-specific branch. What a run does:

* Data (`data.py`): the task's train/val/test sources; offline data are
  generated under `<workdir>/data/` when `data.data_dir` is unset and
  `data.offline` is set. Each host loads only its rows of every batch.
* Model: `encoder.build_model(config, task.spec)`; random features are drawn
  at init from the `features` key and live in `TrainState.random_features`.
* Steps (`steps.py`, `parallel.py`): jit over a ('data', 'model') mesh
  (default) or pmap (`train.parallelism`), over `train.num_devices` devices
  of every host. Dropout keys are per example and step, so 1 and N devices
  (or hosts) give the same run up to float summation order.
* Every `train.eval_frequency` steps (and at the end): accuracy on the val
  split; the best one is checkpointed separately. At the end: accuracy on the
  *whole* test split (padded last batch, weight 0) for the last and for the
  best-eval parameters, written to `<workdir>/results.json`.
* Checkpoints (`checkpoints.py`, orbax) every `train.checkpoint_every` steps
  and at the end. A restarted job resumes from the latest one and reaches
  the same final parameters as an uninterrupted job: batches, dropout keys
  and feature redraws are functions of (seed, step).
* Metrics (`metrics.py`): TensorBoard event files under
  `<workdir>/tensorboard` and JSON lines in `<workdir>/metrics.jsonl`; a tqdm
  bar on a terminal, log lines otherwise.
* SIGTERM (preemption, a time budget; `preemption.py`) or SIGINT (Ctrl-C):
  the step in flight finishes, its eval runs if one is due, the latest
  checkpoint is written and `Preempted` is raised; the same command resumes
  from there. A second Ctrl-C stops at once.
* A non-finite training loss stops the run with `FloatingPointError` naming
  the step; checkpoints are written only after the losses of every step
  before them were checked, so the latest checkpoint is always a good one.

Files in the workdir: config.json, metrics.jsonl, tensorboard/,
checkpoints/latest/<step>, checkpoints/best/<step>, data/ (generated data),
results.json.
"""

from collections.abc import Callable
import contextlib
import dataclasses
import json
import os
from typing import Any

from absl import logging
import jax
import numpy as np

import lra_tasks
from macformer_jax import encoder
from macformer_jax import layers
from macformer_jax import optim
from macformer_jax.training import checkpoints as checkpoints_lib
from macformer_jax.training import compilation_cache
from macformer_jax.training import data as data_lib
from macformer_jax.training import metrics as metrics_lib
from macformer_jax.training import parallel
from macformer_jax.training import preemption
from macformer_jax.training import state as state_lib
from macformer_jax.training import validation


def evaluate(
  engine: parallel.Engine, state: Any, source: Any, num_batches: int = -1
) -> dict[str, float]:
  """Loss and accuracy over `source` (all of it unless `num_batches` >= 0).

  Every host calls this with the same source; each loads its rows.

  Returns:
    {'loss', 'accuracy', 'denominator', 'majority'}: per-example means, the
    number of examples, and the accuracy of always predicting the most
    frequent target of these examples.
  """
  batches = data_lib.checked(
    lra_tasks.eval_batches(source, engine.batch_size, rows=engine.host_rows)
  )
  totals = []
  for i, batch in enumerate(batches):
    if 0 <= num_batches <= i:
      break
    totals.append(engine.eval(state, engine.put_batch(batch)))
  sums = {
    k: sum(np.asarray(t[k], np.float64) for t in engine.to_host(totals))
    for k in ("loss", "accuracy", "denominator", "class_counts")
  }
  result = metrics_lib.means(sums)
  result["denominator"] = float(sums["denominator"])
  result["majority"] = float(
    np.max(sums["class_counts"]) / max(result["denominator"], 1.0)
  )
  return result


@dataclasses.dataclass
class _Run:
  """What the named steps of `run` share: set up once by `_set_up`."""

  config: Any
  workdir: str
  sources: dict[str, Any]
  data_info: dict[str, str]
  model: Any
  engine: parallel.Engine
  keys: dict[str, jax.Array]
  state: Any
  checkpoints: checkpoints_lib.Checkpoints
  meta: dict[str, Any]
  start: int
  redraw_fn: Callable[[jax.Array], Any] | None


def train_and_evaluate(config: Any, workdir: str) -> dict[str, Any]:
  """Trains, evaluates and tests one model; resumes from `workdir`.

  `run(config, workdir)`, returning the results only (see there).
  """
  return run(config, workdir)[0]


def run(config: Any, workdir: str) -> tuple[dict[str, Any], Any]:
  """Trains, evaluates and tests one model; resumes from `workdir`.

  Every host of a multi-host job calls this with the same arguments.

  Args:
    config: a run config (configs/common.py documents every key).
    workdir: where checkpoints, metrics, generated data and results go (on a
      file system every host sees).

  Returns:
    (results, state): the results dict also written to
    `<workdir>/results.json` (task, attention, preset, steps, test_accuracy
    of the last checkpoint, as LRA reported, test_accuracy_best_eval of the
    best-eval checkpoint, data: what the data were, generated, synthetic,
    files or tfds, ... and the config), and the final TrainState.

  Raises:
    ConfigError: a config value out of range (one line, before any data).
    Preempted: SIGTERM (or SIGINT) arrived; the step it names is
      checkpointed.
    FloatingPointError: a non-finite training loss (names the step and the
      last good checkpoint).
    DataError: missing or malformed data (one line).
  """
  validation.check_config(config)
  os.makedirs(workdir, exist_ok=True)
  compilation_cache.enable_for_run(workdir)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))
  # Without a terminal, a line at least every 30 s.
  with contextlib.closing(metrics_lib.Heartbeat()) as heartbeat:
    heartbeat.phase("preparing the data and the model")
    r = _set_up(config, workdir)
    writer = metrics_lib.MetricWriter(workdir, r.start)
    progress = metrics_lib.Progress(
      r.start, config.train.num_train_steps, heartbeat
    )
    try:
      _train(r, writer, progress)
      progress.close()
      heartbeat.phase("testing")
      results = _test_and_report(r, writer)
    finally:
      progress.close()
      writer.close()
      r.checkpoints.close()
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "results.json"), "w") as f:
      json.dump(results, f, indent=2)
  return results, r.state


def _set_up(config: Any, workdir: str) -> _Run:
  """Data, model, optimizer, devices, state; restores the latest checkpoint."""
  t = config.train
  task, sources, data_info = data_lib.load_sources(config, workdir)
  spec = task.spec
  model = encoder.build_model(config, spec)
  tx, lr_fn = optim.create_optimizer(config.optimizer, t.num_train_steps)
  engine = parallel.make_engine(config, lr_fn, spec.dual_input)
  keys = state_lib.named_keys(config.seed)
  state = state_lib.create_train_state(
    config, model, spec.dual_input, tx, keys, sharding=engine.replicated
  )
  logging.info(
    "model: %s, %d parameters, attention %s (%s); %s over %d "
    "device(s) on %d host(s)",
    type(model).__name__,
    state_lib.num_params(state.params),
    config.attention.variant,
    config.attention.name,
    engine.parallelism,
    engine.num_devices,
    jax.process_count(),
  )

  checkpoints = checkpoints_lib.Checkpoints(workdir, t.keep_checkpoints)
  state, meta = checkpoints.restore_latest(state)
  meta = meta or {"best_eval_accuracy": -1.0, "best_eval_step": -1}
  start = int(state.step)
  if start:
    logging.info("resumed from %s at step %d", checkpoints.latest_dir, start)

  redraw_fn = None
  if config.attention.redraw_every and state.random_features:
    inputs = encoder.init_inputs(1, config.data.max_len, spec.dual_input)
    redraw_fn = engine.jit_replicated(
      lambda key: layers.draw_random_features(
        model, key, *inputs, deterministic=True
      )
    )
  return _Run(
    config,
    workdir,
    sources,
    data_info,
    model,
    engine,
    keys,
    state,
    checkpoints,
    meta,
    start,
    redraw_fn,
  )


def _train(
  r: _Run, writer: metrics_lib.MetricWriter, progress: metrics_lib.Progress
) -> None:
  """Steps `r.start` .. num_train_steps: log, eval and checkpoint when due.

  Raises:
    Preempted: after checkpointing the step in flight.
  """
  t, num_steps = r.config.train, r.config.train.num_train_steps
  batches = data_lib.checked(
    lra_tasks.train_batches(
      r.sources["train"],
      r.config.data.batch_size,
      seed=r.config.seed,
      start_step=r.start,
      rows=r.engine.host_rows,
    )
  )
  window = metrics_lib.TrainWindow()
  notice = preemption.PreemptionNotice()
  try:
    notice.install()
    window.resume()
    for step in range(r.start, num_steps):
      _redraw_if_due(r, step)
      r.state, metrics = r.engine.train(
        r.state, r.engine.put_batch(next(batches))
      )
      done = step + 1
      window.add(done, metrics)
      progress.step()
      is_log = done % t.log_every == 0 or done == num_steps
      is_eval = done % t.eval_frequency == 0 or done == num_steps
      preempted = done < num_steps and notice.reached(done)
      is_ckpt = (
        preempted
        or done == num_steps
        or (t.checkpoint_every and done % t.checkpoint_every == 0)
      )
      if is_log or is_eval or is_ckpt:
        window.check(r.engine.to_host, r.checkpoints.last_good())
      if is_log:
        _log_train(done, num_steps, window, writer, progress)
      window.pause()  # eval and checkpoint time is not training time
      if is_eval:
        _eval_and_keep_best(r, done, writer, progress)
      if is_ckpt:
        r.checkpoints.save_latest(done, r.engine.put_state(r.state), r.meta)
      if preempted:
        raise preemption.Preempted(
          done, r.checkpoints.latest_dir, notice.signal_name
        )
      window.resume()
  finally:
    notice.restore()  # a signal during the test stops the process as usual


def _redraw_if_due(r: _Run, step: int) -> None:
  """Redraws the random features every `attention.redraw_every` steps."""
  every = r.config.attention.redraw_every
  if r.redraw_fn is not None and step and step % every == 0:
    r.state = r.state.replace(
      random_features=r.redraw_fn(jax.random.fold_in(r.keys["redraw"], step))
    )


def _log_train(
  done: int,
  num_steps: int,
  window: metrics_lib.TrainWindow,
  writer: metrics_lib.MetricWriter,
  progress: metrics_lib.Progress,
) -> None:
  """Writes and shows the train window's means, then starts a new window."""
  scalars = window.summary()
  writer.write(done, "train", scalars)
  progress.log(
    f"step {done}/{num_steps}: train loss "
    f"{scalars['loss']:.4f} accuracy {scalars['accuracy']:.4f}"
    f" lr {scalars['learning_rate']:.3g} "
    f"{scalars['steps_per_sec']:.2f} steps/s",
    loss=f"{scalars['loss']:.4f}",
  )
  window.reset()


def _eval_and_keep_best(
  r: _Run,
  done: int,
  writer: metrics_lib.MetricWriter,
  progress: metrics_lib.Progress,
) -> None:
  """Val accuracy; a new best is checkpointed separately."""
  progress.phase(f"evaluating at step {done}")
  result = evaluate(
    r.engine, r.state, r.sources["val"], r.config.train.num_eval_batches
  )
  writer.write(
    done, "eval", {"loss": result["loss"], "accuracy": result["accuracy"]}
  )
  progress.log(
    f"step {done}: eval loss {result['loss']:.4f} accuracy "
    f"{result['accuracy']:.4f} ({result['denominator']:.0f} "
    "examples)"
  )
  if result["accuracy"] > r.meta["best_eval_accuracy"]:
    r.meta = {"best_eval_accuracy": result["accuracy"], "best_eval_step": done}
    r.checkpoints.save_best(done, r.engine.put_state(r.state), r.meta)


def _test_and_report(
  r: _Run, writer: metrics_lib.MetricWriter
) -> dict[str, Any]:
  """Test accuracies and what the run was, as written to results.json."""
  config, num_steps = r.config, r.config.train.num_train_steps
  results = _test(
    config,
    r.engine,
    r.state,
    r.sources["test"],
    r.checkpoints,
    r.meta,
    num_steps,
  )
  results["data"] = r.data_info
  results["parallelism"] = r.engine.parallelism
  results["num_devices"] = r.engine.num_devices
  results["num_hosts"] = jax.process_count()
  results["num_params"] = state_lib.num_params(r.state.params)
  results["config"] = json.loads(config.to_json_best_effort())
  writer.write(
    num_steps,
    "test",
    {
      "accuracy": results["test_accuracy"],
      "accuracy_best_eval": results["test_accuracy_best_eval"],
    },
  )
  return results


def _test(
  config: Any,
  engine: parallel.Engine,
  state: Any,
  test_source: Any,
  checkpoints: checkpoints_lib.Checkpoints,
  meta: dict,
  num_steps: int,
) -> dict[str, Any]:
  """Test accuracy of the last and the best-eval parameters."""
  last = evaluate(engine, state, test_source)
  best_state, _ = checkpoints.restore_best(engine.put_state(state))
  best = (
    last if best_state is None else evaluate(engine, best_state, test_source)
  )
  return {
    "task": config.task,
    "attention": config.attention.variant,
    "preset": config.preset,
    "smoke": config.smoke,
    "steps": num_steps,
    "test_accuracy": last["accuracy"],
    "test_loss": last["loss"],
    "test_accuracy_best_eval": best["accuracy"],
    "best_eval_step": meta["best_eval_step"],
    "best_eval_accuracy": meta["best_eval_accuracy"],
    "num_test_examples": int(last["denominator"]),
    "majority_class_accuracy": last["majority"],
  }


def summary_line(results: dict[str, Any]) -> str:
  """The one line `run_lra.py` prints at the end."""
  preset = results["preset"] + (",smoke" if results["smoke"] else "")
  line = (
    f"task={results['task']} attention={results['attention']} "
    f"preset={preset} steps={results['steps']} "
    f"test_accuracy={results['test_accuracy']:.4f} "
    f"test_accuracy_best_eval={results['test_accuracy_best_eval']:.4f}"
    f" (step {results['best_eval_step']}) "
    f"majority_class={results['majority_class_accuracy']:.4f}"
  )
  if "data" in results:
    line += f" data={results['data']['kind']}"
  return line
