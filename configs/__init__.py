"""Run configs: `common.py` (every key, presets, config strings) and one file
per LRA task whose `get_config(arg)` takes the attention as its argument."""
