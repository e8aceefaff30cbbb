"""Crash consistency, automated: SIGKILL `docqa ingest` at random moments, restart, check the index each time.

    python benchmarks/crash.py [--kills 30] [--files 40] [--seed 1]

A corpus of generated notes plus the samples is ingested by the real CLI in a subprocess, which is
killed with SIGKILL after a random delay (0.3 .. 1.05 x the time a full run takes). After every kill the index
must pass `docqa check --json` (catalog ↔ FTS ↔ vectors agree exactly) and hold no document twice and
no document outside the corpus. Before every round three files change, so replacements get killed too. At the
end one uninterrupted run must leave every file present exactly once.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from indexes.embedded import CATALOG_FILE  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ENTRY = "from service.cli import main; main()"
WORDS = "harbour glacier orchard lighthouse quarry meadow volcano canal prairie reef tundra delta".split()


def env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def write_corpus(root: Path, files: int, rng: random.Random) -> list[Path]:
    """`files` small Markdown/text notes plus the samples; returns every file, resolved."""
    (root / "gen").mkdir(parents=True)
    for i in range(files):
        topic = WORDS[i % len(WORDS)]
        body = "\n\n".join(f"Note {i}, paragraph {p}: the {topic} team logged {rng.randint(1, 999)} markers in ledger {topic}-{i}-{p}."
                           for p in range(rng.randint(2, 6)))
        suffix = ".md" if i % 2 else ".txt"
        (root / "gen" / f"{i:03d}-{topic}{suffix}").write_text((f"# Note {i}\n\n" if suffix == ".md" else "") + body)
    shutil.copytree(ROOT / "samples", root / "samples", ignore=shutil.ignore_patterns("*.py"))
    return sorted(p.resolve() for p in root.rglob("*") if p.is_file())


def docqa(data: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", ENTRY, "--data-dir", str(data), *args],
                          capture_output=True, text=True, env=env(), cwd=ROOT, timeout=timeout)


def ingest_args(corpus: Path) -> list[str]:
    return ["ingest", str(corpus), "--workers", "0", "--json"]


def check(data: Path, files: list[Path], complete: bool) -> list[str]:
    """Problems found in the index (empty when consistent)."""
    result = docqa(data, "check", "--json")
    problems = [] if result.returncode == 0 and json.loads(result.stdout)["ok"] else [f"docqa check: {result.stdout[-500:]}"]
    if not (data / CATALOG_FILE).exists():  # killed before the catalog was created: an empty index
        return problems
    db = sqlite3.connect(f"file:{data / CATALOG_FILE}?mode=ro", uri=True)
    try:
        sources = [r[0] for r in db.execute("SELECT source FROM documents")]
        bad = db.execute("SELECT COUNT(*) FROM documents WHERE status != 'ok'").fetchone()[0]
    except sqlite3.OperationalError as exc:  # killed before the schema was created: an empty index
        if "no such table" not in str(exc):
            raise
        sources, bad = [], 0
    finally:
        db.close()
    if len(sources) != len(set(sources)):
        problems.append("a document is there twice")
    if not set(sources) <= {str(f) for f in files}:
        problems.append(f"unknown documents: {set(sources) - {str(f) for f in files}}")
    if bad:
        problems.append(f"{bad} documents not ok")
    if complete and sorted(sources) != [str(f) for f in files]:
        problems.append(f"missing after the final run: {sorted({str(f) for f in files} - set(sources))[:5]}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()
    rng = random.Random(options.seed)
    work = Path(tempfile.mkdtemp(prefix="docqa-crash-"))
    corpus, data = work / "corpus", work / "data"
    files = write_corpus(corpus, options.files, rng)

    started = time.perf_counter()
    first = docqa(data, *ingest_args(corpus))  # a full run, to learn how long one takes
    full_run = time.perf_counter() - started
    shutil.rmtree(data)
    print(f"corpus: {len(files)} files; one full ingest takes {full_run:.1f} s (model load included)")

    kills = checks_passed = 0
    failures: list[str] = []
    round_ = -1
    while kills < options.kills and round_ < 3 * options.kills:  # a run that finishes first is checked, not counted
        round_ += 1
        for victim in rng.sample([f for f in files if f.suffix in (".md", ".txt")], 3):  # always work to interrupt:
            victim.write_text(victim.read_text() + f"\n\nAmended in round {round_}.\n")  # replacements get killed too
        proc = subprocess.Popen([sys.executable, "-c", ENTRY, "--data-dir", str(data), *ingest_args(corpus)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(), cwd=ROOT)
        time.sleep(rng.uniform(0.3, 1.05) * full_run)  # most of a run is start-up; aim at the commits too
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        problems = check(data, files, complete=False)
        checks_passed += not problems
        failures += [f"round {round_}: {p}" for p in problems]
        print(f"round {round_ + 1:2d}: {'killed' if proc.returncode == -9 else f'finished ({proc.returncode})'}; "
              f"check {'ok' if not problems else 'FAILED: ' + '; '.join(problems)}", flush=True)

    final = docqa(data, *ingest_args(corpus))
    final_problems = check(data, files, complete=True)
    report = json.loads(final.stdout)["counts"] if final.stdout.strip().startswith("{") else final.stderr[-500:]
    print(f"final run: {report}; check {'ok' if not final_problems else 'FAILED: ' + '; '.join(final_problems)}")
    print(f"SIGKILLs: {kills} in {round_ + 1} rounds; consistency checks passed: {checks_passed + (not final_problems)}"
          f" of {round_ + 2}")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if not failures and not final_problems and first.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
