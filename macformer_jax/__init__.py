"""macformer-jax: random Maclaurin feature attention (Macformer) in JAX/Flax.

Pure functions for the mathematics live in `kernels`, `features`, `attention`
and `normalization`; thin Flax modules in `layers` (attention cores and the
multi-head wrapper, one registry) and `encoder` (LRA-style encoders).
"""

__version__ = "0.1.0"
