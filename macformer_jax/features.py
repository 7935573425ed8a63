"""Random feature maps, pure: `sample_*(key, ...) -> params`, `*(params, x)`.

Random Maclaurin features (RMF; Kar & Karnick 2012, docs/METHOD.md §2). For a
kernel f(t) = sum_n a_n t^n the feature map is

  phi(x) = [ sqrt(a_0),  { s_i * prod_{j=1..n_i} (w_{i,j} . x) }_{i=1..M-1} ]

with Rademacher vectors w in {-1, +1}^Dk, so that E[phi(x) . phi(y)] equals the
degree-truncated f(x . y) (docs/METHOD.md §2.1: the constant term is exact, as
in the authors' code). Two independent choices define a feature map:

**Degree allocation** (how many of the M-1 random features get degree n):
  * `sampled`: n_i drawn i.i.d. from P(n) = 2^-(n+1) renormalised over
    n = 1..max_degree (the paper's and the authors' scheme), weight
    s_i^2 = a_n / (P(n) (M-1)). Unbiased for f truncated at max_degree.
  * `stratified`: deterministic counts C_n ~= (M-1) P(n) (largest remainder),
    weight s^2 = a_n / C_n. Lower variance (no multinomial noise in the
    counts); unbiased for f truncated at the largest degree K with C_n > 0
    (K = 5 for M = 32, 7 for M = 128, 9 for M = 512). The dropped tail
    sum_{n>K} a_n t^n is largest for the inverse kernel, t^(K+1) / (1 - t).
    On PreSBN'd inputs at the default scale (|t| <= Dk^-1/2) and M = 128 it
    is 1.2e-6 at Dk = 32 (log 1.4e-7, sqrt 1.5e-8, exp 2.4e-11) and 2e-5 at
    Dk = 16: far below the estimate's noise (std ~2e-2 at M = 128). It grows
    with the scale: 1.1e-3 for the inverse kernel at the learnable cap
    |t| <= 0.4 (`attention.max_qk_scale`; log 1.3e-4). `sampled` reaches
    degree 20 (tail below 1e-8 up to |t| = 0.4).

**Projection layout** (which Rademacher vectors a degree-n feature multiplies):
  * `independent`: every feature has its own n vectors (K&K). The projection
    matmul is sum_n n C_n ~= 2 (M-1) wide.
  * `chained` (default): features are prefix products of chains. Level n holds
    B_n chains; the degree-n features are the n-th prefix products
    p_n = p_{n-1} * (w_n . x). Every feature is still a product of n
    *distinct, independent* vectors, hence unbiased, but the matmul is only
    sum_n B_n ~= M-1 wide: the same width as Performer's M features, which is
    what makes RMFA as fast as FAVOR+. Features of one chain share factors,
    so they are correlated; the added covariance of a degree-n and a degree-m
    feature (n < m) is t^(m-n) (Q^n - t^(2n)) with Q = E[(w.x)^2 (w.y)^2], of
    relative order |t|^(m-n). On PreSBN'd inputs that is negligible for
    unrelated pairs (|t| ~ 1/Dk: variance x1.01 at Dk = 32, M = 128) but
    not for near-parallel ones (|t| near Dk^-1/2): there the variance grows
    by x1.43 for the inverse kernel (x1.21 log, x1.18 exp, x1.10 sqrt; exact
    formula `stratified_variance`, Monte Carlo
    x1.39-1.48 per pair). `independent` avoids that at twice the width.

**Exact constant and linear terms** (`exact_linear=True`, Kar & Karnick
2012's "H0/1", docs/METHOD.md §3.3): the map is

  phi(x) = [ sqrt(a_0),  sqrt(a_1) x,  { s_i * prod_{j=1..n_i} (w_{i,j} . x) } ]

with Dk linear columns and the M-1-Dk random features all of degree
n >= 2, the allocation (either one) renormalised over n >= 2. Then
phi(x) . phi(y) = a_0 + a_1 x.y + an unbiased estimate of the degree >= 2
rest: no randomness in the terms that carry most of the default map's
variance on PreSBN'd inputs. Needs M >= Dk + 2.

Shapes are static under `jax.jit`: the degree counts are host-side Python
ints (numpy), only the Rademacher values come from the JAX key. For
`sampled`, the counts are drawn with numpy from `allocation_seed` (or from
the key's data when the key is concrete).

The module also holds the other feature maps of exp(x . y), each sampled
and applied by one function here: the positive (GERF) features, of which
Performer's FAVOR+ is A = 0 (`gerf_features`, `favor_positive`), RFA's random
Fourier (sin/cos) features (`fourier_features`), their Gaussian and
orthogonal Gaussian projections (`sample_gaussian`,
`sample_orthogonal_gaussian`), and the elu+1 map of linear attention. The
Spectraformer grid (`spectral`) draws its weights and forms its components
with these functions.
"""

