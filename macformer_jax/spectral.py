r"""The Spectraformer grid, pure-functional: weight matrices x components.

Spectraformer (Nguyen, Joshi, Salim; arXiv 2405.15310; docs/METHOD.md §7) writes
a random-feature approximation of the softmax kernel exp(x . y) as two
independent choices: how the projection W [Dk, m] is drawn (the *weight
matrix*) and how features are formed from W^T x (the *component function*).
Inputs x are already scaled (Dk^-1/4 for softmax), layout free, [..., Dk].

**Weight matrices** (`sample_weights(key, name, in_dim, num_features)`,
float32 [Dk, W]; W = `projection_width(component, m)`; one column per random
vector w):

  name                distribution of a column w                 draw cost
  ------------------  -----------------------------------------  -------------
  gaussian            iid N(0, I) (`features.sample_gaussian`)   O(Dk W)
  orf                 N(0, I) marginally; blocks of Dk exactly   O(W Dk^2)
                      orthogonal directions (sign-fixed QR), chi
                      norms (`features.sample_orthogonal_gaussian`)
  sorf                rows of sqrt(P) H D1 H D2 H D3 (H the       O(W P)
                      normalised P x P Hadamard, D random signs,
                      P = next power of two >= Dk), first Dk
                      coordinates; m > P: independent blocks
                      stacked. |w| = sqrt(P) only when Dk = P
                      (Dk < P cuts the rows: |w| varies, mean
                      square Dk); entries discrete: NOT Gaussian
  qmc                 scrambled Sobol points (scipy.stats.qmc,    O(W Dk), host
                      LMS + digital shift) mapped by the
                      Gaussian inverse CDF: each point is
                      uniform on [0,1)^Dk, so each w ~ N(0, I)
                      marginally; the W points are jointly low
                      discrepancy (randomised QMC)
  mm                  gaussian, then moment matching: centred     O(W Dk^2)
                      and whitened so the empirical mean is 0
                      and the empirical E[w w^T] is I exactly
                      (per coordinate when W <= Dk). Isotropic,
                      but not independent or Gaussian
  fastfood            rows of S H G Pi H B / sqrt(P) (Le et al.   O(W P)
                      2013): B signs, Pi a permutation, G
                      N(0,1) diagonal, S = chi_P / |G|. Each row
                      is exactly N(0, I_P) (H G Pi H B rows are
                      N(0, P I) given Pi, B; S resets the shared
                      norm |G| to an independent chi_P); blocks
                      stacked for m > P
  fastfood_learnable  fastfood with S, G, B trainable (`params`)  O(W P) per
                      and Pi fixed: distributed as fastfood at    forward
                      initialisation only
  rademacher          iid +-1 (`features.sample_rademacher`, the  O(Dk W)
                      projections of `features.sample_rmf`)

On the application side every matrix is materialised: x @ W is one dense
matmul of the same cost for every weight matrix (at Dk <= 128 a dense
matmul beats a fast Walsh-Hadamard transform on CPU and GPU alike); the
structured matrices differ in how they are drawn and in their statistics,
not in attention speed.

**Component functions** (m = W random vectors; phi(x) . phi(y) estimates
exp(x . y)):

  trigrf  RFA / random Fourier: exp(|x|^2/2) [sin(W^T x), cos(W^T x)]
          / sqrt(m) (`features.fourier_features`; W has m = M/2 columns).
          Signed. Unbiased when every column is N(0, I).
  posrf   Performer positive: exp(W^T x - |x|^2/2) / sqrt(m).
          Unbiased when every column is N(0, I).
  oprf    optimised positive RFs (Likhosherstov et al. 2022, "Chefs' Random
          Tables", GERF with s = +1):
            phi(x) = D exp(A |w|^2 + B w . x - |x|^2/2) / sqrt(m),
            B = sqrt(1 - 4A), D = (1 - 4A)^(Dk/4), A < 1/8,
          unbiased for every such A when columns are N(0, I). A is the
          closed-form minimiser of the mean log second moment over the
          batch's (query, key) pairs,
            A* = (1 - 2 rho - sqrt((2 rho + 1)^2 + 8 rho)) / 16,
            rho = mean_ij |x_i + y_j|^2 / Dk
                = (mean|x|^2 + mean|y|^2 + 2 mean(x) . mean(y)) / Dk,
          per example and head, over real tokens only, A <= 0 (`oprf_a`).
          A* depends on the whole sequence, so oprf has no causal mode.
  gerf    the same GERF map with A a learnable parameter per head
          (A = (1 - exp(p)) / 8 < 1/8, p = 0: A = 0, posrf). Unbiased for
          every A; causal mode allowed (A does not depend on the data).
  saderf  simplified asymmetric dense-exponential RFs (Likhosherstov et al.
          2023, FAVOR#), the diagonal form: queries are rescaled by
          Psi = diag(psi), keys by Psi^-1 (x . y is unchanged), with
            psi_l = (sum_j y_jl^2 / sum_i x_il^2)^(1/4)
          over real tokens per example and head, which equalises the
          per-coordinate energy of queries and keys; then oprf on the
          rescaled pair (A* from their statistics). Unbiased for any Psi;
          no causal mode (Psi sees the whole sequence).
  rmf     random Maclaurin (`features.rmf`), the exp kernel's Maclaurin
          series with Rademacher projections (stratified degrees, chained
          layout, M - 1 random features plus the exact constant a_0 = 1):
          the grid cell rmf x rademacher is Macformer's map without ppSBN.
          Unbiased for exp truncated at the plan's top degree.

`UNBIASED_WEIGHTS` are the matrices whose columns are marginally N(0, I), so
every component above is unbiased with them; sorf, mm (and fastfood_learnable
after training) are not: their first two moments are Gaussian (E[w] = 0,
E[w w^T] = I) but the higher ones are not. For posrf and trigrf (A = 0) the
bias therefore starts at fourth order in x + y (x - y for trigrf). oprf, gerf
and saderf with A != 0 also depend on the law of |w|^2 through
D^2 exp(2A |w|^2), so their bias enters at orders 0 and 2 (docs/METHOD.md
§7.3).

Numerically stable attention features (`feature_pair(..., stabilize=...)`):
the positive components are one function, `features.gerf_features` (also
FAVOR+'s), which subtracts a max (per query row; over the real keys of an
example and head; causal: the data-independent bound (A + B^2/2) |w|^2 for
keys); these shifts cancel in the attention ratio but not in
phi(x) . phi(y), so kernel estimates use `stabilize=None`.
"""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import ndtri
from scipy.stats import qmc as scipy_qmc

