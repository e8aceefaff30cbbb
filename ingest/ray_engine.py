"""The `ray` ingest engine: documents prepared on a Ray cluster, committed by the driver as they stream back.

It mirrors the local engine, spread over a cluster: files are read and parsed by Ray tasks (one CPU each, anywhere
in the cluster; each task's worker keeps warm parser processes, killed past the time limit as locally), and
chunked and embedded by a pool of embedding actors that load the collection's model once: one per GPU
(`num_gpus=1`, fp16) when the cluster has GPUs, otherwise CPU actors that run torch on the cores Ray gives them
(`plan_actors`). Each actor rebuilds the embedder from the collection's recorded identity alone and refuses
another model (prepare.embedder_for); chunking beside the model keeps the parse tasks from loading it just for
its tokenizer, and runs the very code the local engine runs, so the documents, chunks and vectors are the same.

The driver keeps a bounded window in flight (parse tasks, parsed documents waiting for an actor, two batches per
actor), so memory stays flat for any corpus; the prepared documents come back to it and it commits each in its own
transaction: the only writer. A file that fails is data (its reason travels with it). A parse task whose worker
dies is retried by Ray (`max_retries`), an actor that dies is restarted with its calls retried (`max_restarts`,
`max_task_retries`); a file on which workers keep dying fails alone, as transient, once the retries are spent (a
batch that exhausts them is split and tried a file at a time). A driver that dies loses nothing committed, its
job's tasks and actors die with it, and the same command again prepares only what is missing.

`--ray-address` is what `ray.init` takes (`auto`, `host:6379`, or `ray://host:10001` with Ray's client extra); an
address where nothing answers is a one-line error within seconds. Without one a local Ray of the run's own is
started and shut down after it. Ray is kept off the terminal, so that the CLI's progress bars are what the user
sees: its Python loggers at ERROR, the workers' output not forwarded, and what the cluster publishes about the job
(a worker that died, to be retried) logged to `docqa.ingest.ray` at INFO. Workers need docqa with the
`ray` extra, the same Ray and Python, the model, and the sources: local paths must be the same on every node (a
shared filesystem), URLs are read where the task runs.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Sequence

from indexes.embedders import Embedder
from indexes.errors import DocQAError, InvalidInput
from indexes.types import DocumentFields
from ingest.pipeline import Engine, EngineOptions, ProgressSink
from ingest.prepare import (
    PreparedDocument, PrepareSpec, PrepareTask, embed_prepared, embedder_for, parse_source, prepare_unembedded,
    read_task,
)

log = logging.getLogger("docqa.ingest.ray")

RETRIES = 3  # attempts after the first, for a parse task whose worker dies and for an actor's call
IN_FLIGHT_PER_ACTOR = 2  # batches queued at each actor: one embedding, the next waiting, so it never idles
CALLS_OF = 2  # forward-pass batches per actor call: full batches, commits that start early, little to redo
CHARS_PER_TOKEN = 4  # to guess a parsed document's chunks from its length, for sizing batches before chunking
CONNECT_TIMEOUT = 5.0  # seconds to wait for a TCP answer at --ray-address


def ray_engine(options: EngineOptions) -> Engine:
    """The `ray` engine (needs the `ray` extra)."""
    return RayEngine(options)


# -- planning: from the cluster's resources to the embedding actors -----------------------------------------

@dataclass(frozen=True)
class ActorPlan:
    """How documents are embedded on a cluster: how many actors, what each holds, and how parse tasks fit."""

    actors: int
    num_cpus: float  # logical CPUs each embedding actor holds
    num_gpus: float  # 1 on a GPU, else 0
    device: str
    precision: str | None  # None: the collection's recorded one
    threads: int | None  # torch threads in each CPU actor (Ray pins OMP_NUM_THREADS to num_cpus); None: as Ray set
    parse_cpus: float  # logical CPUs a parse task holds
    batch_size: int  # the model's forward-pass batch


def plan_actors(cpus: float, gpus: float, identity: dict[str, Any], workers: int | None = None,
                batch_size: int = 64) -> ActorPlan:
    """The embedding actors for a cluster with `cpus` CPUs and `gpus` GPUs in all, for a collection whose embedder
    recorded `identity`; `workers` asks for a number of actors (--workers).

    With GPUs (and a backend that runs on them, sentence-transformers), one actor per GPU (never more; `workers`
    may ask for fewer) with `num_gpus=1`, in fp16 where the collection is fp32 (its vectors stay interchangeable;
    a bf16 collection stays bf16), with four times the batch. Without, one actor per two CPUs by default, each
    running torch on its share of the CPUs: an actor holds one logical CPU, so that parse tasks always have
    CPUs, but Ray would give it one thread, which halves a two-core machine's embedding. Actors are capped so
    that one CPU is always left for a parse task; on a cluster of one CPU the actor holds none."""
    cpus = max(0.0, float(cpus))
    whole = max(1, int(cpus))
    if workers is not None and workers < 1:
        raise InvalidInput(f"--workers must be at least 1 for the ray engine, got {workers}")
    if gpus >= 1 and identity.get("backend") == "sentence-transformers":
        count = min(workers or int(gpus), int(gpus))
        precision = "fp16" if identity.get("precision", "fp32") == "fp32" else None
        num_cpus = 1.0 if cpus - count >= 1 else 0.0
        return ActorPlan(count, num_cpus, 1.0, "cuda", precision, None, 1.0, batch_size * 4)
    count = workers or max(1, whole // 2)
    count = max(1, min(count, whole - 1)) if whole > 1 else 1
    num_cpus = 1.0 if cpus - count >= 1 else 0.0
    threads = max(1, whole // count)
    return ActorPlan(count, num_cpus, 0.0, "cpu", None, threads, 1.0, batch_size)


# -- the engine --------------------------------------------------------------------------------------------

@dataclass
class Timings:
    """Where a run's time went before documents flowed, for the benchmark."""

    connect: float = 0.0  # ray.init: connecting, or starting a local Ray
    actors: float = 0.0  # until every embedding actor had loaded the model


