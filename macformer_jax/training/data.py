"""Task sources for a run: real files, or offline data generated once.

With `data.data_dir` unset and `data.offline` set, the task's data are
written under `<workdir>/data/<task>-<hash>/` through the registry
(`lra_tasks.get_task(task).generate(dir, seed=config.seed, **offline)`) and
read back with the task's real loader. `DataInfo` says what the data are
(generated / synthetic / files / tfds), for the log and results.json.

Missing or malformed data surface as `DataError`, one line that names the
file (and line) and the fix; `run_lra.py` prints it without a traceback.
"""

from collections.abc import Iterator
import hashlib
import json
import os
import shutil
from typing import Any

from absl import logging
import jax

import lra_tasks

# What the loaders raise for missing files (FileNotFoundError), malformed
# rows or labels (ValueError) and unreadable TFDS sets (RuntimeError).
_DATA_ERRORS = (OSError, ValueError, RuntimeError)


class DataError(Exception):
  """Missing or malformed task data; the message is one line for the user."""


def _one_line(error: BaseException) -> str:
  return " ".join(str(error).split()) or type(error).__name__


def offline_data_dir(config: Any, workdir: str, task: Any) -> str:
  """Generates the task's data under `<workdir>/data/` (once) and returns it.

  The folder name hashes the task, seed and generator settings, so changed
  settings never reuse stale files. Every host generates into its own
  temporary folder and renames it; the first rename wins.
  """
  args = config.data.offline.to_dict()
  tag = hashlib.sha1(
    json.dumps([config.task, config.seed, args], sort_keys=True).encode()
  ).hexdigest()[:8]
  path = os.path.join(workdir, "data", f"{config.task}-{tag}")
  done = os.path.join(path, "DONE")
  if os.path.exists(done):
    return path
  logging.info(
    "data.data_dir is unset: generating %s data (%s) in %s (%s)",
    config.task,
    task.offline_data.kind,
    path,
    args,
  )
  tmp = f"{path}.tmp{jax.process_index()}"
  if os.path.exists(tmp):
    shutil.rmtree(tmp)  # an interrupted generation
  task.generate(tmp, seed=config.seed, **args)
  with open(os.path.join(tmp, "DONE"), "w") as f:
    json.dump(args, f)
  try:
    os.replace(tmp, path)
  except OSError:  # another host renamed its identical copy first
    if not os.path.exists(done):
      raise
    shutil.rmtree(tmp, ignore_errors=True)
  return path


def load_sources(
  config: Any, workdir: str
) -> tuple[Any, dict[str, Any], dict[str, str]]:
  """The task, its train/val/test sources, and what the data are.

  Returns:
    (task, {'train', 'val', 'test': Source}, data info {'kind':
    'generated' | 'synthetic' | 'files' | 'tfds', 'description', 'dir'}).

  Raises:
    DataError: the files are missing or malformed, or generation failed.
  """
  task = lra_tasks.get_task(config.task)
  data_dir = config.data.data_dir
  try:
    if data_dir:
      info = {
        "kind": "files",
        "description": f"{config.task} files in {data_dir}",
        "dir": data_dir,
      }
    elif config.data.offline:
      data_dir = offline_data_dir(config, workdir, task)
      info = {
        "kind": task.offline_data.kind,
        "description": task.offline_data.description,
        "dir": data_dir,
      }
    else:
      info = {
        "kind": "tfds",
        "description": "TFDS's default data dir",
        "dir": "",
      }
    options = config.data.options.to_dict()
    sources = {
      split: task.load(data_dir, split, max_len=config.data.max_len, **options)
      for split in ("train", "val", "test")
    }
  except _DATA_ERRORS as e:
    raise DataError(_one_line(e)) from e
  logging.info(
    "data: %s (%s); %s",
    info["kind"],
    info["description"],
    {k: len(v) for k, v in sources.items()},
  )
  return task, sources, info


def checked(batches: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
  """`batches`, with read errors of lazily decoded examples (a corrupt
  Pathfinder PNG, say) raised as DataError."""
  while True:
    try:
      batch = next(batches)
    except StopIteration:
      return
    except _DATA_ERRORS as e:
      raise DataError(_one_line(e)) from e
    yield batch
