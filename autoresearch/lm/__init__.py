"""Talking to models: backends, the metered DSPy engine, the small-model adapter, scheduling, preflight."""