import dataclasses
import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np

from macformer_jax import kernels

ALLOCATIONS = ("sampled", "stratified")
PROJECTIONS = ("chained", "independent")


# ----------------------------------------------------------------------------
# Degree allocation (host-side numpy: it fixes shapes).
# ----------------------------------------------------------------------------
def degree_pmf(max_degree: int = 20, min_degree: int = 1) -> np.ndarray:
  """P(n) = 2^-(n+1) renormalised over n = min_degree..max_degree.

  docs/METHOD.md §2.1: the authors' `P_Measure(2., False, 20)`; P(1) =
  0.50000048. `min_degree=2` is the distribution of the exact-linear map
  (docs/METHOD.md §3.3), P'(n) = P(n) / (1 - P(1)).

  Returns:
    float64 [max_degree], indexed by n - 1 (zero below `min_degree`).
  """
  n = np.arange(1, max_degree + 1)
  w = np.where(n >= min_degree, 2.0 ** -(n + 1.0), 0.0)
  return w / w.sum()


@dataclasses.dataclass(frozen=True)
class FeaturePlan:
  """The static structure of an RMF map: hashable, no arrays.

  Attributes:
    kernel: kernel name.
    sqrt_a0: value of the constant feature.
    counts: C_n, random features of degree n, for n = 1..len(counts).
    projection: 'chained' or 'independent'.
    exact_linear: Dk when the linear term is exact (docs/METHOD.md §3.3:
      Dk columns sqrt(a_1) x after the constant, no projection, and
      counts[0] = 0), else 0.
  """

  kernel: str
  sqrt_a0: float
  counts: tuple[int, ...]
  projection: str
  exact_linear: int = 0

  @property
  def num_features(self) -> int:
    """M: output width, the constant feature included."""
    return 1 + self.exact_linear + sum(self.counts)

  @property
  def max_degree(self) -> int:
    """The largest degree with a feature: the truncation of the estimate."""
    return len(self.counts)

  @property
  def widths(self) -> tuple[int, ...]:
    """Projection block widths, one block per (level or degree, factor)."""
    if self.projection == "chained":
      # B_n = max_{m >= n} C_m: the chains alive at level n.
      return tuple(int(max(self.counts[n:])) for n in range(len(self.counts)))
    return tuple(c for n, c in enumerate(self.counts, 1) for _ in range(n))

  @property
  def projection_width(self) -> int:
    return sum(self.widths)

  def degrees(self) -> np.ndarray:
    """Degree of each non-constant feature, in output order (the exact
    linear columns first, degree 1). Returns int [M-1]."""
    return np.concatenate(
      [
        np.ones(self.exact_linear, np.int64),
        np.repeat(np.arange(1, len(self.counts) + 1), self.counts),
      ]
    )


