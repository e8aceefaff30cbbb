"""The README's picture of the code holds: `ingest → indexes ← service`.

`indexes/` imports neither package, `ingest/` never imports `service/`, and `service/` uses `ingest/` only through
its public entry points: the pipeline (uploads, jobs and the eval harness ingest as the CLI does) and the batch
CLI that the `docqa` command extends. Imports are read from the source (every `import` statement, including
those inside functions), not from what happens to be loaded.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("indexes", "ingest", "service")
SERVICE_MAY_USE = {"ingest.pipeline", "ingest.cli", "ingest.sample"}  # sample: `auto` on an upload


def imports_of(path: Path) -> set[str]:
    """The absolute module names a source file imports, wherever the statement sits."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def project_imports(package: str) -> dict[str, set[str]]:
    """For each module of a package: the modules of the other two packages it imports."""
    others = tuple(p for p in PACKAGES if p != package)
    out: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        names = {n for n in imports_of(path) if n.split(".")[0] in others}
        if names:
            out[module] = names
    return out


def test_imports_of_reads_statements_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import os\n\ndef f():\n    from service.cli import app\n    import ingest.chunking\n")
    assert {"service.cli", "service.cli.app", "ingest.chunking"} <= imports_of(source)


def test_indexes_imports_neither_ingest_nor_service() -> None:
    assert project_imports("indexes") == {}


def test_ingest_never_imports_service() -> None:
    assert {m: n for m, n in project_imports("ingest").items() if any(x.startswith("service") for x in n)} == {}


def test_service_uses_ingest_only_through_the_pipeline_and_the_cli() -> None:
    used = {
        module: {".".join(n.split(".")[:2]) for n in names if n.split(".")[0] == "ingest"}
        for module, names in project_imports("service").items()
    }
    assert {m: sorted(u - SERVICE_MAY_USE) for m, u in used.items() if u - SERVICE_MAY_USE} == {}
    assert any(used.values()), "service/ imports ingest/ somewhere (uploads, jobs, the CLI): the walk found none"