@dataclass
class _Pending:
    """One task on its way: its parsed result once a parse task gave it, and a guess of its chunks."""

    task: PrepareTask
    parsed: Any = None  # the parse task's result ref
    chunks: int = 0


@dataclass
class _Actor:
    handle: Any
    ready: bool = False
    in_flight: int = 0


@dataclass
class _Call:
    actor: _Actor
    batch: list[_Pending]


@dataclass
class _Run:
    """What the driver has in flight."""

    todo: deque[_Pending]
    parsing: dict[Any, _Pending] = field(default_factory=dict)  # parse task's estimate ref -> pending
    parsed: list[_Pending] = field(default_factory=list)  # waiting for an actor
    calls: dict[Any, _Call] = field(default_factory=dict)  # embedding call ref -> its batch
    starting: dict[Any, _Actor] = field(default_factory=dict)  # actor ready ref -> actor


class RayEngine:
    """Prepares on a Ray cluster with Ray tasks and actors; see the module's docstring."""

    def __init__(self, options: EngineOptions | None = None) -> None:
        self.options = options or EngineOptions()
        self.timings = Timings()
        self.plan: ActorPlan | None = None

    def prepare(
        self, tasks: Sequence[PrepareTask], spec: PrepareSpec, embedder: Embedder, progress: ProgressSink,
    ) -> Iterator[PreparedDocument]:
        """Each task prepared on the cluster, yielded as it comes back (not in task order)."""
        if not tasks:
            return
        started = time.perf_counter()
        ray, owned = connect(self.options.address)
        self.timings = Timings(connect=time.perf_counter() - started)
        actors: list[_Actor] = []
        try:
            resources = ray.cluster_resources()
            plan = self.plan = plan_actors(resources.get("CPU", 0), resources.get("GPU", 0), spec.embedder,
                                           self.options.workers, spec.batch_size)
            actor_spec = replace(spec, device=plan.device, precision=plan.precision or spec.precision,
                                 batch_size=plan.batch_size)
            log.info("ray: %d files on %g CPUs, %g GPUs: %d embedding actors (%s)", len(tasks),
                     resources.get("CPU", 0), resources.get("GPU", 0), plan.actors, plan.device)
            actor_class = ray.remote(_EmbedActor).options(
                num_cpus=plan.num_cpus, num_gpus=plan.num_gpus, max_restarts=-1, max_task_retries=RETRIES,
            )
            actors = [_Actor(actor_class.remote(actor_spec, plan.threads)) for _ in range(plan.actors)]
            parse = ray.remote(_parse).options(num_cpus=plan.parse_cpus, max_retries=RETRIES, num_returns=2)
            window = max(4, 2 * int(resources.get("CPU", 1)))
            yield from self._drive(ray, tasks, ray.put(spec), parse, actors, window, progress)
        finally:
            for actor in actors:
                try:
                    ray.kill(actor.handle, no_restart=True)
                except Exception:  # noqa: BLE001 - a cluster that went away took its actors along
                    pass
            if owned:
                ray.shutdown()

    def _drive(
        self, ray: Any, tasks: Sequence[PrepareTask], spec_ref: Any, parse: Any, actors: list[_Actor], parse_window: int,
        progress: ProgressSink,
    ) -> Iterator[PreparedDocument]:
        """The driver's loop: keep up to `parse_window` parse tasks running, parsed documents waiting up to two
        batches per actor, two batches queued at each actor; yield what comes back."""
        started = time.perf_counter()
        run = _Run(deque(_Pending(t) for t in tasks))
        run.starting = {a.handle.ready.remote(): a for a in actors}
        batch_chunks = CALLS_OF * self.plan.batch_size
        while run.todo or run.parsing or run.parsed or run.calls:
            waiting = sum(p.chunks for p in run.parsed)
            while run.todo and len(run.parsing) < parse_window and waiting < 2 * batch_chunks * len(actors):
                pending = run.todo.popleft()
                estimate, pending.parsed = parse.remote(pending.task, spec_ref)
                run.parsing[estimate] = pending
            self._dispatch(run, actors, batch_chunks)
            refs = list(run.parsing) + list(run.calls) + list(run.starting)
            done, _ = ray.wait(refs, num_returns=1)
            for ref in done:
                if ref in run.starting:
                    actor = run.starting.pop(ref)
                    _raise_if_failed(ray, ref)
                    actor.ready = True
                    if not run.starting:
                        self.timings.actors = time.perf_counter() - started
                elif ref in run.parsing:
                    pending = run.parsing.pop(ref)
                    pending.chunks = _estimate(ray, ref)
                    run.parsed.append(pending)
                    progress.stage("parsed", 1)
                else:
                    yield from self._returned(ray, ref, run, progress)

    def _dispatch(self, run: _Run, actors: list[_Actor], batch_chunks: int) -> None:
        """Hand parsed documents to actors with room: a full batch, or whatever is there to an idle actor or
        when no more is coming."""
        for actor in sorted((a for a in actors if a.ready), key=lambda a: a.in_flight):
            if not run.parsed or actor.in_flight >= IN_FLIGHT_PER_ACTOR:
                continue
            waiting = sum(p.chunks for p in run.parsed)
            last = not run.todo and not run.parsing
            if actor.in_flight and waiting < batch_chunks and not last:
                continue
            batch, size = [], 0
            while run.parsed and (not batch or size + run.parsed[0].chunks <= batch_chunks):
                pending = run.parsed.pop(0)
                batch.append(pending)
                size += pending.chunks
            self._call(run, actor, batch)

    def _call(self, run: _Run, actor: _Actor, batch: list[_Pending]) -> None:
        ref = actor.handle.embed.remote([p.task for p in batch], *[p.parsed for p in batch])
        actor.in_flight += 1
        run.calls[ref] = _Call(actor, batch)

    def _returned(self, ray: Any, ref: Any, run: _Run, progress: ProgressSink) -> Iterator[PreparedDocument]:
        """An embedding call's documents; one whose retries were spent is split into files tried alone, and a
        file alone that exhausts them fails (a Ray error is never the run's)."""
        from ray.exceptions import RayError

        call = run.calls.pop(ref)
        call.actor.in_flight -= 1
        try:
            documents: list[PreparedDocument] = ray.get(ref)
        except RayError as exc:
            if len(call.batch) > 1:
                log.warning("ray: an embedding call failed (%s); its %d files are retried one by one",
                            _ray_reason(exc), len(call.batch))
                for pending in call.batch:
                    self._call(run, call.actor, [pending])
                return
            reason = f"its Ray worker failed {RETRIES + 1} times: {_ray_reason(exc)}"
            documents = [_failed(call.batch[0].task, reason, transient=True)]
        for document in documents:
            if document.own and document.failure is None and document.fields.ocr_pages:
                progress.pages_ocred(len(document.fields.ocr_pages))
            embedded = sum(len(d.chunks) for d in document.documents() if d.vectors is not None)
            if embedded:
                progress.chunks_embedded(embedded)
            progress.stage("embedded", 1)
            yield document