def allocate_degrees(
  num_random: int,
  allocation: str,
  max_degree: int = 20,
  rng: np.random.Generator | None = None,
  min_degree: int = 1,
) -> tuple[tuple[int, ...], np.ndarray]:
  """Counts C_n and per-degree weights w_n (s^2 = w_n) of the random features.

  Args:
    num_random: M-1, the number of random features (M-1-Dk with an exact
      linear term).
    allocation: 'sampled' or 'stratified' (module docstring).
    max_degree: truncation degree of the degree distribution.
    rng: numpy generator; required for 'sampled'.
    min_degree: the lowest degree drawn: 1, or 2 when the linear term is
      exact (the distribution renormalised over n >= 2, `degree_pmf`).

  Returns:
    (counts, weights): counts for n = 1..K (trailing zeros dropped) and the
    float64 weights [K] (zero where the count is zero), for the kernel-free
    factor: the caller multiplies by a_n.
  """
  if allocation not in ALLOCATIONS:
    raise ValueError(
      f"unknown allocation {allocation!r}; known: {', '.join(ALLOCATIONS)}"
    )
  if num_random < 1:
    raise ValueError(
      f"need at least 2 features (1 constant + 1 random), got "
      f"num_features={num_random + 1}"
    )
  pmf = degree_pmf(max_degree, min_degree)
  if allocation == "sampled":
    if rng is None:
      raise ValueError("allocation='sampled' needs a numpy rng for the degrees")
    # Grouping i.i.d. degree draws by value gives multinomial counts.
    counts = rng.multinomial(num_random, pmf)
    weights = np.where(pmf > 0, 1.0 / (np.maximum(pmf, 1e-300) * num_random), 0)
  else:
    expected = num_random * pmf
    counts = np.floor(expected).astype(np.int64)
    remainder = expected - counts
    # Largest remainder; ties broken towards low degrees (stable argsort).
    order = np.argsort(-remainder, kind="stable")
    counts[order[: num_random - counts.sum()]] += 1
    weights = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
  last = int(np.max(np.nonzero(counts)[0])) + 1
  counts, weights = (
    counts[:last],
    np.where(counts[:last] > 0, weights[:last], 0.0),
  )
  return tuple(int(c) for c in counts), weights


# ----------------------------------------------------------------------------
# Random Maclaurin features.
# ----------------------------------------------------------------------------
@functools.partial(
  jax.tree_util.register_dataclass,
  data_fields=["projections", "scales"],
  meta_fields=["plan"],
)
@dataclasses.dataclass(frozen=True)
class RMFParams:
  """A drawn RMF map (a pytree: arrays are leaves, the plan is static).

  Attributes:
    projections: Rademacher +-1 float32, [Dk, W] shared by all heads or
      [H, Dk, W] one map per head; W = plan.projection_width.
    scales: float32 [M-1], s_i of each random feature.
    plan: the static `FeaturePlan`.
  """

  projections: jax.Array
  scales: jax.Array
  plan: FeaturePlan


def make_plan(
  num_features: int,
  kernel: str,
  allocation: str = "sampled",
  max_degree: int = 20,
  projection: str = "chained",
  allocation_seed: int | None = None,
  *,
  exact_linear: bool = False,
  in_dim: int | None = None,
) -> tuple[FeaturePlan, np.ndarray]:
  """The static plan and the float32 scales [M-1] of an RMF map (no JAX).

  The deterministic half of `sample_rmf` (which adds the random
  projections): what a module that keeps only the projections as a variable
  (`layers.RMFAttention`, the Spectraformer rmf cell) rebuilds `RMFParams`
  from, with the same arguments.

  With `exact_linear` (docs/METHOD.md §3.3) the first `in_dim` scales are
  sqrt(a_1), those of the exact linear columns, and the M-1-Dk random
  features get degrees n >= 2 (`allocate_degrees(min_degree=2)`).
  """
  if projection not in PROJECTIONS:
    raise ValueError(
      f"unknown projection {projection!r}; known: {', '.join(PROJECTIONS)}"
    )
  k = kernels.get(kernel)
  rng = (
    np.random.default_rng(allocation_seed)
    if allocation_seed is not None
    else None
  )
  linear = 0
  if exact_linear:
    if in_dim is None:
      raise ValueError("exact_linear=True needs in_dim (Dk linear columns)")
    linear = int(in_dim)
    if num_features < linear + 2:
      raise ValueError(
        f"exact_linear=True needs num_features >= Dk + 2 = {linear + 2} "
        f"(1 constant, Dk linear, >= 1 random), got {num_features}"
      )
  counts, weights = allocate_degrees(
    num_features - 1 - linear,
    allocation,
    max_degree,
    rng,
    min_degree=2 if exact_linear else 1,
  )
  a = kernels.coefficients(k.name, len(counts) + 1)
  plan = FeaturePlan(k.name, math.sqrt(a[0]), counts, projection, linear)
  per_degree = np.sqrt(a[1:] * weights)
  scales = np.concatenate(
    [
      np.full(linear, math.sqrt(a[1])),
      np.repeat(per_degree, counts),
    ]
  ).astype(np.float32)
  return plan, scales


