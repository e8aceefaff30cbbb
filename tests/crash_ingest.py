"""Run the real `docqa` CLI with one kill point armed: SIGKILL this process the N-th time it is reached.

    python tests/crash_ingest.py KILL_POINT N [PACE] -- CLI ARGS...

Kill points:
    after-commit     right after the N-th document's catalog commit, before the vector file is saved
    in-transaction   inside the N-th document's catalog transaction, every row written, before COMMIT
    before-replace   in the N-th VectorIndex.save, after the temp file is written and synced, before os.replace
    none             nothing armed: print "@@committed SOURCE" after each commit and sleep PACE seconds,
                     so the test can kill the process from outside while commits are under way

A kill point that is never reached lets the command finish: the test sees a normal exit code and fails.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import indexes.vectors as vectors_module
from indexes.catalog import Catalog
from indexes.embedded import EmbeddedStore
from service.cli import app


def die() -> None:
    """SIGKILL: no cleanup, no finally blocks, no atexit, exactly like a power cut for this process."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class Countdown:
    """True on the N-th call, never before or after."""

    def __init__(self, n: int) -> None:
        self.left = n

    def reached(self) -> bool:
        self.left -= 1
        return self.left == 0


def arm_after_commit(countdown: Countdown) -> None:
    original = EmbeddedStore.put_document

    def put_document(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if countdown.reached():
            die()
        return result

    EmbeddedStore.put_document = put_document


def arm_in_transaction(countdown: Countdown) -> None:
    original_put, original_transaction = Catalog.put_document, Catalog.transaction
    putting = [False]

    def put_document(self, *args, **kwargs):
        putting[0] = True
        try:
            return original_put(self, *args, **kwargs)
        finally:
            putting[0] = False

    @contextmanager
    def transaction(self):
        with original_transaction(self) as db:
            yield db
            if putting[0] and countdown.reached():
                if not db.in_transaction:
                    sys.exit("crash_ingest: expected to be inside the transaction")
                die()

    Catalog.put_document = put_document
    Catalog.transaction = transaction


class _OsDyingBeforeReplace:
    """The `os` module as vectors.py sees it, except that `replace` may kill the process first."""

    def __init__(self, countdown: Countdown) -> None:
        self.countdown = countdown

    def __getattr__(self, name: str):
        return getattr(os, name)

    def replace(self, src, dst) -> None:
        if self.countdown.reached():
            if Path(src).stat().st_size == 0:
                sys.exit("crash_ingest: the temp file should be complete before os.replace")
            die()
        os.replace(src, dst)


def arm_before_replace(countdown: Countdown) -> None:
    vectors_module.os = _OsDyingBeforeReplace(countdown)


def announce_commits(pace: float) -> None:
    original = EmbeddedStore.put_document

    def put_document(self, collection, fields, *args, **kwargs):
        result = original(self, collection, fields, *args, **kwargs)
        print(f"@@committed {fields.source}", flush=True)
        time.sleep(pace)
        return result

    EmbeddedStore.put_document = put_document


KILL_POINTS = {
    "after-commit": arm_after_commit,
    "in-transaction": arm_in_transaction,
    "before-replace": arm_before_replace,
}


def main(argv: list[str]) -> None:
    """Arm the kill point named in argv, then run the CLI with the arguments after `--`."""
    split = argv.index("--")
    options, cli_args = argv[:split], argv[split + 1 :]
    point, n = options[0], int(options[1])
    if point == "none":
        announce_commits(float(options[2]) if len(options) > 2 else 0.0)
    else:
        KILL_POINTS[point](Countdown(n))
    app(cli_args, prog_name="docqa")


if __name__ == "__main__":
    main(sys.argv[1:])
