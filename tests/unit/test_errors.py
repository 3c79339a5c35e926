"""The stable error codes: registered once, documented in the README, families mapped to exits."""

from __future__ import annotations

from pathlib import Path

import pytest

from amiup.errors import CODES, EXIT_OPERATIONAL, EXIT_REJECTED, EXIT_USAGE, Rejected, UsageError, error

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_code_is_documented_in_the_readme() -> None:
    text = README.read_text()
    missing = [c for c in CODES if f"`{c}`" not in text]
    assert not missing, f"README lacks error codes: {missing}"


def test_architecture_codes_are_all_registered() -> None:
    contract = ("malformed-package bad-signature unknown-key revoked-key digest-mismatch size-mismatch "
                "wrong-vendor wrong-model wrong-hw-rev wrong-component dependency-unmet rollback-refused "
                "order-expired order-not-yet-valid order-replayed order-wrong-target not-authorized "
                "decrypt-failed delta-base-mismatch").split()
    assert set(contract) <= set(CODES)


def test_families_and_messages() -> None:
    e = error("bad-signature", "by key ab12")
    assert isinstance(e, Rejected) and e.exit_code == EXIT_REJECTED
    assert e.message == "bad-signature: a signature does not verify against the expected key (by key ab12)"
    assert isinstance(error("not-found"), UsageError) and error("not-found").exit_code == EXIT_USAGE
    assert error("io-error").exit_code == EXIT_OPERATIONAL
    with pytest.raises(RuntimeError):
        error("no-such-code")