from macformer_jax import features

COMPONENTS = ("trigrf", "posrf", "oprf", "gerf", "saderf", "rmf")
WEIGHTS = (
  "gaussian",
  "orf",
  "sorf",
  "qmc",
  "mm",
  "fastfood",
  "fastfood_learnable",
  "rademacher",
)
# Columns marginally N(0, I): every component is unbiased with them.
UNBIASED_WEIGHTS = ("gaussian", "orf", "qmc", "fastfood", "fastfood_learnable")
SIGNED = ("trigrf", "rmf")
# Components whose parameters are fitted to the whole sequence.
NOT_CAUSAL = ("oprf", "saderf")
# The exp kernel's RMF plan used by the rmf component.
RMF_ALLOCATION, RMF_PROJECTION, RMF_MAX_DEGREE = "stratified", "chained", 20


def grid() -> tuple[tuple[str, str], ...]:
  """Every valid (component, weights) cell: rmf only with rademacher."""
  cells = tuple(
    (c, w)
    for c in COMPONENTS
    if c != "rmf"
    for w in WEIGHTS
    if w != "rademacher"
  )
  return cells + (("rmf", "rademacher"),)


def check_cell(component: str, weights: str) -> None:
  """Raises ValueError for an unknown or invalid (component, weights)."""
  if component not in COMPONENTS:
    raise ValueError(
      f"unknown component {component!r}; known: {', '.join(COMPONENTS)}"
    )
  if weights not in WEIGHTS:
    raise ValueError(
      f"unknown weights {weights!r}; known: {', '.join(WEIGHTS)}"
    )
  if (component == "rmf") != (weights == "rademacher"):
    raise ValueError(
      f"component {component!r} with weights {weights!r}: "
      "rmf takes exactly the Rademacher weights"
    )


def rmf_plan(num_features: int):
  """(plan, scales) of the rmf component: `features.make_plan` for exp."""
  return features.make_plan(
    num_features, "exp", RMF_ALLOCATION, RMF_MAX_DEGREE, RMF_PROJECTION
  )


def projection_width(component: str, num_features: int) -> int:
  """Columns of W for an output width M (trigrf: M/2; rmf: its plan's)."""
  if component == "trigrf":
    if num_features % 2:
      raise ValueError(
        f"trigrf needs an even num_features (sin and cos), got {num_features}"
      )
    return num_features // 2
  if component == "rmf":
    return rmf_plan(num_features)[0].projection_width
  return num_features


# ----------------------------------------------------------------------------
# Weight matrices.
# ----------------------------------------------------------------------------
def _pow2(n: int) -> int:
  return 1 << max(0, (n - 1).bit_length())


