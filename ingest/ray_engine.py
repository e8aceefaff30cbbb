"""The `ray` ingest engine: documents prepared on a Ray cluster, committed by the driver as they stream back.

Reading and parse+chunk run as Ray Data CPU tasks; embedding runs in an actor pool (`map_batches` with a class that
loads the model once): one actor per GPU (`num_gpus=1`, fp16) when the cluster has GPUs, otherwise CPU actors. Each
worker rebuilds the collection's embedder from its recorded identity alone and refuses another model
(prepare.embedder_for). Prepared documents stream back to the driver (`iter_rows`: Ray Data's backpressure bounds
what is in flight, never the whole corpus), which commits each in its own transaction: the driver is the only
writer. A file that fails is data (its reason travels with it); a task or actor whose worker dies is retried by
Ray; a driver that dies loses nothing committed, and the same command again prepares only what is missing.

`--ray-address` is what `ray.init` takes (`auto`, `host:6379`, `ray://host:10001`); without one a local Ray is
started for the run. Workers need docqa with the `ray` extra, the same Ray and Python, the model, and the sources:
local paths must be the same on every node (a shared filesystem), URLs are read where the task runs.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from dataclasses import replace
from typing import Any, Iterator, Sequence

from indexes.embedders import Embedder
from indexes.errors import DocQAError, InvalidInput
from ingest.pipeline import Engine, EngineOptions, ProgressSink
from ingest.prepare import PreparedDocument, PrepareSpec, PrepareTask, embed_prepared, embedder_for, prepare_unembedded

log = logging.getLogger("docqa.ingest.ray")

DOCUMENTS_PER_BATCH = 8  # prepared documents per embedding call (each holds up to hundreds of chunks)


def ray_engine(options: EngineOptions) -> Engine:
    """The `ray` engine (needs the `ray` extra)."""
    return RayEngine(options)


class RayEngine:
    """Prepares on a Ray cluster through Ray Data; see the module's docstring."""

    def __init__(self, options: EngineOptions | None = None) -> None:
        self.options = options or EngineOptions()
        self.startup_seconds: float | None = None  # connecting (or starting a local Ray), for the benchmark

    def prepare(
        self, tasks: Sequence[PrepareTask], spec: PrepareSpec, embedder: Embedder, progress: ProgressSink,
    ) -> Iterator[PreparedDocument]:
        """Each task prepared on the cluster, yielded as it comes back (not in task order)."""
        if not tasks:
            return
        ray = _connect(self.options.address)
        data = ray.data
        started = time.perf_counter()
        gpus = int(ray.cluster_resources().get("GPU", 0))
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.startup_seconds = self.startup_seconds or 0.0
        actor_spec = replace(spec, device="cuda", precision="fp16") if gpus else spec
        actors = self.options.workers or (gpus if gpus else max(1, cpus // 2))
        rows = [{"task": pickle.dumps(t)} for t in tasks]
        dataset = data.from_items(rows, override_num_blocks=min(len(rows), max(cpus * 4, 1)))
        dataset = dataset.map(_Prepare(spec), num_cpus=_task_cpus(cpus, gpus, actors), max_retries=-1)
        dataset = dataset.map_batches(
            _Embed, fn_constructor_args=(actor_spec,), batch_size=DOCUMENTS_PER_BATCH, batch_format="numpy",
            concurrency=actors, num_gpus=1 if gpus else 0, num_cpus=1 if not gpus else 1,
            max_restarts=-1, max_task_retries=-1,
        )
        log.info("ray: %d files on %d CPUs, %d GPUs, %d embedding actors (%.1f s to start)",
                 len(tasks), cpus, gpus, actors, time.perf_counter() - started)
        for row in dataset.iter_rows():
            prepared: PreparedDocument = pickle.loads(row["prepared"])
            if prepared.own and prepared.failure is None and prepared.fields.ocr_pages:
                progress.pages_ocred(len(prepared.fields.ocr_pages))
            embedded = int(row["embedded"])
            if embedded:
                progress.chunks_embedded(embedded)
            yield prepared


def _task_cpus(cpus: int, gpus: int, actors: int) -> float:
    """CPUs a parse task asks for: whatever the CPU embedding actors leave, shared fairly (a task never waits for
    an actor to give its CPU back, which would stall the stream)."""
    if gpus:
        return 1
    return 0.5 if cpus - actors < 1 else 1


def _connect(address: str | None) -> Any:
    """Ray, connected to `address` (or a local Ray started for the run), with docqa importable on the workers."""
    try:
        import ray
    except ImportError as exc:
        raise InvalidInput("the ray engine needs the ray extra: pip install 'docqa[ray]'") from exc
    if not ray.is_initialized():
        env = {k: os.environ[k] for k in ("HF_HUB_OFFLINE", "TOKENIZERS_PARALLELISM", "PYTHONPATH") if k in os.environ}
        try:
            ray.init(address=address, runtime_env={"env_vars": env} if env else None, log_to_driver=False,
                     logging_level=logging.WARNING, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise InvalidInput(f"cannot connect to Ray at {address or 'a new local cluster'}: {exc}") from exc
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the CLI draws its own
        context.print_on_execution_start = False
    return ray


class _Prepare:
    """A Ray Data row function: a task in, its prepared (not yet embedded) document out, pickled. Anything that
    goes wrong is the file's failure, never the dataset's."""

    def __init__(self, spec: PrepareSpec) -> None:
        self.spec = spec

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        task: PrepareTask = pickle.loads(row["task"])
        try:
            prepared = prepare_unembedded(task, self.spec, embedder_for(self.spec))
        except DocQAError as exc:
            prepared = _failed(task, exc.detail)
        except Exception as exc:  # noqa: BLE001 - a bug on a worker is that file's failure
            prepared = _failed(task, f"{type(exc).__name__}: {exc}")
        return {"prepared": pickle.dumps(prepared)}


class _Embed:
    """A Ray Data actor: loads the collection's model once, embeds batches of prepared documents."""

    def __init__(self, spec: PrepareSpec) -> None:
        self.spec = spec
        self.embedder = embedder_for(spec)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        documents = [pickle.loads(p) for p in batch["prepared"]]
        try:
            embed_prepared(documents, self.embedder)
            counts = [sum(len(d.chunks) for d in doc.documents() if d.vectors is not None) for doc in documents]
        except Exception:  # noqa: BLE001 - one at a time, so an input the model cannot take fails its file alone
            counts = [self._alone(document) for document in documents]
        return {"prepared": [pickle.dumps(d) for d in documents], "embedded": counts}

    def _alone(self, document: PreparedDocument) -> int:
        try:
            return embed_prepared([document], self.embedder)
        except Exception as exc:  # noqa: BLE001
            document.failure = f"embedding failed: {type(exc).__name__}: {exc}"
            return 0


def _failed(task: PrepareTask, reason: str) -> PreparedDocument:
    from indexes.types import DocumentFields

    fields = task.fields or DocumentFields(task.file.source, "", 0, metadata=task.file.metadata)
    return PreparedDocument(task.file, fields, failure=reason, own=task.own)
