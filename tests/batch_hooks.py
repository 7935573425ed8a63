"""A test hook on the trainer's data iterator (shared by the resume tests)."""

import lra_tasks


def on_batch(monkeypatch, step, action):
  """Calls `action()` when the train iterator is asked for batch `step`
  (0-based: the batch of training step `step + 1`)."""
  real = lra_tasks.train_batches

  def batches(*args, start_step=0, **kwargs):
    for i, batch in enumerate(real(*args, start_step=start_step, **kwargs)):
      if start_step + i == step:
        action()
      yield batch

  monkeypatch.setattr(lra_tasks, "train_batches", batches)