def _estimate(ray: Any, ref: Any) -> int:
    """A parsed document's guessed chunks (its length over the chunk size), or 1 for a parse task whose worker
    died past its retries (the actor's call gets the error and the file fails)."""
    from ray.exceptions import RayError

    try:
        return max(1, int(ray.get(ref)))
    except RayError:
        return 1


def _raise_if_failed(ray: Any, ready: Any) -> None:
    """An actor that could not start (its model would not load, or is not the collection's) stops the run with
    its reason, as the error it was (an EmbedderMismatch stays one): every file would fail the same way."""
    from ray.exceptions import RayError

    try:
        failure = ray.get(ready)
    except RayError as exc:  # its process died past every restart
        raise InvalidInput(f"ray: an embedding actor could not start: {_ray_reason(exc)}") from None
    if isinstance(failure, DocQAError):
        raise type(failure)(f"ray: an embedding actor could not start: {failure.detail}")
    if failure is not None:
        raise InvalidInput(f"ray: an embedding actor could not start: {failure}")


def _ray_reason(exc: BaseException) -> str:
    """A Ray error's first line, without Ray's traceback."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and not isinstance(cause, type(exc)):
        return f"{type(cause).__name__}: {cause}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


# -- connecting ---------------------------------------------------------------------------------------------

def connect(address: str | None) -> tuple[Any, bool]:
    """Ray, connected to `address` (or to a local Ray started for the run: `local`, never another one found on
    the machine, nor RAY_ADDRESS's), and whether this call connected (the caller must then shut it down: a local
    Ray stops, a cluster is left). Where Ray is connected already (a benchmark, a long-lived process), that
    connection is used and left as it is. An address where nothing answers, a version mismatch, any refusal: one
    InvalidInput line."""
    try:
        import ray
    except ImportError as exc:
        raise InvalidInput("the ray engine needs the ray extra: pip install 'docqa[ray]'") from exc
    if ray.is_initialized():
        return ray, False
    target = address or "a new local Ray"
    if address and address != "auto":
        _probe(address)
    _route_ray_messages()
    env = {k: os.environ[k] for k in ("HF_HUB_OFFLINE", "TOKENIZERS_PARALLELISM") if k in os.environ}
    options: dict[str, Any] = {"include_dashboard": False} if address is None else {}
    try:
        # Ray's loggers at ERROR: its handlers would print its INFO and WARNING lines over the progress bars.
        ray.init(address=address or "local", runtime_env={"env_vars": env} if env else None, log_to_driver=False,
                 logging_level=logging.ERROR, configure_logging=True, **options)
    except Exception as exc:  # noqa: BLE001 - whatever Ray raises, the user gets one line
        raise InvalidInput(f"cannot connect to Ray at {target}: {_first_line(exc)}") from None
    return ray, True


def _probe(address: str) -> None:
    """A TCP answer at `address` within CONNECT_TIMEOUT, or InvalidInput: ray.init would wait minutes."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise InvalidInput(f"--ray-address takes auto, host:port or ray://host:port, got {address!r}")
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise InvalidInput(f"cannot connect to Ray at {address}: {reason}") from None