def seed_from_key(key) -> int:
  """A 64-bit numpy seed from a JAX PRNG key: its first and last key words.

  The one bridge from a JAX key to host-side numpy draws (the `sampled`
  degree counts here, `spectral.sample_qmc`'s Sobol scrambling).

  Args:
    key: a concrete typed key, or its raw `jax.random.key_data` words as a
      numpy array (what a `jax.pure_callback` receives).

  Returns:
    A Python int in [0, 2^64).

  Raises:
    jax.errors.TracerArrayConversionError: the key is traced (under jit).
  """
  if not isinstance(key, np.ndarray):
    key = jax.random.key_data(key)
  data = np.asarray(key).astype(np.uint64).ravel()
  return int(data[0] << np.uint64(32) | data[-1])


def sample_rademacher(
  key: jax.Array, in_dim: int, width: int, num_heads: int | None = None
) -> jax.Array:
  """i.i.d. +-1 projections: float32 [Dk, W], or [H, Dk, W] per head.

  The random part of an RMF map (`sample_rmf`) and the Spectraformer grid's
  `rademacher` weights, which the rmf component takes.
  """
  shape = (in_dim, width) if num_heads is None else (num_heads, in_dim, width)
  return jax.random.rademacher(key, shape, dtype=jnp.float32)


def sample_rmf(
  key: jax.Array,
  in_dim: int,
  num_features: int,
  kernel: str,
  allocation: str = "sampled",
  max_degree: int = 20,
  *,
  projection: str = "chained",
  num_heads: int | None = None,
  allocation_seed: int | None = None,
  exact_linear: bool = False,
) -> RMFParams:
  """Draws a random Maclaurin feature map.

  Args:
    key: JAX PRNG key for the Rademacher projections.
    in_dim: Dk, the input dimension.
    num_features: M, the output width, one constant feature included.
    kernel: kernel name (`kernels.get`).
    allocation: 'sampled' (paper) or 'stratified' (module docstring).
    max_degree: truncation of the degree distribution (authors: 20).
    projection: 'chained' (width ~M-1) or 'independent' (width ~2(M-1)).
    num_heads: None for one map shared by all heads (the authors' choice), or
      H for independent maps per head (then `rmf` takes [..., H, Dk]).
    allocation_seed: numpy seed of the sampled degree counts; default: derived
      from `key` (which must then be concrete, not traced).
    exact_linear: the constant and linear terms exact (Kar & Karnick 2012's
      "H0/1", docs/METHOD.md §3.3): Dk columns sqrt(a_1) x, and the
      M-1-Dk random features of degrees n >= 2 (needs M >= Dk + 2).

  Returns:
    `RMFParams`; `rmf(params, x)` maps [..., Dk] to [..., M].
  """
  if allocation == "sampled" and allocation_seed is None:
    try:
      allocation_seed = seed_from_key(key)
    except jax.errors.TracerArrayConversionError as e:
      raise ValueError(
        "allocation='sampled' draws the degree counts on the host, so it "
        "needs a concrete key or an explicit allocation_seed; pass "
        "allocation_seed=, call sample_rmf outside jax.jit, or use "
        "allocation='stratified'"
      ) from e
  plan, scales = make_plan(
    num_features,
    kernel,
    allocation,
    max_degree,
    projection,
    allocation_seed,
    exact_linear=exact_linear,
    in_dim=in_dim,
  )
  projections = sample_rademacher(key, in_dim, plan.projection_width, num_heads)
  return RMFParams(projections, jnp.asarray(scales), plan)


def _products(u: jax.Array, plan: FeaturePlan) -> jax.Array:
  """[..., W] projections -> [..., M-1] unscaled degree products."""
  widths = plan.widths
  # One split (its transpose is one concatenate) rather than static slices,
  # whose gradients are full-width pads (about 2x slower on CPU).
  blocks = jnp.split(u, np.cumsum(widths)[:-1], axis=-1)
  features = []
  if plan.projection == "chained":
    prefix = blocks[0]
    for n, count in enumerate(plan.counts, 1):
      if n > 1:
        prefix = prefix[..., : widths[n - 1]] * blocks[n - 1]
      if count:
        features.append(prefix[..., :count])
  else:
    blocks = iter(blocks)
    for n, count in enumerate(plan.counts, 1):
      product = None
      for _ in range(n):
        block = next(blocks)
        product = block if product is None else product * block
      if count:
        features.append(product)
  return jnp.concatenate(features, axis=-1)


