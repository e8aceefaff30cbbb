"""A fake embedder identity and random unit vectors, for catalog and vector tests that need no model."""

from __future__ import annotations

import numpy as np

DIM = 8
IDENTITY = {"backend": "fake", "model": "fake-8", "dim": DIM, "max_tokens": 128,
            "query_prompt": "", "document_prompt": "", "precision": "fp32"}


def unit_vectors(n: int, seed: int = 0) -> np.ndarray:
    """`n` random unit vectors of dimension DIM, the same for the same seed."""
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(n, DIM)).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
