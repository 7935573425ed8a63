"""Fails early, and says which extra to install, without the [lra] extra."""

import importlib.util

# The [lra] extra's modules that the trainer imports (pyproject.toml).
_MISSING = [
  name
  for name in ("absl", "optax", "orbax", "tensorboardX", "tqdm")
  if importlib.util.find_spec(name) is None
]
if _MISSING:
  raise ModuleNotFoundError(
    "macformer_jax.training (the LRA trainer) needs the [lra] extra, which "
    f"is not installed (missing: {', '.join(_MISSING)}); install it with: "
    "pip install 'macformer-jax[lra]'",
    name=_MISSING[0],
  )
