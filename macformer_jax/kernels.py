"""Dot-product kernels f(t) = sum_n a_n t^n and their Maclaurin coefficients.

Every kernel here has a_n >= 0 for all n, so by Schoenberg's theorem
K(x, y) = f(x . y) is positive definite on spheres, and random Maclaurin
features (`features.py`) estimate it without bias (docs/METHOD.md §2).

The coefficients are closed forms (docs/METHOD.md §1; they equal the sympy
derivatives the authors' code uses for n = 0..20). The exact value
`exact(name, t)` is the closed-form function, which equals the series inside
the radius of convergence |t| < radius.

| name       | f(t)          | a_n (n >= 1)                 | radius |
|------------|---------------|------------------------------|--------|
| exp        | e^t           | 1 / n!                       | inf    |
| trigh      | cosh t+sinh t | 1 / n!  (identical to exp)   | inf    |
| inverse    | 1 / (1 - t)   | 1                            | 1      |
| log        | 1 - ln(1 - t) | 1 / n                        | 1      |
| sqrt       | 2 - sqrt(1-t) | C(2n, n) / ((2n - 1) 4^n)    | 1      |
| polynomial | (1 + t)^p     | C(p, n), zero for n > p      | inf    |

All kernels have a_0 = f(0) = 1.
"""

from collections.abc import Callable
import dataclasses
import math

import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Kernel:
  """A dot-product kernel with non-negative Maclaurin coefficients.

  Attributes:
    name: registry name.
    coefficient: n -> a_n (a Python float, n >= 0).
    exact: t -> f(t), elementwise on arrays (jnp or np).
    radius: radius of convergence of the series (math.inf if entire).
  """

  name: str
  coefficient: Callable[[int], float]
  exact: Callable[..., jnp.ndarray]
  radius: float


def _sqrt_coefficient(n: int) -> float:
  if n == 0:
    return 1.0
  # 2 - sqrt(1 - t) = 1 + sum_{n>=1} C(2n, n) t^n / ((2n - 1) 4^n).
  return math.comb(2 * n, n) / ((2 * n - 1) * 4.0**n)


_KERNELS: dict[str, Kernel] = {
  "exp": Kernel(
    "exp", lambda n: math.exp(-math.lgamma(n + 1)), jnp.exp, math.inf
  ),
  # `trigh` = cosh t + sinh t, which equals e^t exactly (docs/METHOD.md §1):
  # the same coefficients, hence bit-identical features for the same key. Kept
  # because the paper and the authors' code list it as a separate kernel.
  "trigh": Kernel(
    "trigh",
    lambda n: math.exp(-math.lgamma(n + 1)),
    lambda t: jnp.cosh(t) + jnp.sinh(t),
    math.inf,
  ),
  "inverse": Kernel("inverse", lambda n: 1.0, lambda t: 1.0 / (1.0 - t), 1.0),
  "log": Kernel(
    "log",
    lambda n: 1.0 if n == 0 else 1.0 / n,
    lambda t: 1.0 - jnp.log1p(-t),
    1.0,
  ),
  "sqrt": Kernel(
    "sqrt", _sqrt_coefficient, lambda t: 2.0 - jnp.sqrt(1.0 - t), 1.0
  ),
}

# Names accepted for the authors' spellings (`logi` in their last commit,
# docs/METHOD.md §1).
_ALIASES = {"logi": "log"}


def polynomial(degree: int) -> Kernel:
  """The inhomogeneous polynomial kernel (1 + t)^degree (finite series)."""
  if degree < 1 or int(degree) != degree:
    raise ValueError(
      f"polynomial degree must be a positive integer, got {degree!r}"
    )
  degree = int(degree)
  return Kernel(
    f"polynomial{degree}",
    lambda n: float(math.comb(degree, n)) if n <= degree else 0.0,
    lambda t: (1.0 + t) ** degree,
    math.inf,
  )


def names() -> list:
  """Known kernel names (`polynomial` takes a degree: `polynomial3`)."""
  return sorted(_KERNELS) + ["polynomial<p> (e.g. polynomial2)"]


def get(name: str) -> Kernel:
  """Looks a kernel up by name: exp, trigh, inverse, log, sqrt, polynomial<p>.

  Raises:
    ValueError: for an unknown name, listing the known ones.
  """
  if isinstance(name, Kernel):
    return name
  name = _ALIASES.get(name, name)
  if name in _KERNELS:
    return _KERNELS[name]
  if name.startswith("polynomial"):
    suffix = name[len("polynomial") :].lstrip("_") or "2"
    if suffix.isdigit():
      return polynomial(int(suffix))
  raise ValueError(f"unknown kernel {name!r}; known: {', '.join(names())}")


def coefficients(name: str, num_terms: int) -> np.ndarray:
  """Maclaurin coefficients a_0..a_{num_terms-1} of kernel `name`.

  Args:
    name: kernel name (see `get`).
    num_terms: how many coefficients.

  Returns:
    float64 array [num_terms].
  """
  kernel = get(name)
  return np.array(
    [kernel.coefficient(n) for n in range(num_terms)], dtype=np.float64
  )


def exact(name: str, t):
  """The exact kernel value f(t), elementwise. t: any shape."""
  return get(name).exact(t)


def truncated(name: str, t, max_degree: int):
  """The degree-`max_degree` Maclaurin polynomial sum_{n<=max_degree} a_n t^n.

  This is what random Maclaurin features estimate without bias (docs/METHOD.md
  §2.1). Horner's rule, elementwise; t: any shape.
  """
  a = coefficients(name, max_degree + 1)
  out = jnp.zeros_like(t) + a[-1]
  for coefficient in a[-2::-1]:
    out = out * t + coefficient
  return out
