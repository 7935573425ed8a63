"""One trainer for every LRA task: `train_and_evaluate(config, workdir)`.

Tasks differ only through their `TaskSpec` and config values (STYLE §19); the
trainer has no task-specific branches. What a run does:

* Data: `lra_tasks.get_task(config.task).load(...)` for train/val/test. With
  `data.data_dir` unset and a task module that has a `generate` function
  (ListOps), the data are generated under `<workdir>/data/` first.
* Model: `encoder.build_model(config, task.spec)`; random features are drawn
  at init from the `features` key and live in `TrainState.random_features`.
* Steps: pure `train_step` / `eval_step`; `jax.jit` on one device, `jax.pmap`
  (axis 'batch') over all local devices otherwise. The global batch is split
  evenly over devices (and hosts); losses are sums over examples divided by
  the global example count, so 1 and N devices compute the same update.
* Every `train.eval_frequency` steps (and at the end): accuracy on the val
  split; the best one is checkpointed separately. At the end: accuracy on the
  *whole* test split (padded last batch, weight 0) for the last and for the
  best-eval parameters, written to `<workdir>/results.json`.
* Checkpoints (orbax) every `train.checkpoint_every` steps and at the end hold
  the whole TrainState (params, optimizer state, step = data position, random
  features, dropout key). A restarted job resumes from the latest one and
  reaches the same final parameters as an uninterrupted job: batches,
  dropout keys and feature redraws are functions of (seed, step).
* Metrics: TensorBoard event files (tensorboardX) under `<workdir>/tensorboard`
  and JSON lines in `<workdir>/metrics.jsonl`; a tqdm bar on a terminal, log
  lines otherwise.
* A non-finite training loss stops the run with `FloatingPointError` naming
  the step; checkpoints are written only after the losses of every step
  before them were checked, so the latest checkpoint is always a good one.

Files in the workdir: config.json, metrics.jsonl, tensorboard/,
checkpoints/latest/<step>, checkpoints/best/<step>, data/ (generated data),
results.json.
"""

import functools
import hashlib
import importlib
import json
import os
import shutil
import sys
import time
from typing import Any, Callable, Dict, Optional, Tuple

from absl import logging
from flax import struct
from flax.training import train_state
import jax
from jax import lax
import jax.numpy as jnp
import lra_tasks
import numpy as np
import optax
import orbax.checkpoint as ocp
import tensorboardX
import tqdm

from macformer_jax import encoder
from macformer_jax import layers
from macformer_jax import optim

AXIS = "batch"  # the pmap axis name
RNG_NAMES = ("params", "features", "dropout", "redraw")


class TrainState(train_state.TrainState):
  """Flax TrainState plus the non-trainable state of a run.

  Attributes:
    random_features: the model's `random_features` collection ({} if none).
    rng: uint32 key data of the dropout key; step keys are derived from it
      by `fold_in(fold_in(key, step), device index)`.
  """
  random_features: Any = None
  rng: Any = None


# ---------------------------------------------------------------------------
# Pure step functions.


def _variables(state: TrainState, params: Any) -> Dict[str, Any]:
  variables = {"params": params}
  if state.random_features:
    variables[layers.FEATURES] = state.random_features
  return variables


def _psum(x: Any, axis_name: Optional[str]) -> Any:
  return x if axis_name is None else lax.psum(x, axis_name)


def classification_sums(logits: jax.Array, targets: jax.Array,
                        weights: jax.Array) -> Dict[str, jax.Array]:
  """Weighted sums of the cross-entropy and of correct predictions.

  Args:
    logits: [B, C] float32.
    targets: [B] int class ids.
    weights: [B] float32, 0 for padded examples.

  Returns:
    {'loss': sum w * CE, 'accuracy': sum w * correct, 'denominator': sum w},
    float32 scalars (divide by the denominator for means).
  """
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
  return {"loss": jnp.sum(ce * weights),
          "accuracy": jnp.sum(correct * weights),
          "denominator": jnp.sum(weights)}