def _route_ray_messages() -> None:
    """Ray's driver prints what its cluster publishes about the job (a worker that died, a task that will be
    retried) on stdout, which carries --json, even without log_to_driver; those lines go to the docqa.ingest.ray
    log instead, at INFO: Ray retries what they are about, and a file that fails anyway carries its reason. (The
    driver's error listener looks the printer up in its module each time; Ray has no switch for it.)"""
    import ray._private.worker as ray_worker

    if getattr(ray_worker, "print_to_stdstream", None) is not _log_ray_output:
        ray_worker.print_to_stdstream = _log_ray_output


def _log_ray_output(data: dict[str, Any], ignore_prefix: bool = False) -> None:
    for line in data.get("lines", ()):
        log.info("ray (%s): %s", data.get("pid"), line)


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


# -- on the workers -----------------------------------------------------------------------------------------

def _parse(task: PrepareTask, spec: PrepareSpec) -> tuple[int, Any]:
    """A Ray task: the file read (a URL's bytes, where the task runs) and parsed in a parser process, and a guess
    of its chunks, for sizing batches. Gives (estimate, (task, parsed)), or (1, a failed document) when it
    cannot be read."""
    read = read_task(task, spec)
    if isinstance(read, PreparedDocument):
        return 1, read
    task, data = read
    target: str | bytes = data if data is not None else str(task.file.path)
    parsed = parse_source(target, task.file.name, spec)
    text = getattr(parsed, "text", "") or ""
    return math.ceil(len(text) / (spec.chunking.max_tokens * CHARS_PER_TOKEN)), (task, parsed)


