"""The five LRA tasks as numpy pipelines, one registry (docs/METHOD.md §8).

  from lra_tasks import get_task, train_batches, eval_batches
  task = get_task('listops')               # 'listops', 'text', 'retrieval',
  src = task.load(data_dir, 'train')       # 'image', 'pathfinder'
  batch = next(train_batches(src, 32, seed=0))
  # {'inputs': int32[32, 2000], 'targets': int32[32], 'weights': float32[32]}
  task.generate(out_dir, seed=0, **options)  # offline data, then
  task.load(out_dir, 'train')              # reads it with the real loader

  name        data (docs/METHOD.md §8.1)                       C   vocab  L
  listops     listops-1000/basic_{train,val,test}.tsv        10  17     2000
  text        TFDS imdb_reviews (array_record)               2   257    1000
  retrieval   tsv_data/new_aan_pairs.{train,eval,test}.tsv   2   257    4000 x2
  image       TFDS cifar10 (array_record)                    10  257    1024
  pathfinder  pathfinder{32,64,128,256}/curv_*/{imgs,metadata}
                                                             2   257    R*R

Offline data (`Task.generate`, in each task's real file format):

  listops     generated: LRA's tree generator, seeded (the task's distribution)
  text        synthetic reviews (TFDS imdb_reviews format)
  retrieval   synthetic paper pairs (AAN TSV format)
  image       synthetic 32x32 images (TFDS cifar10 format)
  pathfinder  synthetic Pathfinder-style images (release layout)

`Task.offline_data` names the kind ('generated' or 'synthetic') and says what
the data is; synthetic data has the task's shapes, vocabulary and classes but
is no LRA benchmark. Pad id is 0 everywhere. No module here imports
TensorFlow, JAX, Flax or macformer_jax; TFDS is imported only when the text or
image task is loaded or generated. Each module's docstring says where it
differs from the original LRA and why.
"""

from collections.abc import Iterator, Mapping
import importlib
from typing import Any

from lra_tasks.base import DataInfo
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

  @property
  def offline_data(self) -> DataInfo:
    return self._task().offline_data

  def load(
    self,
    data_dir: str | None,
    split: str,
    *,
    max_len: int | None = None,
    **options: Any,
  ) -> Source:
    return self._task().load(data_dir, split, max_len=max_len, **options)

  def generate(
    self, output_dir: str, *, seed: int, **options: Any
  ) -> dict[str, str]:
    return self._task().generate(output_dir, seed=seed, **options)

  def __repr__(self) -> str:
    return f"<lra_tasks.{self._module} task>"


class _Tasks(Mapping):
  """Read-only name -> task mapping; iterates over the names, sorted."""

  def __init__(self, tasks: dict[str, _LazyTask]):
    self._tasks = dict(tasks)

  def __getitem__(self, name: str) -> Task:
    return self._tasks[name]

  def __iter__(self) -> Iterator[str]:
    return iter(sorted(self._tasks))

  def __len__(self) -> int:
    return len(self._tasks)


TASKS = _Tasks(
  {
    name: _LazyTask(name)
    for name in ("listops", "text", "retrieval", "image", "pathfinder")
  }
)


def get_task(name: str) -> Task:
  """The task registered as `name`.

  Raises:
    ValueError: unknown name; the message lists the known ones.
  """
  if name not in TASKS:
    raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
  return TASKS[name]


__all__ = [
  "TASKS",
  "DataInfo",
  "Source",
  "Task",
  "TaskSpec",
  "eval_batches",
  "get_task",
  "train_batches",
]