def train_step(state: TrainState, batch: Dict[str, jax.Array], *,
               learning_rate_fn: Callable, dual_input: bool,
               axis_name: Optional[str] = None
               ) -> Tuple[TrainState, Dict[str, jax.Array]]:
  """One optimizer update on a (per-device) batch.

  The loss is sum(w * CE) over the device's examples divided by the global
  sum of weights; gradients are summed over devices, so the update equals the
  single-device update on the whole batch (up to float summation order).

  Args:
    state: the train state (replicated under pmap).
    batch: {'inputs': [b, L] int32, 'targets': [b] int32, 'weights': [b]
      float32} (+ 'inputs2'), b = the device's share of the batch.
    learning_rate_fn: the schedule (for the logged learning rate).
    dual_input: the model takes ('inputs', 'inputs2').
    axis_name: the pmap axis, or None under jit on one device.

  Returns:
    (new state, metrics): sums 'loss', 'accuracy', 'denominator' over the
    global batch, and 'learning_rate' used for this update.
  """
  step = state.step
  device = 0 if axis_name is None else lax.axis_index(axis_name)
  key = jax.random.wrap_key_data(state.rng)
  dropout_key = jax.random.fold_in(jax.random.fold_in(key, step), device)
  weights = batch["weights"].astype(jnp.float32)
  denominator = _psum(jnp.sum(weights), axis_name)

  def loss_fn(params):
    logits = state.apply_fn(
        _variables(state, params),
        *encoder.model_inputs(batch, dual_input), deterministic=False,
        rngs={"dropout": dropout_key})
    sums = classification_sums(logits, batch["targets"], weights)
    return sums["loss"] / jnp.maximum(denominator, 1.0), sums

  grads, sums = jax.grad(loss_fn, has_aux=True)(state.params)
  grads = _psum(grads, axis_name)
  new_state = state.apply_gradients(grads=grads)
  metrics = {"loss": _psum(sums["loss"], axis_name),
             "accuracy": _psum(sums["accuracy"], axis_name),
             "denominator": denominator,
             "learning_rate": learning_rate_fn(step)}
  return new_state, metrics


def eval_step(state: TrainState, batch: Dict[str, jax.Array], *,
              dual_input: bool, axis_name: Optional[str] = None
              ) -> Dict[str, jax.Array]:
  """Metric sums of one (per-device) eval batch, summed over devices.

  Args:
    state: the train state.
    batch: as in `train_step`; padded examples have weight 0.
    dual_input: the model takes ('inputs', 'inputs2').
    axis_name: the pmap axis, or None.

  Returns:
    {'loss', 'accuracy', 'denominator'} sums (see `classification_sums`).
  """
  logits = state.apply_fn(_variables(state, state.params),
                          *encoder.model_inputs(batch, dual_input),
                          deterministic=True)
  sums = classification_sums(logits, batch["targets"],
                             batch["weights"].astype(jnp.float32))
  return jax.tree.map(lambda x: _psum(x, axis_name), sums)


# ---------------------------------------------------------------------------
# Device mapping: the only code that knows about devices.


@struct.dataclass
class StepFns:
  """Compiled steps and the host-side batch sharding that feeds them."""
  train: Callable = struct.field(pytree_node=False)
  eval: Callable = struct.field(pytree_node=False)
  shard: Callable = struct.field(pytree_node=False)
  num_devices: int = struct.field(pytree_node=False)


