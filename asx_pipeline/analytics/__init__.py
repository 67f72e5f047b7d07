"""Pure pandas/numpy computations behind the derived assets (no Dagster, no I/O)."""