def _project(
  x: jax.Array, projection: jax.Array, head_axis: int = -2
) -> jax.Array:
  """x @ projection in float32.

  Args:
    x: [..., Dk]; for per-head projections [H, Dk, W], x has its H axis at
      `head_axis` (-2 for [..., H, Dk]; 1 for heads-first [B, H, L, Dk]).
    projection: [Dk, W] shared, or [H, Dk, W] per head.

  Returns:
    float32 [..., W] in the layout of x.
  """
  x = x.astype(jnp.float32)
  if projection.ndim == 2:
    return x @ projection
  x = jnp.moveaxis(x, head_axis, -2)
  u = jnp.einsum("...hd,hdw->...hw", x, projection)
  return jnp.moveaxis(u, -2, head_axis)


def rmf(
  params: RMFParams,
  x: jax.Array,
  *,
  constant: bool = True,
  head_axis: int = -2,
  scaled: bool = True,
) -> jax.Array:
  """Applies a random Maclaurin feature map.

  Args:
    params: from `sample_rmf`.
    x: [..., Dk], any float dtype (the products are computed in float32).
      Any layout works: `attention.macformer_attention` passes heads-first
      [B, H, L, Dk], the layout its matmuls want.
    constant: include the constant feature sqrt(a_0) as column 0; without it
      the caller adds a_0 analytically (`attention.rmfa(constant=a_0)`).
    head_axis: for a per-head map (`num_heads` set), the H axis of x.
    scaled: multiply the random features by their scales s_i; without
      them (and without the constant) the caller applies s_i^2 to a state
      it reduces them into (`attention.rmf_linear_attention`). With an
      exact linear term (`exact_linear`) the random part starts with the
      Dk columns x, scaled by sqrt(a_1).

  Returns:
    float32 [..., M] ([..., M-1] without the constant); phi(x) . phi(y)
    estimates f(x . y) without bias (up to the plan's truncation degree).
  """
  chex.assert_axis_dimension(x, -1, params.projections.shape[-2])
  random = _products(_project(x, params.projections, head_axis), params.plan)
  if params.plan.exact_linear:  # the exact linear columns, then the rest
    random = jnp.concatenate([x.astype(jnp.float32), random], axis=-1)
  if scaled:
    random = random * params.scales
  if not constant:
    return random
  ones = jnp.full(random.shape[:-1] + (1,), params.plan.sqrt_a0, random.dtype)
  return jnp.concatenate([ones, random], axis=-1)


def split_linear(params: RMFParams) -> tuple[jax.Array, RMFParams | None]:
  """Splits a map into its degree-1 part, as a matrix, and the rest.

  A degree-1 feature is linear, s_i (w_i . x), so the degree-1 share of
  phi(x) . phi(y) is the bilinear form x^T A y with A = sum_i s_i^2 w_i w_i^T
  over the degree-1 features (docs/METHOD.md §4.3), or A = a_1 I for an
  exact linear term (§3.3): the same estimate,
  evaluated as a Dk x Dk matrix instead of C_1 ~ (M-1)/2 feature columns.
  The rest is the map restricted to degrees >= 2 (for `chained`, its level-1
  block keeps only the columns the longer chains continue), so that

    phi(x) . phi(y) = a_0 + x^T A y + rest(x) . rest(y)

  to float32 round-off (a test checks it).

  Args:
    params: from `sample_rmf`.

  Returns:
    (A, rest): A float32 [Dk, Dk] (or [H, Dk, Dk] for a per-head map),
    symmetric, zero when the plan has no degree-1 feature; rest the
    `RMFParams` of the degree >= 2 features with `constant` excluded, or
    None when there are none.
  """
  plan = params.plan
  w, s = params.projections, params.scales
  if plan.exact_linear:  # A = a_1 I (docs/METHOD.md §3.3); no degree-1 draws
    dk = plan.exact_linear
    linear = jnp.broadcast_to(jnp.diag(s[:dk] ** 2), w.shape[:-2] + (dk, dk))
    rest = RMFParams(w, s[dk:], dataclasses.replace(plan, exact_linear=0))
    return linear, rest
  c1 = plan.counts[0]
  linear = jnp.einsum(
    "...dw,w,...ew->...de", w[..., :c1], s[:c1] ** 2, w[..., :c1]
  )
  counts = (0,) + tuple(plan.counts[1:])
  if sum(counts) == 0:
    return linear, None
  if plan.projection == "chained":
    first = plan.widths[0]  # level 1: B_1 columns, B_2 of them continue
    rest_w = jnp.concatenate([w[..., : max(counts)], w[..., first:]], axis=-1)
  else:
    rest_w = w[..., c1:]
  rest = RMFParams(rest_w, s[c1:], dataclasses.replace(plan, counts=counts))
  return linear, rest