def _host_slice(batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
  """This host's contiguous share of a global batch (multi-host)."""
  count, index = jax.process_count(), jax.process_index()
  if count == 1:
    return batch
  return {k: np.split(v, count)[index] for k, v in batch.items()}


def make_step_fns(num_devices: int, batch_size: int,
                  learning_rate_fn: Callable, dual_input: bool) -> StepFns:
  """`jax.jit` steps on one device, or `jax.pmap` steps over local devices.

  Args:
    num_devices: `train.num_devices` (0 = all local devices, 1 = jit).
    batch_size: the global batch size.
    learning_rate_fn: passed to `train_step`.
    dual_input: passed to the steps.

  Returns:
    StepFns; `shard(batch)` turns a global numpy batch into the input of the
    steps ([B, ...] under jit, [devices, B / devices, ...] under pmap).

  Raises:
    ValueError: the batch cannot be split evenly over hosts and devices.
  """
  local = jax.local_device_count()
  n = local if num_devices == 0 else num_devices
  if n > local:
    raise ValueError(f"train.num_devices={num_devices} but only {local} "
                     f"local devices: {jax.local_devices()}")
  total = n * jax.process_count()
  if batch_size % total:
    raise ValueError(
        f"data.batch_size={batch_size} cannot be split evenly over {total} "
        f"devices ({jax.process_count()} host(s) x {n}); use a multiple of "
        f"{total}, or --config.train.num_devices=1 for one device")
  train = functools.partial(train_step, learning_rate_fn=learning_rate_fn,
                            dual_input=dual_input)
  evaluate = functools.partial(eval_step, dual_input=dual_input)
  if total == 1:
    return StepFns(train=jax.jit(train, donate_argnums=(0,)),
                   eval=jax.jit(evaluate), shard=_host_slice, num_devices=1)
  devices = jax.local_devices()[:n]

  def shard(batch):
    return {k: v.reshape((n, -1) + v.shape[1:])
            for k, v in _host_slice(batch).items()}

  pmap = functools.partial(jax.pmap, axis_name=AXIS, in_axes=(None, 0),
                           devices=devices)
  return StepFns(
      train=pmap(functools.partial(train, axis_name=AXIS),
                 out_axes=(None, None), donate_argnums=(0,)),
      eval=pmap(functools.partial(evaluate, axis_name=AXIS), out_axes=None),
      shard=shard, num_devices=total)


# ---------------------------------------------------------------------------
# Data.


def _offline_data_dir(config: Any, workdir: str) -> str:
  """Generates the task's data under `<workdir>/data/` (once) and returns it.

  Calls `lra_tasks.<task>.generate(dir, seed=config.seed, **data.offline)`.
  The folder name hashes the task, seed and generator settings, so changed
  settings never reuse stale files.
  """
  args = config.data.offline.to_dict()
  tag = hashlib.sha1(json.dumps([config.task, config.seed, args],
                                sort_keys=True).encode()).hexdigest()[:8]
  path = os.path.join(workdir, "data", f"{config.task}-{tag}")
  done = os.path.join(path, "DONE")
  if os.path.exists(done):
    return path
  logging.info("data.data_dir is unset: generating %s data in %s (%s)",
               config.task, path, args)
  module = importlib.import_module(f"lra_tasks.{config.task}")
  tmp = f"{path}.tmp{jax.process_index()}"
  if os.path.exists(tmp):
    shutil.rmtree(tmp)  # an interrupted generation
  module.generate(tmp, seed=config.seed, **args)
  with open(os.path.join(tmp, "DONE"), "w") as f:
    json.dump(args, f)
  try:
    os.replace(tmp, path)
  except OSError:  # another host renamed its identical copy first
    if not os.path.exists(done):
      raise
    shutil.rmtree(tmp, ignore_errors=True)
  return path


def load_sources(config: Any, workdir: str) -> Tuple[Any, Dict[str, Any]]:
  """The task and its train/val/test sources.

  With `data.data_dir` unset and `data.offline` set, the data are generated
  under the workdir first; with both unset, `task.load` gets None (TFDS's
  default data dir for Text and Image).

  Returns:
    (task, {'train': source, 'val': source, 'test': source}).
  """
  task = lra_tasks.get_task(config.task)
  data_dir = config.data.data_dir
  if data_dir is None and config.data.offline:
    data_dir = _offline_data_dir(config, workdir)
  options = config.data.options.to_dict()
  sources = {split: task.load(data_dir, split, max_len=config.data.max_len,
                              **options)
             for split in ("train", "val", "test")}
  return task, sources


# ---------------------------------------------------------------------------
# Metrics output.


class MetricWriter:
  """Scalars to TensorBoard (tensorboardX) and to a JSON-lines file.

  Only process 0 writes. On resume from step s, lines and events after s are
  dropped so that the files describe one uninterrupted run.
  """

  def __init__(self, workdir: str, start_step: int):
    self.active = jax.process_index() == 0
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.tb = None
    if not self.active:
      return
    if os.path.exists(self.path):  # keep lines up to the resumed step
      records = []
      with open(self.path) as f:
        for line in f:
          try:
            records.append(json.loads(line))
          except ValueError:
            pass  # a line cut short when the job was killed
      with open(self.path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records
                     if r["step"] <= start_step and r["split"] != "test")
    self.tb = tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard"),
                            purge_step=start_step + 1)

  def write(self, step: int, split: str, scalars: Dict[str, float]) -> None:
    if not self.active:
      return
    scalars = {k: float(v) for k, v in scalars.items()}
    with open(self.path, "a") as f:
      f.write(json.dumps({"step": int(step), "split": split, **scalars}) +
              "\n")
    for name, value in scalars.items():
      self.tb.add_scalar(f"{split}/{name}", value, int(step))

  def close(self) -> None:
    if self.tb is not None:
      self.tb.close()