def hadamard(size: int) -> np.ndarray:
  """Sylvester Hadamard matrix (+-1 entries), size a power of two."""
  h = np.ones((1, 1), np.float32)
  while h.shape[0] < size:
    h = np.block([[h, h], [h, -h]])
  return h


def _stack_blocks(blocks: jax.Array, in_dim: int, width: int) -> jax.Array:
  """[n, P, P] blocks whose rows are random vectors -> W [Dk, width]."""
  rows = blocks[:, :, :in_dim].reshape(-1, in_dim)[:width]
  return rows.T.astype(jnp.float32)


def sample_sorf(key: jax.Array, in_dim: int, width: int) -> jax.Array:
  """SORF (Yu et al. 2016): stacked independent sqrt(P) H D1 H D2 H D3 blocks.

  H is the normalised Hadamard matrix, so each block is sqrt(P) times an
  orthogonal matrix. For width > P each block of P rows is an independent
  product. The peer's `sorf_matrix` instead keeps the first Dk columns of one
  width x width product, and its Hadamard product is unnormalised
  (docs/METHOD.md §7.3). Returns float32 [Dk, width].
  """
  p = _pow2(in_dim)
  n = -(-width // p)
  h = jnp.asarray(hadamard(p)) / math.sqrt(p)
  signs = jax.random.rademacher(key, (n, 3, p), jnp.float32)
  # Row-scaling by D then left-multiplying by H: H D1 H D2 H D3.
  block = h[None] * signs[:, 0, None, :]
  block = block @ (h[None] * signs[:, 1, None, :])
  block = block @ (h[None] * signs[:, 2, None, :])
  return _stack_blocks(block * math.sqrt(p), in_dim, width)


def sample_fastfood(
  key: jax.Array, in_dim: int, width: int
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Fastfood factors (S, G, B, Pi), each [n, P] (Pi int32), n*P >= width.

  S = chi_P samples / |G| per block (the norm of an independent N(0, I_P)
  vector), G ~ N(0, 1), B = +-1, Pi a uniform permutation per block.
  """
  p = _pow2(in_dim)
  n = -(-width // p)
  ks, kg, kb, kp = jax.random.split(key, 4)
  g = jax.random.normal(kg, (n, p))
  chi = jnp.linalg.norm(jax.random.normal(ks, (n, p, p)), axis=-1)
  s = chi / jnp.linalg.norm(g, axis=-1, keepdims=True)
  b = jax.random.rademacher(kb, (n, p), jnp.float32)
  perm = jax.vmap(lambda k: jax.random.permutation(k, p))(
    jax.random.split(kp, n)
  ).astype(jnp.int32)
  return s, g, b, perm


def fastfood_matrix(
  s: jax.Array,
  g: jax.Array,
  b: jax.Array,
  perm: jax.Array,
  in_dim: int,
  width: int,
) -> jax.Array:
  """W [Dk, width] from fastfood factors: rows of S H G Pi H B / sqrt(P).

  Differentiable in s, g, b (fastfood_learnable).
  """
  p = s.shape[-1]
  h = jnp.asarray(hadamard(p))
  hb = h[None] * b[:, None, :]  # H B: [n, P, P]
  pihb = jnp.take_along_axis(hb, perm[:, :, None], axis=1)  # Pi H B
  block = h[None] @ (g[:, :, None] * pihb)  # H G Pi H B
  block = s[:, :, None] * block / math.sqrt(p)
  return _stack_blocks(block, in_dim, width)


def _sobol_gaussian(
  key_data: np.ndarray, in_dim: int, width: int
) -> np.ndarray:
  """Host side: scrambled Sobol [width, Dk] -> Gaussian, float32 [Dk, width]."""
  seed = features.seed_from_key(np.asarray(key_data))
  with warnings.catch_warnings():  # balance warning for non-powers of two
    warnings.simplefilter("ignore")
    points = scipy_qmc.Sobol(
      in_dim, scramble=True, rng=np.random.default_rng(seed)
    ).random(width)
  tiny = np.finfo(np.float32).tiny
  w = ndtri(np.clip(points, tiny, 1.0 - 2**-30))
  return np.ascontiguousarray(w.T, np.float32)


def sample_qmc(key: jax.Array, in_dim: int, width: int) -> jax.Array:
  """Randomised QMC: scrambled Sobol through the Gaussian inverse CDF.

  Drawn on the host (scipy) from a seed derived from the key, through
  `jax.pure_callback`, so it works under jit and vmap (one host call per
  key). Returns float32 [Dk, width].
  """
  data = jax.random.key_data(key)
  return jax.pure_callback(
    lambda d: _sobol_gaussian(d, in_dim, width),
    jax.ShapeDtypeStruct((in_dim, width), jnp.float32),
    data,
    vmap_method="sequential",
  )


def moment_match(w: jax.Array) -> jax.Array:
  """Columns of w [Dk, W] centred and whitened: mean 0, (1/W) w w^T = I.

  With W <= Dk the empirical covariance is singular; each coordinate is
  then standardised instead (mean 0, mean square 1).
  """
  dk, width = w.shape
  w = w - jnp.mean(w, axis=1, keepdims=True)
  if width <= dk:
    return w / jnp.sqrt(jnp.mean(w * w, axis=1, keepdims=True))
  cov = w @ w.T / width
  chol = jnp.linalg.cholesky(cov)
  return jax.scipy.linalg.solve_triangular(chol, w, lower=True)


def sample_weights(
  key: jax.Array, name: str, in_dim: int, width: int
) -> jax.Array:
  """Draws the projection W of a weight matrix `name` (module docstring).

  Args:
    key: PRNG key.
    name: one of `WEIGHTS`.
    in_dim: Dk.
    width: number of random vectors (`projection_width`).

  Returns:
    float32 [Dk, width]; column j is the random vector w_j.
  """
  if name == "gaussian":
    return features.sample_gaussian(key, in_dim, width)
  if name == "orf":
    return features.sample_orthogonal_gaussian(key, in_dim, width)
  if name == "sorf":
    return sample_sorf(key, in_dim, width)
  if name == "qmc":
    return sample_qmc(key, in_dim, width)
  if name == "mm":
    return moment_match(features.sample_gaussian(key, in_dim, width))
  if name in ("fastfood", "fastfood_learnable"):
    return fastfood_matrix(*sample_fastfood(key, in_dim, width), in_dim, width)
  if name == "rademacher":
    return features.sample_rademacher(key, in_dim, width)
  raise ValueError(f"unknown weights {name!r}; known: {', '.join(WEIGHTS)}")


# ----------------------------------------------------------------------------
# Data-dependent parameters (oprf, saderf).
# ----------------------------------------------------------------------------
def _masked_mean(x: jax.Array, mask: jax.Array | None) -> jax.Array:
  """Mean over the token axis -2 of x [..., L, F], real tokens only."""
  if mask is None:
    return jnp.mean(x, axis=-2, keepdims=True)
  m = mask[..., None].astype(x.dtype)
  return jnp.sum(x * m, axis=-2, keepdims=True) / jnp.maximum(
    jnp.sum(m, axis=-2, keepdims=True), 1.0
  )


def oprf_a(
  q: jax.Array, k: jax.Array, mask: jax.Array | None = None
) -> jax.Array:
  """OPRF's closed-form A* per example and head (module docstring).

  Args:
    q, k: [..., L, Dk] scaled queries and keys (heads-first [B, H, L, Dk]).
    mask: real tokens, broadcastable to [..., L] (e.g. [B, 1, L]).

  Returns:
    float32 [..., 1, 1], A* <= 0, gradient stopped.
  """
  q, k = q.astype(jnp.float32), k.astype(jnp.float32)
  dk = q.shape[-1]
  sq = _masked_mean(jnp.sum(q * q, -1, keepdims=True), mask)
  sk = _masked_mean(jnp.sum(k * k, -1, keepdims=True), mask)
  cross = jnp.sum(
    _masked_mean(q, mask) * _masked_mean(k, mask), -1, keepdims=True
  )
  rho = jnp.maximum(sq + sk + 2 * cross, 0.0) / dk
  a = (1 - 2 * rho - jnp.sqrt((2 * rho + 1) ** 2 + 8 * rho)) / 16
  return jax.lax.stop_gradient(a)


def saderf_scale(
  q: jax.Array, k: jax.Array, mask: jax.Array | None = None
) -> jax.Array:
  """SADERF's psi [..., 1, Dk]: queries * psi, keys / psi (docstring)."""
  q, k = q.astype(jnp.float32), k.astype(jnp.float32)
  eq = _masked_mean(q * q, mask)
  ek = _masked_mean(k * k, mask)
  psi = ((ek + 1e-6) / (eq + 1e-6)) ** 0.25
  return jax.lax.stop_gradient(psi)


def gerf_a(logit: jax.Array) -> jax.Array:
  """GERF's learnable A = (1 - exp(p)) / 8 < 1/8 (p = 0: A = 0)."""
  return (1.0 - jnp.exp(logit)) / 8.0


# ----------------------------------------------------------------------------
# Component functions.
# ----------------------------------------------------------------------------
# The positive components (posrf, oprf, gerf, saderf) share one map, defined
# with Performer's FAVOR+ in `features` (posrf is its A = 0).
gerf_features = features.gerf_features


def rmf_features(
  projections: jax.Array,
  x: jax.Array,
  num_features: int,
  *,
  constant: bool = True,
) -> jax.Array:
  """The rmf component: `features.rmf` with the exp kernel's stratified plan.

  Args:
    projections: Rademacher [Dk, W], W = `projection_width('rmf', M)`.
    x: [..., Dk].
    num_features: M, the plan's width (constant feature included).
    constant: include the constant column sqrt(a_0) = 1 (else the caller
      adds a_0 = 1, as `attention.linear_attention(constant=1)` does).

  Returns:
    float32 [..., M] ([..., M - 1] without the constant).
  """
  plan, scales = rmf_plan(num_features)
  params = features.RMFParams(projections, jnp.asarray(scales), plan)
  return features.rmf(params, x, constant=constant)


def feature_pair(
  component: str,
  w: jax.Array,
  q: jax.Array,
  k: jax.Array,
  *,
  num_features: int | None = None,
  gerf_logit: jax.Array | None = None,
  mask: jax.Array | None = None,
  causal: bool = False,
  stabilize: bool = True,
) -> tuple[jax.Array, jax.Array]:
  """Features of queries and keys for one grid cell.

  Args:
    component: one of `COMPONENTS`.
    w: the projection [Dk, W] (`sample_weights`).
    q, k: [B, H, L, Dk] heads-first, already scaled (Dk^-1/4 for softmax).
      Without `stabilize` any [..., L, Dk] works.
    num_features: M (needed by rmf).
    gerf_logit: gerf's parameter p, broadcastable to [B, H, 1, 1].
    mask: bool [B, L] real tokens: excluded from oprf/saderf statistics and
      from the key stabiliser (keys are masked after the feature map by
      `attention.linear_attention`).
    causal: causal-safe stabilisers; oprf and saderf raise.
    stabilize: attention features (shifts that cancel in the attention
      ratio) or, if False, the unbiased estimator of exp(q . k).

  Returns:
    (phi_q, phi_k), float32 [..., L, M'] (rmf: without its constant column,
    M' = M - 1, when stabilised; add a_0 = 1 as `linear_attention`'s
    `constant`).
  """
  if causal and component in NOT_CAUSAL:
    raise ValueError(
      f"component {component!r} fits its parameters to the "
      "whole sequence (future tokens included), so it has no "
      "causal mode; use posrf or gerf"
    )
  if component == "trigrf":
    return (features.fourier_features(w, q), features.fourier_features(w, k))
  if component == "rmf":
    if num_features is None:
      raise ValueError("the rmf component needs num_features")
    return tuple(
      rmf_features(w, x, num_features, constant=not stabilize) for x in (q, k)
    )
  # Token mask in the heads-first layout of the statistics: [B, 1, L].
  tokens = None if mask is None else mask.astype(bool)[..., None, :]
  if component == "posrf":
    a = 0.0
  elif component == "gerf":
    if gerf_logit is None:
      raise ValueError("the gerf component needs gerf_logit")
    a = gerf_a(gerf_logit)
  elif component == "oprf":
    a = oprf_a(q, k, tokens)
  elif component == "saderf":
    psi = saderf_scale(q, k, tokens)
    q, k = q * psi, k / psi
    a = oprf_a(q, k, tokens)
  else:
    raise ValueError(
      f"unknown component {component!r}; known: {', '.join(COMPONENTS)}"
    )
  if not stabilize:
    return gerf_features(w, q, a), gerf_features(w, k, a)
  return (
    gerf_features(w, q, a, stabilize="query", causal=causal),
    gerf_features(w, k, a, stabilize="key", key_mask=tokens, causal=causal),
  )


def kernel_estimate(
  component: str,
  w: jax.Array,
  x: jax.Array,
  y: jax.Array,
  *,
  num_features: int | None = None,
  gerf_logit: jax.Array | None = None,
) -> jax.Array:
  """phi(x_i) . phi(y_j), the estimate of exp(x_i . y_j): [..., Lx, Ly].

  oprf and saderf fit A (and psi) on the given x and y as a batch.
  """
  phi_x, phi_y = feature_pair(
    component,
    w,
    x,
    y,
    num_features=num_features,
    gerf_logit=gerf_logit,
    stabilize=False,
  )
  return jnp.einsum("...im,...jm->...ij", phi_x, phi_y)
