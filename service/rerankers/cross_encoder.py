"""Any sentence-transformers CrossEncoder, by name or path, run in-process."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Sequence

from indexes.embedders import PRECISIONS
from service.errors import RerankerUnavailable

if TYPE_CHECKING:
    from service.settings import RerankerConfig


class CrossEncoderReranker:
    """A CrossEncoder loaded once, on first use, and shared by every request of the process. Calls take turns
    under a lock: the fast tokenizer refuses to be used by two threads at once ("Already borrowed"), and on few
    cores two forward passes at once are no faster than one after the other."""

    backend = "cross-encoder"

    def __init__(self, model: str, *, device: str = "cpu", precision: str = "fp32", batch_size: int = 32) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        self.model_name = model
        self.name = f"cross-encoder:{model}"
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.loads = 0  # how many times the model was loaded (once, however many requests)
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        """The model (call under the lock); a load that fails is tried again by the next call."""
        if self._model is None:
            import torch
            from sentence_transformers import CrossEncoder
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()
            model = CrossEncoder(self.model_name, device=self.device)
            if self.precision != "fp32":
                model = model.to(torch.bfloat16 if self.precision == "bf16" else torch.float16)
            self.loads += 1
            self._model = model
        return self._model

    def warm_up(self) -> None:
        """Load the model now, so the first question does not wait for it."""
        with self._lock:
            self._load()

    def rerank(self, query: str, texts: Sequence[str]) -> list[float]:
        """One score per text (the model's own scale: a sigmoid for one-label models)."""
        if not texts:
            return []
        try:
            with self._lock:
                scores = self._load().predict([(query, t) for t in texts], batch_size=self.batch_size,
                                              show_progress_bar=False, convert_to_numpy=True)
        except Exception as exc:  # a missing model, a broken file, a CUDA error: the pipeline degrades
            raise RerankerUnavailable(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        return [float(s) for s in scores.reshape(len(texts), -1)[:, 0]]


def build(config: RerankerConfig) -> CrossEncoderReranker:
    """The `cross-encoder` backend from DOCQA_RERANKER__*."""
    assert config.model is not None  # build_reranker builds none without a model
    return CrossEncoderReranker(config.model, device=config.device, precision=config.precision,
                                batch_size=config.batch_size)