def _means(sums: Dict[str, float]) -> Dict[str, float]:
  """Per-example means of metric sums (`loss`, `accuracy`)."""
  denom = max(sums["denominator"], 1.0)
  return {"loss": sums["loss"] / denom, "accuracy": sums["accuracy"] / denom}


# ---------------------------------------------------------------------------
# Checkpoints.


class Checkpoints:
  """The latest checkpoints and the best-eval checkpoint (orbax).

  Each checkpoint holds the TrainState and a JSON record of the best eval
  so far, so a resumed run keeps selecting the same best checkpoint.
  """

  def __init__(self, workdir: str, keep: int):
    root = os.path.join(os.path.abspath(workdir), "checkpoints")
    options = functools.partial(ocp.CheckpointManagerOptions,
                                enable_async_checkpointing=False, create=True)
    self.latest = ocp.CheckpointManager(
        os.path.join(root, "latest"), item_names=("state", "meta"),
        options=options(preservation_policy=ocp.checkpoint_managers.LatestN(
            n=max(keep, 1))))
    self.best = ocp.CheckpointManager(
        os.path.join(root, "best"), item_names=("state", "meta"),
        options=options(preservation_policy=ocp.checkpoint_managers.LatestN(
            n=1)))
    self.latest_dir = os.path.join(root, "latest")

  @staticmethod
  def _save(manager, step: int, state: TrainState, meta: dict) -> None:
    manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
                 force=True)
    manager.wait_until_finished()

  def save_latest(self, step, state, meta):
    if self.latest.latest_step() != step:
      self._save(self.latest, step, state, meta)

  def save_best(self, step, state, meta):
    if self.best.latest_step() != step:
      self._save(self.best, step, state, meta)

  @staticmethod
  def _restore(manager, step, target: TrainState) -> Tuple[TrainState, dict]:
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract),
        meta=ocp.args.JsonRestore()))
    return restored["state"], restored["meta"]

  def restore_latest(self, target):
    """(state, meta) of the latest checkpoint, or (target, None)."""
    step = self.latest.latest_step()
    if step is None:
      return target, None
    state, meta = self._restore(self.latest, step, target)
    # Best checkpoints newer than the resume point are recomputed (the same
    # evals happen again), so drop them to keep one consistent history.
    for best_step in self.best.all_steps():
      if best_step > step:
        self.best.delete(best_step)
    return state, meta

  def restore_best(self, target):
    step = self.best.latest_step()
    if step is None:
      return None, None
    return self._restore(self.best, step, target)

  def close(self):
    self.latest.close()
    self.best.close()


# ---------------------------------------------------------------------------
# The run.


def named_keys(seed: int) -> Dict[str, jax.Array]:
  """One typed key per name in RNG_NAMES, split from `config.seed`."""
  keys = jax.random.split(jax.random.key(seed), len(RNG_NAMES))
  return dict(zip(RNG_NAMES, keys))


def create_train_state(config: Any, model: Any, dual_input: bool,
                       tx: optax.GradientTransformation,
                       keys: Dict[str, jax.Array]) -> TrainState:
  """Initialises params and random features (under jit) and the optimizer."""
  inputs = encoder.init_inputs(1, config.data.max_len, dual_input)
  init = jax.jit(functools.partial(model.init, deterministic=True))
  variables = init({"params": keys["params"], "features": keys["features"],
                    "dropout": keys["dropout"]}, *inputs)
  return TrainState.create(
      apply_fn=model.apply, params=variables["params"], tx=tx,
      random_features=variables.get(layers.FEATURES, {}),
      rng=jax.random.key_data(keys["dropout"]))


def _num_params(params: Any) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def evaluate(step_fns: StepFns, state: TrainState, source: Any,
             batch_size: int, num_batches: int = -1
             ) -> Dict[str, float]:
  """Loss and accuracy over `source` (all of it unless `num_batches` >= 0).

  Returns:
    {'loss', 'accuracy', 'denominator', 'majority'}: per-example means, the
    number of examples, and the accuracy of always predicting the most
    frequent target of these examples.
  """
  totals = []
  counts: Dict[int, float] = {}
  for i, batch in enumerate(lra_tasks.eval_batches(source, batch_size)):
    if 0 <= num_batches <= i:
      break
    totals.append(step_fns.eval(state, step_fns.shard(batch)))
    for target, weight in zip(batch["targets"].tolist(),
                              batch["weights"].tolist()):
      counts[target] = counts.get(target, 0.0) + weight
  sums = {k: float(sum(np.asarray(t[k]) for t in jax.device_get(totals)))
          for k in ("loss", "accuracy", "denominator")}
  result = _means(sums)
  result["denominator"] = sums["denominator"]
  result["majority"] = max(counts.values()) / max(sums["denominator"], 1.0)
  return result


