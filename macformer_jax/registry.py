"""A tiny name -> object registry with clear errors (one per kind of thing)."""

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class Registry:
  """Maps names to objects (usually classes or functions).

  Registering a name twice raises; looking up an unknown name raises a
  `ValueError` that lists every known name, so a typo in a config string is
  fixed from the message alone.
  """

  def __init__(self, kind: str):
    self.kind = kind
    self._entries: dict[str, Any] = {}

  def register(self, name: str) -> Callable[[T], T]:
    """Decorator: `@REGISTRY.register('name')` on a class or function."""

    def decorator(obj: T) -> T:
      if name in self._entries:
        raise ValueError(f"{self.kind} {name!r} is registered twice")
      self._entries[name] = obj
      return obj

    return decorator

  def get(self, name: str) -> Any:
    if name not in self._entries:
      raise ValueError(
        f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}"
      )
    return self._entries[name]

  def names(self) -> list:
    return sorted(self._entries)

  def __contains__(self, name: str) -> bool:
    return name in self._entries

  def __iter__(self) -> Iterator[str]:
    return iter(self.names())

  def __len__(self) -> int:
    return len(self._entries)
