"""Run configs: `common.py` (every key, presets, config strings) and one file
per LRA task whose `get_config(arg)` takes the attention as its argument.

`--config=configs/<task>.py` points at these files; in a checkout they import
as `configs.<task>`, and `pip install` installs them as
`macformer_jax.training.configs` (no top-level `configs` package)."""