def _moments(x, y):
  """t = x.y and Q = E[(w.x)^2 (w.y)^2] for Rademacher w (METHOD.md §2.2)."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  t = np.sum(x * y, -1)
  q = (
    np.sum(x * x, -1) * np.sum(y * y, -1)
    + 2 * t**2
    - 2 * np.sum(x**2 * y**2, -1)
  )
  return t, q


def rmf_variance(
  kernel: str,
  x: np.ndarray,
  y: np.ndarray,
  num_features: int,
  max_degree: int = 20,
  *,
  exact_linear: bool = False,
) -> np.ndarray:
  """Variance of phi(x).phi(y) for the `sampled`, `independent` map
  (docs/METHOD.md §2.2; with `exact_linear`, §3.3).

  Var = (sum_n a_n^2/P(n) Q^n - (sum_n a_n t^n)^2) / R, with
  Q = |x|^2|y|^2 + 2 t^2 - 2 sum_k x_k^2 y_k^2, t = x.y, the sums over
  n = 1..max_degree and R = M-1; with `exact_linear` over n >= 2, with
  P(n) renormalised there, and R = M-1-Dk (the constant and linear terms
  are exact, without variance).

  Args:
    x, y: [..., Dk] float64 arrays.

  Returns:
    float64 [...].
  """
  t, q = _moments(x, y)
  low = 2 if exact_linear else 1
  num_random = num_features - 1 - (np.shape(x)[-1] if exact_linear else 0)
  a = kernels.coefficients(kernel, max_degree + 1)[low:]
  pmf = degree_pmf(max_degree, low)[low - 1 :]
  n = np.arange(low, max_degree + 1)
  second = np.sum(a**2 / pmf * q[..., None] ** n, -1)
  mean = np.sum(a * t[..., None] ** n, -1)
  return (second - mean**2) / num_random


def stratified_variance(
  plan: FeaturePlan, x: np.ndarray, y: np.ndarray
) -> np.ndarray:
  """Exact variance of phi(x).phi(y) for a map with fixed counts C_n and
  weights a_n / C_n (`stratified`), either layout, with or without the
  exact linear term (docs/METHOD.md §3.2-3.3).

  The degree-n features contribute (a_n^2 / C_n) (Q^n - t^(2n)); for
  `chained`, the degree-n and degree-m (n < m) prefixes of each of the
  min(C_n, C_m) shared chains add a covariance t^(m-n) (Q^n - t^(2n)),
  twice (a_n / C_n) (a_m / C_m) per chain. An exact linear term adds none.

  Args:
    plan: a stratified plan (`make_plan`).
    x, y: [..., Dk] float64 arrays.

  Returns:
    float64 [...].
  """
  t, q = _moments(x, y)
  counts = plan.counts
  a = kernels.coefficients(plan.kernel, len(counts) + 1)
  var = np.zeros_like(t)
  for n, cn in enumerate(counts, 1):
    if not cn:
      continue
    base = q**n - t ** (2 * n)
    var = var + a[n] ** 2 / cn * base
    if plan.projection != "chained":
      continue
    for m in range(n + 1, len(counts) + 1):
      if counts[m - 1]:
        shared = min(cn, counts[m - 1]) / (cn * counts[m - 1])
        var = var + 2 * a[n] * a[m] * shared * t ** (m - n) * base
  return var


# ----------------------------------------------------------------------------
# Baselines: Performer FAVOR+, RFA, elu+1.
# ----------------------------------------------------------------------------
def sample_orthogonal_gaussian(
  key: jax.Array, in_dim: int, num_features: int
) -> jax.Array:
  """Performer's orthogonal Gaussian projections. Returns float32 [Dk, M].

  Blocks of Dk orthonormal directions (QR of a Gaussian matrix), each row
  rescaled by the norm of an independent Gaussian vector, so every
  projection is marginally N(0, I) while those in a block are orthogonal
  (Choromanski et al. 2021, `ortho_scaling=0`).
  """
  num_blocks = -(-num_features // in_dim)
  block_key, norm_key = jax.random.split(key)
  gaussian = jax.random.normal(block_key, (num_blocks, in_dim, in_dim))
  q, r = jnp.linalg.qr(gaussian)  # [blocks, Dk, Dk], orthonormal columns
  # Sign-fix so Q is Haar-distributed: LAPACK's R may have negative diagonal
  # entries, which biases plain QR directions (and FAVOR+ with them; without
  # this fix the attention error stalls at ~5% as M grows).
  q = q * jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))[:, None, :]
  directions = jnp.swapaxes(q, 1, 2).reshape(-1, in_dim)[:num_features]
  norms = jnp.linalg.norm(
    jax.random.normal(norm_key, (num_features, in_dim)), axis=-1
  )
  return (directions * norms[:, None]).T.astype(jnp.float32)


def gerf_features(
  w: jax.Array,
  x: jax.Array,
  a: jax.Array = 0.0,
  *,
  stabilize: str | None = None,
  key_mask: jax.Array | None = None,
  causal: bool = False,
  key_max: str = "head",
  eps: float = 0.0,
) -> jax.Array:
  """Positive random features of exp(x . y): the one implementation.

  Generalised exponential RFs (Likhosherstov et al. 2022, GERF with s = +1):

    phi(x) = D exp(A |w|^2 + B w . x - |x|^2/2) / sqrt(m),
    B = sqrt(1 - 4A), D = (1 - 4A)^(Dk/4), A < 1/8,

  so that E[phi(x) . phi(y)] = exp(x . y) for columns w ~ N(0, I). A = 0 is
  Performer's positive map (FAVOR+, Choromanski et al. 2021; the
  Spectraformer posrf component; `favor_positive`); oprf, gerf and saderf
  (`spectral`) choose other A.

  Attention features are stabilised by a shift c that cancels in the
  attention ratio (but not in phi(x) . phi(y)):
    * queries: c = max over the features of each row;
    * keys, non-causal: one max over the real keys (`key_mask`) of each
      example and head (`key_max='head'`, x heads-first [B, H, L, Dk]) or of
      each example, heads included (`key_max='example'`, FAVOR+'s; x any
      layout [B, ..., Dk]); an example without real keys gets c = 0;
    * causal: a max over keys would let future keys change the past, so
      keys use the data-independent bound (A + B^2/2) |w|^2 (with A = 0:
      w.x - |x|^2/2 - |w|^2/2 = -|w - x|^2/2 <= 0), and queries add it
      back before their row max, so that phi(q) . phi(k) is unchanged.

  Args:
    w: [Dk, m] projections (`spectral.sample_weights`).
    x: [..., Dk], already scaled (Dk^-1/4 for softmax attention).
    a: A, a scalar or broadcastable to [B, H, 1, 1] (A < 1/8).
    stabilize: None (the unbiased estimator, for kernel estimates), 'query'
      or 'key' (attention features).
    key_mask: keys, non-causal: bool broadcastable to x.shape[:-1] (e.g.
      [B, 1, L] heads-first), True for real tokens, so padding cannot set c.
    causal: the causal-safe stabiliser (for prefix attention).
    key_max: 'head' or 'example', the keys' non-causal max (above).
    eps: added to exp(u - c) before the 1/sqrt(m), non-causal stabilised
      features only (FAVOR+'s numerical stabiliser 1e-6).

  Returns:
    float32 [..., m], positive.
  """
  x = x.astype(jnp.float32)
  a = jnp.asarray(a, jnp.float32)
  b = jnp.sqrt(1.0 - 4.0 * a)
  dk, m = w.shape
  w2 = jnp.sum(w * w, axis=0)  # [m]
  u = (
    a * w2
    + b * (x @ w)
    - 0.5 * jnp.sum(x * x, -1, keepdims=True)
    + 0.25 * dk * jnp.log1p(-4.0 * a)
  )
  scale = 1.0 / math.sqrt(m)
  if stabilize is None:
    return jnp.exp(u) * scale
  if stabilize not in ("query", "key"):
    raise ValueError(
      f"stabilize must be None, 'query' or 'key', got {stabilize!r}"
    )
  if key_max not in ("head", "example"):
    raise ValueError(f"key_max must be 'head' or 'example', got {key_max!r}")
  is_query = stabilize == "query"
  if causal:
    shift = jax.lax.stop_gradient((a + 0.5 * b * b) * w2)
    if not is_query:
      return jnp.exp(u - shift) * scale
    u = u + shift
  if is_query:
    c = jnp.max(u, axis=-1, keepdims=True)
  else:
    u_real = (
      u if key_mask is None else jnp.where(key_mask[..., None], u, -jnp.inf)
    )
    axes = (-2, -1) if key_max == "head" else tuple(range(1, u.ndim))
    c = jnp.max(u_real, axis=axes, keepdims=True)
    c = jnp.where(jnp.isfinite(c), c, 0.0)  # an example without real keys
  phi = jnp.exp(u - jax.lax.stop_gradient(c))
  if not causal and eps:
    phi = phi + eps
  return phi * scale


def favor_positive(
  projection: jax.Array,
  x: jax.Array,
  *,
  is_query: bool,
  key_mask: jax.Array | None = None,
  causal: bool = False,
) -> jax.Array:
  """FAVOR+ positive features of exp(x . y): `gerf_features` at A = 0 with
  Performer's stabiliser.

  phi(x)_m = exp(w_m . x - |x|^2/2 - c) / sqrt(M), w_m ~ N(0, I). Non-causal
  (Performer's): c = the max over the features of each query, and one max
  over all real keys of an example, heads included (`key_max='example'`),
  plus Performer's eps = 1e-6 inside the 1/sqrt(M). Causal: the
  data-independent key bound |w_m|^2/2 (`gerf_features`).

  Args:
    projection: [Dk, M] from `sample_orthogonal_gaussian`.
    x: [B, ..., Dk] in any layout (e.g. [B, L, H, Dk] or [B, H, L, Dk]),
      already scaled (Performer uses Dk^-1/4 for softmax).
    is_query: picks the stabiliser.
    key_mask: keys only, non-causal: bool broadcastable to x.shape[:-1]
      (e.g. [B, L, 1] or [B, 1, L]), True for real tokens, so padding cannot
      set c.
    causal: use the causal-safe stabiliser (for prefix attention).

  Returns:
    float32 [B, ..., M], positive.
  """
  return gerf_features(
    projection,
    x,
    0.0,
    stabilize="query" if is_query else "key",
    key_mask=key_mask,
    causal=causal,
    key_max="example",
    eps=1e-6,
  )


def sample_gaussian(
  key: jax.Array, in_dim: int, num_frequencies: int
) -> jax.Array:
  """i.i.d. N(0, I) projections, float32 [Dk, W].

  RFA's frequencies (W = M/2) and the Spectraformer `gaussian` and `mm`
  weights (`spectral.sample_weights`).
  """
  return jax.random.normal(key, (in_dim, num_frequencies), jnp.float32)


def fourier_features(projection: jax.Array, x: jax.Array) -> jax.Array:
  """RFA's random Fourier features of exp(x . y) (Peng et al. 2021).

  phi(x) = exp(|x|^2/2) [sin(W x), cos(W x)] / sqrt(M/2): E[phi(x).phi(y)] =
  exp(|x|^2/2 + |y|^2/2) exp(-|x-y|^2/2) = exp(x . y). Signed, like RMF.

  Args:
    projection: [Dk, M/2] Gaussian.
    x: [..., Dk], already scaled.

  Returns:
    float32 [..., M].
  """
  x = x.astype(jnp.float32)
  u = _project(x, projection)
  scale = jnp.exp(0.5 * jnp.sum(x * x, axis=-1, keepdims=True))
  scale = scale / math.sqrt(projection.shape[-1])
  return jnp.concatenate([jnp.sin(u), jnp.cos(u)], axis=-1) * scale


def elu_plus_one(x: jax.Array) -> jax.Array:
  """Linear attention's map (Katharopoulos et al. 2020): [..., D] -> same."""
  return jax.nn.elu(x.astype(jnp.float32)) + 1.0
