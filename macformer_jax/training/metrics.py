"""Metrics: means of metric sums, the train window, writers, progress.

Steps return metric *sums* over the global batch plus a 'denominator'
(docs/METHOD.md §8.4), so means over any number of batches are sums divided by
sums. `TrainWindow` collects them between log lines as plain state.
"""

from collections.abc import Callable
import contextlib
import dataclasses
import json
import math
import os
import sys
import threading
import time
from typing import Any

from absl import logging
import jax
import numpy as np
import tensorboardX
import tqdm


def means(sums: dict[str, float]) -> dict[str, float]:
  """Per-example means of metric sums (`loss`, `accuracy`)."""
  denominator = max(float(sums["denominator"]), 1.0)
  return {
    "loss": float(sums["loss"]) / denominator,
    "accuracy": float(sums["accuracy"]) / denominator,
  }


@dataclasses.dataclass
class TrainWindow:
  """The train metrics since the last log line, and the time spent training.

  Device metrics are queued by `add` and fetched by `check`, so the host
  does not wait for every step; `pause`/`resume` keep eval and checkpoint
  time out of steps/s.
  """

  loss: float = 0.0
  accuracy: float = 0.0
  denominator: float = 0.0
  steps: int = 0
  learning_rate: float = math.nan
  seconds: float = 0.0  # training time of the steps summed so far
  pending: list[tuple[int, Any]] = dataclasses.field(default_factory=list)
  running_since: float | None = None

  def add(self, step: int, device_metrics: Any) -> None:
    """Queues the (not yet fetched) metrics of the update that made `step`."""
    self.pending.append((step, device_metrics))

  def check(self, to_host: Callable[[Any], Any], last_good: str) -> None:
    """Fetches the queued metrics into the sums.

    Raises:
      FloatingPointError: a non-finite loss; names the step and `last_good`
        (the last good checkpoint).
    """
    fetched = to_host([m for _, m in self.pending])
    for (step, _), metrics in zip(self.pending, fetched, strict=True):
      if not np.isfinite(metrics["loss"]):
        self.pending.clear()
        raise FloatingPointError(
          f"non-finite training loss ({metrics['loss']}) at step {step}; "
          f"last good checkpoint: {last_good}. Lower the learning rate, "
          "clip gradients (optimizer.grad_clip_*) or use "
          "model.dtype=float32."
        )
      self.loss += float(metrics["loss"])
      self.accuracy += float(metrics["accuracy"])
      self.denominator += float(metrics["denominator"])
      self.learning_rate = float(metrics["learning_rate"])
      self.steps += 1
    self.pending.clear()

  def resume(self) -> None:
    self.running_since = time.time()

  def pause(self) -> None:
    if self.running_since is not None:
      self.seconds += time.time() - self.running_since
      self.running_since = None

  def summary(self) -> dict[str, float]:
    """Means of the checked steps, the learning rate and steps/s."""
    seconds = self.seconds
    if self.running_since is not None:
      seconds += time.time() - self.running_since
    scalars = means(
      {
        "loss": self.loss,
        "accuracy": self.accuracy,
        "denominator": self.denominator,
      }
    )
    scalars["learning_rate"] = self.learning_rate
    scalars["steps_per_sec"] = self.steps / max(seconds, 1e-9)
    return scalars

  def reset(self) -> None:
    """Starts a new window (the clock keeps running if it was)."""
    running = self.running_since is not None
    self.loss = self.accuracy = self.denominator = self.seconds = 0.0
    self.steps = 0
    self.running_since = time.time() if running else None


class MetricWriter:
  """JSON lines (`metrics.jsonl`) and TensorBoard scalars, on process 0.

  On resume, lines after the resumed step are dropped (they are written
  again) and TensorBoard events after it are purged.
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
          # A line cut short when the job was killed is dropped.
          with contextlib.suppress(ValueError):
            records.append(json.loads(line))
      with open(self.path, "w") as f:
        f.writelines(
          json.dumps(r) + "\n"
          for r in records
          if r["step"] <= start_step and r["split"] != "test"
        )
    self.tb = tensorboardX.SummaryWriter(
      os.path.join(workdir, "tensorboard"), purge_step=start_step + 1
    )

  def write(self, step: int, split: str, scalars: dict[str, float]) -> None:
    if not self.active:
      return
    scalars = {k: float(v) for k, v in scalars.items()}
    with open(self.path, "a") as f:
      f.write(json.dumps({"step": int(step), "split": split, **scalars}) + "\n")
    for name, value in scalars.items():
      self.tb.add_scalar(f"{split}/{name}", value, int(step))

  def close(self) -> None:
    if self.tb is not None:
      self.tb.close()


class Heartbeat:
  """Without a terminal (process 0): a log line after `interval` s of silence.

  Data generation, compilation and evaluation can be silent for minutes; a
  log file or a CI console then still shows that the run is alive and what
  it is doing. `phase(text)` says what the run is doing, `beat()` that a
  line was just printed.
  """

  def __init__(self, interval: float = 30.0):
    self.interval = interval
    self._what = "starting"
    self._since = self._last = time.time()
    self._stop = threading.Event()
    self._thread = None
    if jax.process_index() == 0 and not sys.stderr.isatty():
      self._thread = threading.Thread(
        target=self._run, daemon=True, name="heartbeat"
      )
      self._thread.start()

  def phase(self, what: str) -> None:
    if what != self._what:
      self._what, self._since = what, time.time()

  def beat(self) -> None:
    self._last = time.time()

  def _run(self) -> None:
    while not self._stop.wait(
      max(0.1, self._last + self.interval - time.time())
    ):
      if time.time() - self._last >= self.interval:
        logging.info("still %s (%.0f s)", self._what, time.time() - self._since)
        self._last = time.time()

  def close(self) -> None:
    self._stop.set()
    if self._thread is not None:
      self._thread.join()
      self._thread = None


class Progress:
  """tqdm on an interactive terminal (process 0), log lines otherwise.

  Without a terminal, `heartbeat` (if given) shows the step reached when no
  line was printed for a while.
  """

  def __init__(
    self, start: int, total: int, heartbeat: Heartbeat | None = None
  ):
    self.bar = None
    self.start, self.done, self.total = start, start, total
    self.heartbeat = heartbeat
    if jax.process_index() == 0 and sys.stderr.isatty():
      self.bar = tqdm.tqdm(
        total=total, initial=start, unit="step", dynamic_ncols=True
      )
    self._set_phase()

  def _set_phase(self) -> None:
    if self.heartbeat is not None:
      self.heartbeat.phase(
        f"compiling and running step {self.done + 1}/{self.total}"
        if self.done == self.start
        else f"training, {self.done}/{self.total} steps queued"
      )

  def phase(self, what: str) -> None:
    """What the run does now, for the heartbeat (e.g. evaluating)."""
    if self.heartbeat is not None:
      self.heartbeat.phase(what)

  def step(self) -> None:
    self.done += 1
    self._set_phase()
    if self.bar is not None:
      self.bar.update(1)

  def log(self, message: str, **postfix: str) -> None:
    """Train lines update the bar's postfix; other lines are printed."""
    if self.heartbeat is not None:
      self.heartbeat.beat()
    if self.bar is None:
      if jax.process_index() == 0:
        logging.info("%s", message)
    elif postfix:
      self.bar.set_postfix(postfix, refresh=False)
    else:
      self.bar.write(message)

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()
      self.bar = None
