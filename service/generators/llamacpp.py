"""A local GGUF model run in-process by llama-cpp-python."""

from __future__ import annotations

import importlib.util
import threading
from contextlib import closing
from pathlib import Path
from typing import Any, Iterator, Sequence

from pydantic import BaseModel, Field

from service.errors import GeneratorUnavailable
from service.generators.base import GeneratorPlugin, Passage
from service.generators.prompt import build_messages, build_rewrite_messages, clean_rewrite

MODEL_PATH_SETTING = "DOCQA_GENERATOR__LLAMACPP__MODEL_PATH"
INSTALL_HINT = "llama-cpp-python is not installed: pip install 'docqa[llamacpp]'"


class LlamaCppSettings(BaseModel):
    """`DOCQA_GENERATOR__LLAMACPP__*`: a local GGUF model run in-process by llama-cpp-python."""

    model_path: Path | None = None
    n_ctx: int = Field(4096, gt=0)
    n_threads: int | None = None
    max_tokens: int = Field(512, gt=0)
    temperature: float = 0.1


class LlamaCppGenerator:
    """Streams an answer from a GGUF chat model; the model loads on first use, once."""

    name = "llamacpp"

    def __init__(
        self,
        model_path: str | Path | None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        max_tokens: int = 512,
        temperature: float = 0.1,
    ) -> None:
        if model_path is None:
            raise ValueError(f"the llamacpp generator needs a GGUF file: set {MODEL_PATH_SETTING}")
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ValueError(f"{MODEL_PATH_SETTING} must name a GGUF file, got {str(model_path)!r} (no such file)")
        if n_ctx <= 0 or max_tokens <= 0:
            raise ValueError(f"n_ctx and max_tokens must be > 0, got n_ctx={n_ctx}, max_tokens={max_tokens}")
        if importlib.util.find_spec("llama_cpp") is None:
            raise ImportError(INSTALL_HINT)
        self.model_path = path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._llama: Any = None
        self._load_lock = threading.Lock()
        # A llama.cpp context is not thread-safe: one generation at a time per model.
        self._generate_lock = threading.Lock()

    @classmethod
    def from_settings(cls, cfg: LlamaCppSettings) -> LlamaCppGenerator:
        """Build from its settings section."""
        return cls(cfg.model_path, cfg.n_ctx, cfg.n_threads, cfg.max_tokens, cfg.temperature)

    def generate(self, question: str, passages: Sequence[Passage]) -> Iterator[str]:
        """Yield answer pieces as the model produces them; closing the iterator stops decoding."""
        return self._chat(build_messages(question, passages), self.max_tokens)

    def rewrite_question(self, question: str, previous: Sequence[str]) -> str:
        """A follow-up made standalone by the model."""
        return clean_rewrite("".join(self._chat(build_rewrite_messages(question, previous), 96)), question)

    def _chat(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        llama = self._model()
        with self._generate_lock:
            try:
                stream = llama.create_chat_completion(
                    messages=messages,
                    stream=True,
                    max_tokens=max_tokens,
                    temperature=self.temperature,
                )
                with closing(stream):
                    for chunk in stream:
                        content = chunk["choices"][0]["delta"].get("content")
                        if content:
                            yield content
            except (RuntimeError, ValueError, KeyError, IndexError) as exc:
                raise GeneratorUnavailable(f"llama.cpp ({self.model_path.name}): {exc}") from exc

    def _model(self) -> Any:
        """The loaded `llama_cpp.Llama`, loading it the first time."""
        with self._load_lock:
            if self._llama is None:
                try:
                    import llama_cpp
                except ImportError as exc:
                    raise ImportError(INSTALL_HINT) from exc
                try:
                    self._llama = llama_cpp.Llama(
                        model_path=str(self.model_path), n_ctx=self.n_ctx, n_threads=self.n_threads, verbose=False
                    )
                except (RuntimeError, ValueError) as exc:
                    raise GeneratorUnavailable(f"llama.cpp could not load {self.model_path}: {exc}") from exc
            return self._llama


PLUGIN = GeneratorPlugin(LlamaCppSettings, lambda cfg, scorer: LlamaCppGenerator.from_settings(cfg))