class _Progress:
  """tqdm on an interactive terminal (process 0), log lines otherwise."""

  def __init__(self, start: int, total: int):
    self.bar = None
    if jax.process_index() == 0 and sys.stderr.isatty():
      self.bar = tqdm.tqdm(total=total, initial=start, unit="step",
                      dynamic_ncols=True)

  def step(self):
    if self.bar is not None:
      self.bar.update(1)

  def log(self, message: str, **postfix):
    """Train lines update the bar's postfix; other lines are printed."""
    if self.bar is None:
      logging.info("%s", message)
    elif postfix:
      self.bar.set_postfix(postfix, refresh=False)
    else:
      self.bar.write(message)

  def close(self):
    if self.bar is not None:
      self.bar.close()
      self.bar = None


def _check_config(config: Any) -> None:
  if config.task is None:
    raise ValueError("config.task is unset; use a configs/<task>.py file")
  t = config.train
  for key in ("num_train_steps", "eval_frequency", "log_every"):
    if t[key] < 1:
      raise ValueError(f"train.{key} must be >= 1, got {t[key]}")


def train_and_evaluate(config: Any, workdir: str) -> Dict[str, Any]:
  """Trains, evaluates and tests one model; resumes from `workdir`.

  Args:
    config: a run config (configs/common.py documents every key).
    workdir: where checkpoints, metrics, generated data and results go.

  Returns:
    The results dict also written to `<workdir>/results.json`: task,
    attention, preset, steps, test_accuracy (last checkpoint, as LRA
    reported), test_accuracy_best_eval (best-eval checkpoint), ... and the
    config.

  Raises:
    FloatingPointError: a non-finite training loss (names the step and the
      last good checkpoint).
  """
  _check_config(config)
  os.makedirs(workdir, exist_ok=True)
  is_main = jax.process_index() == 0
  if is_main:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))
  t = config.train
  num_steps = t.num_train_steps

  task, sources = load_sources(config, workdir)
  spec = task.spec
  model = encoder.build_model(config, spec)
  tx, lr_fn = optim.create_optimizer(config.optimizer, num_steps)
  keys = named_keys(config.seed)
  state = create_train_state(config, model, spec.dual_input, tx, keys)
  logging.info("model: %s, %d parameters, attention %s (%s)",
               type(model).__name__, _num_params(state.params),
               config.attention.variant, config.attention.name)
  step_fns = make_step_fns(t.num_devices, config.data.batch_size, lr_fn,
                           spec.dual_input)

  checkpoints = Checkpoints(workdir, t.keep_checkpoints)
  state, meta = checkpoints.restore_latest(state)
  meta = meta or {"best_eval_accuracy": -1.0, "best_eval_step": -1}
  start = int(state.step)
  if start:
    logging.info("resumed from %s at step %d", checkpoints.latest_dir, start)

  redraw_fn = None
  if config.attention.redraw_every and state.random_features:
    inputs = encoder.init_inputs(1, config.data.max_len, spec.dual_input)
    redraw_fn = jax.jit(lambda key: layers.draw_random_features(
        model, key, *inputs, deterministic=True))

  writer = MetricWriter(workdir, start)
  progress = _Progress(start, num_steps)
  batches = lra_tasks.train_batches(sources["train"], config.data.batch_size,
                                    seed=config.seed, start_step=start)
  pending = []  # (step, device metrics) not yet checked on the host
  window = {"loss": 0.0, "accuracy": 0.0, "denominator": 0.0, "steps": 0}
  window_start = time.time()
  last_good = checkpoints.latest.latest_step()

  def flush():
    """Fetches pending metrics; raises on a non-finite loss."""
    for step, metrics in zip([s for s, _ in pending],
                             jax.device_get([m for _, m in pending])):
      if not np.isfinite(metrics["loss"]):
        where = (f"step {last_good} in {checkpoints.latest_dir}"
                 if last_good is not None else "none (no checkpoint yet)")
        raise FloatingPointError(
            f"non-finite training loss ({metrics['loss']}) at step {step}; "
            f"last good checkpoint: {where}. Lower the learning rate, clip "
            "gradients (optimizer.grad_clip_*) or use model.dtype=float32.")
      for k in ("loss", "accuracy", "denominator"):
        window[k] += float(metrics[k])
      window["steps"] += 1
      window["learning_rate"] = float(metrics["learning_rate"])
    pending.clear()

  try:
    for step in range(start, num_steps):
      if (redraw_fn is not None and step and
          step % config.attention.redraw_every == 0):
        state = state.replace(random_features=redraw_fn(
            jax.random.fold_in(keys["redraw"], step)))
      state, metrics = step_fns.train(state, step_fns.shard(next(batches)))
      done = step + 1
      pending.append((done, metrics))
      progress.step()
      is_eval = done % t.eval_frequency == 0 or done == num_steps
      is_ckpt = done == num_steps or (t.checkpoint_every and
                                      done % t.checkpoint_every == 0)
      if done % t.log_every == 0 or is_eval or is_ckpt:
        flush()
      if done % t.log_every == 0 or done == num_steps:
        elapsed = time.time() - window_start
        scalars = _means(window)
        scalars["learning_rate"] = window["learning_rate"]
        scalars["steps_per_sec"] = window["steps"] / max(elapsed, 1e-9)
        writer.write(done, "train", scalars)
        progress.log(f"step {done}/{num_steps}: train loss "
                     f"{scalars['loss']:.4f} accuracy {scalars['accuracy']:.4f}"
                     f" lr {scalars['learning_rate']:.3g} "
                     f"{scalars['steps_per_sec']:.2f} steps/s",
                     loss=f"{scalars['loss']:.4f}")
        window = {"loss": 0.0, "accuracy": 0.0, "denominator": 0.0,
                  "steps": 0}
        window_start = time.time()
      if is_eval:
        result = evaluate(step_fns, state, sources["val"],
                          config.data.batch_size, t.num_eval_batches)
        writer.write(done, "eval", {"loss": result["loss"],
                                    "accuracy": result["accuracy"]})
        progress.log(f"step {done}: eval loss {result['loss']:.4f} accuracy "
                     f"{result['accuracy']:.4f} ({result['denominator']:.0f} "
                     "examples)")
        if result["accuracy"] > meta["best_eval_accuracy"]:
          meta = {"best_eval_accuracy": result["accuracy"],
                  "best_eval_step": done}
          checkpoints.save_best(done, state, meta)
      if is_ckpt:
        checkpoints.save_latest(done, state, meta)
        last_good = done
      if is_eval or is_ckpt:  # keep eval and checkpoint time out of steps/s
        window_start = time.time()
    flush()
    progress.close()
    results = _test(config, step_fns, state, sources["test"], checkpoints,
                    meta, num_steps)
    results["num_params"] = _num_params(state.params)
    results["config"] = json.loads(config.to_json_best_effort())
    writer.write(num_steps, "test", {
        "accuracy": results["test_accuracy"],
        "accuracy_best_eval": results["test_accuracy_best_eval"]})
  finally:
    progress.close()
    writer.close()
    checkpoints.close()
  if is_main:
    with open(os.path.join(workdir, "results.json"), "w") as f:
      json.dump(results, f, indent=2)
  return results


def _test(config, step_fns, state, test_source, checkpoints, meta,
          num_steps) -> Dict[str, Any]:
  """Test accuracy of the last and the best-eval parameters."""
  batch_size = config.data.batch_size
  last = evaluate(step_fns, state, test_source, batch_size)
  best_state, _ = checkpoints.restore_best(state)
  best = last if best_state is None else evaluate(step_fns, best_state,
                                                  test_source, batch_size)
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


def summary_line(results: Dict[str, Any]) -> str:
  """The one line `run_lra.py` prints at the end."""
  preset = results["preset"] + (",smoke" if results["smoke"] else "")
  return (f"task={results['task']} attention={results['attention']} "
          f"preset={preset} steps={results['steps']} "
          f"test_accuracy={results['test_accuracy']:.4f} "
          f"test_accuracy_best_eval={results['test_accuracy_best_eval']:.4f}"
          f" (step {results['best_eval_step']}) "
          f"majority_class={results['majority_class_accuracy']:.4f}")
