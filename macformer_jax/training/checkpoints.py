"""Checkpoints (orbax): the latest N and the best-eval one.

Each checkpoint holds the whole TrainState (params, optimizer state, step =
data position, random features, dropout key) and a JSON record of the best
eval so far, so a resumed run keeps selecting the same best checkpoint. The
state is saved as replicated global arrays (`Engine.put_state`); on several
hosts every process takes part in each save and restore.
"""

import functools
import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpoints:
  """`latest` (keeps `keep`) and `best` (keeps 1) checkpoint managers."""

  def __init__(self, workdir: str, keep: int):
    root = os.path.join(os.path.abspath(workdir), "checkpoints")
    options = functools.partial(
      ocp.CheckpointManagerOptions,
      enable_async_checkpointing=False,
      create=True,
    )
    self.latest_dir = os.path.join(root, "latest")
    self.latest = ocp.CheckpointManager(
      self.latest_dir,
      item_names=("state", "meta"),
      options=options(
        preservation_policy=ocp.checkpoint_managers.LatestN(n=max(keep, 1))
      ),
    )
    self.best = ocp.CheckpointManager(
      os.path.join(root, "best"),
      item_names=("state", "meta"),
      options=options(preservation_policy=ocp.checkpoint_managers.LatestN(n=1)),
    )

  @staticmethod
  def _save(
    manager: ocp.CheckpointManager, step: int, state: Any, meta: dict
  ) -> None:
    manager.save(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
      ),
      force=True,
    )
    manager.wait_until_finished()

  def save_latest(self, step: int, state: Any, meta: dict) -> None:
    if self.latest.latest_step() != step:
      self._save(self.latest, step, state, meta)

  def save_best(self, step: int, state: Any, meta: dict) -> None:
    if self.best.latest_step() != step:
      self._save(self.best, step, state, meta)

  def last_good(self) -> str:
    """The latest checkpoint, in words (for error messages)."""
    step = self.latest.latest_step()
    return (
      "none (no checkpoint yet)"
      if step is None
      else f"step {step} in {self.latest_dir}"
    )

  @staticmethod
  def _restore(
    manager: ocp.CheckpointManager, step: int, target: Any
  ) -> tuple[Any, dict]:
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    restored = manager.restore(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
      ),
    )
    return restored["state"], restored["meta"]

  def restore_latest(self, target: Any) -> tuple[Any, dict | None]:
    """(state, meta) of the latest checkpoint, or (target, None).

    `target` gives the tree, shapes, dtypes and shardings to restore into.
    """
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

  def restore_best(self, target: Any) -> tuple[Any | None, dict | None]:
    """(state, meta) of the best-eval checkpoint, or (None, None)."""
    step = self.best.latest_step()
    if step is None:
      return None, None
    return self._restore(self.best, step, target)

  def close(self) -> None:
    self.latest.close()
    self.best.close()