class _EmbedActor:
    """A Ray actor: loads the collection's model once, then chunks and embeds batches of parsed documents."""

    def __init__(self, spec: PrepareSpec, threads: int | None) -> None:
        self.spec = spec
        self.failure: DocQAError | str | None = None
        if threads:
            import torch

            torch.set_num_threads(min(threads, os.cpu_count() or threads))
        try:  # a model that will not load is the run's error, told by ready(): raised here, Ray would restart it
            self.embedder = embedder_for(spec)
            # Load the model now (and check it), and pay torch's first passes (kernel set-up for new shapes)
            # here rather than in the first batch: the actor is ready once it embeds at speed.
            self.embedder.embed_documents(["warm up"] * 8 + [" ".join(["warm up"] * 100)] * 8)
        except DocQAError as exc:
            self.failure = exc
        except Exception as exc:  # noqa: BLE001
            self.failure = f"{type(exc).__name__}: {exc}"

    def ready(self) -> DocQAError | str | None:
        """None once the model is loaded; else why it could not be."""
        return self.failure

    def embed(self, tasks: list[PrepareTask], *parsed: Any) -> list[PreparedDocument]:
        """Each parsed document chunked (as the local engine does) and all embedded in one batch; anything that
        goes wrong is that file's failure."""
        documents = [self._chunked(task, result) for task, result in zip(tasks, parsed)]
        try:
            embed_prepared(documents, self.embedder)
        except Exception:  # noqa: BLE001 - one at a time, so an input the model cannot take fails its file alone
            for document in documents:
                self._alone(document)
        return documents

    def _chunked(self, task: PrepareTask, result: Any) -> PreparedDocument:
        if isinstance(result, PreparedDocument):  # could not be read
            return result
        task, parsed = result
        try:
            return prepare_unembedded(task, self.spec, self.embedder, parsed=parsed)
        except DocQAError as exc:
            return _failed(task, exc.detail)
        except Exception as exc:  # noqa: BLE001 - a bug on a worker is that file's failure
            return _failed(task, f"{type(exc).__name__}: {exc}", transient=True)

    def _alone(self, document: PreparedDocument) -> None:
        try:
            embed_prepared([document], self.embedder)
        except Exception as exc:  # noqa: BLE001
            for d in document.to_embed():
                d.failure = f"embedding failed: {type(exc).__name__}: {exc}"


def _failed(task: PrepareTask, reason: str, transient: bool = False) -> PreparedDocument:
    fields = task.fields or DocumentFields(task.file.source, "", 0, metadata=task.file.metadata)
    return PreparedDocument(task.file, fields, failure=reason, transient=transient, own=task.own)
