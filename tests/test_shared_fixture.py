"""The `shared` fixture (conftest.py): a missing ../shared skips a test locally but fails it on CI."""

from __future__ import annotations

import pytest

MISSING = ("no-such-data-set", "data.json")


def outcome(shared) -> BaseException:
    """What asking for a missing path raises, caught whatever it is (a skip must not pass for a failure here)."""
    with pytest.raises(BaseException) as raised:
        shared(*MISSING)
    return raised.value


def test_a_missing_shared_path_skips_outside_ci(shared, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    skipped = outcome(shared)
    assert type(skipped) is pytest.skip.Exception
    assert "no-such-data-set/data.json is missing" in str(skipped)


@pytest.mark.parametrize("value", ["true", "TRUE", "1"])
def test_a_missing_shared_path_fails_on_ci(shared, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    failed = outcome(shared)
    assert type(failed) is pytest.fail.Exception
    assert "no-such-data-set/data.json is missing" in str(failed) and "CI=true" in str(failed)


def test_a_present_shared_path_is_returned(shared) -> None:
    pdfs = shared("pdfs")  # skipped here (failed on CI) when ../shared is not beside the checkout
    assert pdfs.is_dir() and pdfs.parent.name == "shared"
