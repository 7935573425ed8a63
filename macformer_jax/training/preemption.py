"""Preemption: SIGTERM checkpoints the run at the next step and stops it.

Cluster schedulers, preemptible VMs and `benchmarks/full_length.py`'s time
budget announce the end of a job with SIGTERM. Without handling, the work
since the last periodic checkpoint is lost; with it, the loop finishes the
step in flight, writes the latest checkpoint and raises `Preempted`, and the
same command resumes from that step.

One process: a signal handler records the notice (installed only while the
loop runs, and only from the main thread; the previous handler comes back
afterwards). Several processes: every host must save at the same step, so the
notice goes through JAX's preemption sync service
(`multihost_utils.reached_preemption_sync_point`, on by default with
`jax.distributed`), which receives SIGTERM on any host and agrees on the step.
"""

import signal
import threading

from absl import logging
import jax
from jax.experimental import multihost_utils


class Preempted(Exception):
  """The run stopped after a preemption notice; `step` is checkpointed."""

  def __init__(self, step: int, checkpoint_dir: str):
    super().__init__(
        f"preempted (SIGTERM): stopped after step {step}, checkpoint in "
        f"{checkpoint_dir}; run the same command again to resume")
    self.step = step
    self.checkpoint_dir = checkpoint_dir


class PreemptionNotice:
  """`reached(step)` is True once the run should stop.

  `install()` before the loop, `restore()` after it. Call `reached` after
  every training step with the number of steps done
  (every host, the same numbers: the multi-host protocol needs it).
  """

  def __init__(self, signum: int = signal.SIGTERM):
    self._signum = signum
    self._previous = None
    self._multi_host = False
    self.received = False

  def install(self) -> None:
    """Starts listening (a signal handler on one host)."""
    self._multi_host = jax.process_count() > 1
    if (not self._multi_host and
        threading.current_thread() is threading.main_thread()):
      self._previous = signal.signal(self._signum, self._handle)

  def restore(self) -> None:
    """Puts the previous signal handler back."""
    if self._previous is not None:
      signal.signal(self._signum, self._previous)
      self._previous = None

  def _handle(self, signum, frame) -> None:
    del signum, frame
    self.received = True

  def reached(self, step: int) -> bool:
    if not self._multi_host:
      return self.received
    try:
      return multihost_utils.reached_preemption_sync_point(step)
    except RuntimeError as e:  # the service is off (jax config)
      logging.warning("no preemption checkpoints on several hosts: %s", e)
      self._multi_host = False
      return False
