"""The five LRA tasks as numpy pipelines, one registry (LRA_NOTES §2, §7).

  from lra_tasks import get_task, train_batches, eval_batches
  task = get_task('listops')               # 'listops', 'text', 'retrieval',
  src = task.load(data_dir, 'train')       # 'image', 'pathfinder'
  batch = next(train_batches(src, 32, seed=0))
  # {'inputs': int32[32, 2000], 'targets': int32[32], 'weights': float32[32]}

  name        data (LRA_NOTES §2)                            C   vocab  L
  listops     listops-1000/basic_{train,val,test}.tsv        10  17     2000
  text        TFDS imdb_reviews (array_record)               2   257    1000
  retrieval   tsv_data/new_aan_pairs.{train,eval,test}.tsv   2   257    4000 x2
  image       TFDS cifar10 (array_record)                    10  257    1024
  pathfinder  pathfinder{32,64,128,256}/curv_*/{imgs,metadata}
                                                             2   257    R*R

Pad id is 0 everywhere. No module here imports TensorFlow, JAX or Flax;
TFDS is imported only when the text or image task is loaded. Each module's
docstring says where it differs from the original LRA and why.
"""

import importlib
from typing import Any, Optional

from macformer_jax.registry import Registry

from lra_tasks.base import eval_batches
from lra_tasks.base import Source
from lra_tasks.base import Task
from lra_tasks.base import TaskSpec
from lra_tasks.base import train_batches


class _LazyTask:
  """Imports `lra_tasks.<module>` on first use and forwards to its TASK.

  Importing the task modules here eagerly would make `python -m
  lra_tasks.listops` warn that the module was imported before being run.
  """

  def __init__(self, module: str):
    self._module = module

  def _task(self) -> Task:
    return importlib.import_module(f"lra_tasks.{self._module}").TASK

  @property
  def spec(self) -> TaskSpec:
    return self._task().spec

  def load(self, data_dir: Optional[str], split: str, *,
           max_len: Optional[int] = None, **options: Any) -> Source:
    return self._task().load(data_dir, split, max_len=max_len, **options)

  def __repr__(self) -> str:
    return f"<lra_tasks.{self._module} task>"


TASKS = Registry("task")
for _name, _module in (("listops", "listops"), ("text", "text"),
                       ("retrieval", "retrieval"), ("image", "image"),
                       ("pathfinder", "pathfinder")):
  TASKS.register(_name)(_LazyTask(_module))


def get_task(name: str) -> Task:
  """The task registered as `name`.

  Raises:
    ValueError: unknown name; the message lists the known ones.
  """
  return TASKS.get(name)


__all__ = ["TASKS", "Source", "Task", "TaskSpec", "eval_batches", "get_task",
           "train_batches"]
