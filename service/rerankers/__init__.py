"""Re-rankers: a second retrieval stage that reads the question and each candidate passage together and scores
them; the backends are plugins under the `docqa.rerankers` entry-point group (docqa's own too)."""

from service.rerankers.base import Reranker, build_reranker, reranker_plugins

__all__ = ["Reranker", "build_reranker", "reranker_plugins"]
