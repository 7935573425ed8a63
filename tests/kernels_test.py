"""Kernels: closed-form coefficients against independent recurrences,
docs/METHOD.md §1 values, and the series against the closed-form f inside the
radius."""

import math

import numpy as np
import pytest

from macformer_jax import kernels

NAMES = ("exp", "trigh", "inverse", "log", "sqrt")


def _reference_coefficients(name, num_terms):
  """Independent references: Taylor recurrences, not the library's formulas."""
  n = np.arange(num_terms)
  if name in ("exp", "trigh"):
    out = np.ones(num_terms)
    for i in range(1, num_terms):
      out[i] = out[i - 1] / i  # a_n = a_{n-1} / n
    return out
  if name == "inverse":
    return np.ones(num_terms)
  if name == "log":  # -ln(1 - t) = sum t^n / n, plus 1
    return np.where(n == 0, 1.0, 1.0 / np.maximum(n, 1))
  if name == "sqrt":  # binomial series of (1 - t)^(1/2), negated, plus 2
    c = np.ones(num_terms)  # coefficients of (1 - t)^(1/2)
    for i in range(1, num_terms):
      c[i] = c[i - 1] * (0.5 - (i - 1)) / i * -1.0
    out = -c
    out[0] = 2.0 - 1.0
    return out
  raise AssertionError(name)


@pytest.mark.parametrize("name", NAMES)
def test_coefficients_match_independent_recurrence(name):
  np.testing.assert_allclose(
    kernels.coefficients(name, 21),
    _reference_coefficients(name, 21),
    rtol=1e-12,
  )


def test_coefficients_match_spec_table():
  # docs/METHOD.md §1, a_1..a_5.
  table = {
    "exp": [1, 0.5, 0.166667, 0.041667, 0.008333],
    "inverse": [1, 1, 1, 1, 1],
    "log": [1, 0.5, 0.333333, 0.25, 0.2],
    "sqrt": [0.5, 0.125, 0.0625, 0.0390625, 0.02734375],
  }
  for name, expected in table.items():
    np.testing.assert_allclose(
      kernels.coefficients(name, 6)[1:], expected, atol=1e-6
    )
    assert kernels.coefficients(name, 1)[0] == 1.0


@pytest.mark.parametrize("name", NAMES)
def test_series_equals_exact_inside_radius(name):
  radius = kernels.get(name).radius
  t = np.linspace(-0.9, 0.9, 37) * min(radius, 1.0)
  series = np.polynomial.polynomial.polyval(t, kernels.coefficients(name, 400))
  np.testing.assert_allclose(
    series, np.asarray(kernels.exact(name, t)), rtol=1e-5
  )


def test_trigh_is_exp():
  np.testing.assert_array_equal(
    kernels.coefficients("trigh", 21), kernels.coefficients("exp", 21)
  )
  t = np.linspace(-2, 2, 9)
  np.testing.assert_allclose(kernels.exact("trigh", t), np.exp(t), rtol=1e-5)


def test_polynomial_has_finitely_many_terms():
  np.testing.assert_array_equal(
    kernels.coefficients("polynomial3", 6), [1, 3, 3, 1, 0, 0]
  )
  t = np.linspace(-3, 3, 7)
  np.testing.assert_allclose(
    kernels.exact("polynomial3", t), (1 + t) ** 3, rtol=1e-6
  )
  assert math.isinf(kernels.get("polynomial3").radius)


def test_radius_of_convergence():
  assert math.isinf(kernels.get("exp").radius)
  for name in ("inverse", "log", "sqrt"):
    assert kernels.get(name).radius == 1.0


def test_truncated_is_partial_sum():
  t = np.array([-0.3, 0.1, 0.5])
  a = kernels.coefficients("log", 4)
  np.testing.assert_allclose(
    kernels.truncated("log", t, 3),
    a[0] + a[1] * t + a[2] * t**2 + a[3] * t**3,
    rtol=1e-6,
  )


def test_unknown_kernel_lists_known_names():
  with pytest.raises(ValueError, match="unknown kernel 'expo'.*exp.*inverse"):
    kernels.get("expo")
  assert kernels.get("logi").name == "log"  # the authors' HEAD spelling
