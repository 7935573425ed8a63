"""Preemption: SIGTERM (or Ctrl-C) checkpoints the run and stops it.

Cluster schedulers, preemptible VMs and `benchmarks/full_length.py`'s time
budget announce the end of a job with SIGTERM. Without handling, the work
since the last periodic checkpoint is lost; with it, the loop finishes the
step in flight, writes the latest checkpoint and raises `Preempted`, and the
same command resumes from that step. Ctrl-C (SIGINT) does the same on one
process; a second Ctrl-C stops the process at once (the default action of
SIGINT, which works even inside a long XLA call).

One process: a signal handler records the notice (installed only while the
loop runs, and only from the main thread; the previous handlers come back
afterwards). Several processes: every host must save at the same step, so the
notice goes through JAX's preemption sync service
(`multihost_utils.reached_preemption_sync_point`, on by default with
`jax.distributed`), which receives SIGTERM on any host and agrees on the step.
"""

import signal
import sys
import threading

from absl import logging
import jax
from jax.experimental import multihost_utils


class Preempted(Exception):
  """The run stopped after a signal; `step` is checkpointed."""

  def __init__(
    self, step: int, checkpoint_dir: str, signal_name: str = "SIGTERM"
  ):
    what = "interrupted" if signal_name == "SIGINT" else "preempted"
    super().__init__(
      f"{what} ({signal_name}): stopped after step {step}, checkpoint in "
      f"{checkpoint_dir}; run the same command again to resume"
    )
    self.step = step
    self.checkpoint_dir = checkpoint_dir
    self.signal_name = signal_name
    self.exit_code = 128 + signal.Signals[signal_name].value


class PreemptionNotice:
  """`reached(step)` is True once the run should stop.

  `install()` before the loop, `restore()` after it. Call `reached` after
  every training step with the number of steps done
  (every host, the same numbers: the multi-host protocol needs it).
  `signal_name` names the signal that arrived (SIGTERM or SIGINT).
  """

  def __init__(self, signums=(signal.SIGTERM, signal.SIGINT)):
    self._signums = tuple(signums)
    self._previous = {}
    self._multi_host = False
    self.received = False
    self.signal_name = "SIGTERM"

  def install(self) -> None:
    """Starts listening (signal handlers on one host)."""
    self._multi_host = jax.process_count() > 1
    if (
      not self._multi_host
      and threading.current_thread() is threading.main_thread()
    ):
      for signum in self._signums:
        self._previous[signum] = signal.signal(signum, self._handle)

  def restore(self) -> None:
    """Puts the previous signal handlers back."""
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)
    self._previous = {}

  def _handle(self, signum, frame) -> None:
    del frame
    if not self.received:
      self.signal_name = signal.Signals(signum).name
    self.received = True
    if signum == signal.SIGINT:
      # The next Ctrl-C terminates the process at once (no traceback).
      signal.signal(signal.SIGINT, signal.SIG_DFL)
      print(
        "interrupted (SIGINT): finishing the step in flight and "
        "checkpointing it; press Ctrl-C again to stop at once",
        file=sys.stderr,
        flush=True,
      )

  def reached(self, step: int) -> bool:
    if not self._multi_host:
      return self.received
    try:
      return multihost_utils.reached_preemption_sync_point(step)
    except RuntimeError as e:  # the service is off (jax config)
      logging.warning("no preemption checkpoints on several hosts: %s", e)
      self._multi_host = False
      return False
