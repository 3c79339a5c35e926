"""Stable error codes: the one place every amiup failure is named and explained.

Codes are part of the public contract (CLI output, API problem types, wire `reject` and
`alarm` messages, audit rows), so they never change meaning once released. Errors come in
families by whose fault they are, as python-tuf does:

* ``Rejected``: untrusted input failed a check (a package, an order, a block, a message).
  These are what a meter raises a security alarm for. CLI exit code 1.
* ``UsageError``: the caller asked for something malformed or impossible. CLI exit code 2.
* ``OperationalError``: the environment failed us (file missing, store busy, peer gone).
  CLI exit code 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal["rejected", "usage", "operational"]

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_OPERATIONAL = 3


@dataclass(frozen=True, slots=True)
class Code:
    """One stable error code: its family and the sentence a user reads."""

    name: str
    family: Family
    explanation: str


_TABLE: tuple[tuple[str, Family, str], ...] = (
    # -- untrusted input: package and manifest
    ("malformed-package", "rejected", "the file is not a well-formed amiup package"),
    ("too-large", "rejected", "a length exceeds its limit (possible endless-data attack)"),
    ("bad-signature", "rejected", "a signature does not verify against the expected key"),
    ("unknown-key", "rejected", "signed by a key that is not a trust anchor for this role"),
    ("revoked-key", "rejected", "signed by a key that the root has revoked"),
    ("threshold-not-met", "rejected", "fewer valid signatures than the threshold requires"),
    ("digest-mismatch", "rejected", "the SHA-256 digest does not match the manifest"),
    ("size-mismatch", "rejected", "the size does not match the manifest"),
    ("wrong-vendor", "rejected", "the package is for another manufacturer"),
    ("wrong-model", "rejected", "the package is for another meter model"),
    ("wrong-hw-rev", "rejected", "the package does not support this hardware revision"),
    ("wrong-component", "rejected", "the package is for another component"),
    ("dependency-unmet", "rejected", "another component's version does not meet a dependency"),
    ("rollback-refused", "rejected", "security sequence lower than installed (anti-rollback)"),
    ("legal-fields-missing", "rejected", "a metrology package lacks its legal identity"),
    ("decrypt-failed", "rejected", "the payload could not be decrypted with the given key"),
    ("delta-base-mismatch", "rejected", "the delta was made from another base image"),
    ("delta-failed", "rejected", "the delta patch is corrupt and cannot be applied"),
    # -- untrusted input: upgrade orders and commands
    ("order-expired", "rejected", "the upgrade order's validity window has ended"),
    ("order-not-yet-valid", "rejected", "the upgrade order's validity window has not begun"),
    ("order-replayed", "rejected", "the upgrade order's counter was already used"),
    ("order-wrong-target", "rejected", "the upgrade order does not name this meter"),
    ("order-mismatch", "rejected", "the upgrade order names another package digest"),
    ("not-authorized", "rejected", "the command is not authorized by a trusted signer"),
    ("auth-failed", "rejected", "authentication failed"),
    ("locked-out", "rejected", "too many failed attempts; the port is locked for a while"),
    ("malformed-message", "rejected", "a protocol message is not well formed"),
    ("report-replayed", "rejected", "the status report does not carry the expected nonce"),
    ("audit-broken", "rejected", "the audit trail's hash chain is broken (row edited, deleted or reordered)"),
    # -- device outcomes reported upward
    ("transfer-incomplete", "rejected", "blocks are missing; the image is not complete"),
    ("self-test-failed", "rejected", "the new image failed its self-test; reverted"),
    ("boot-failed", "rejected", "the new image did not start; reverted"),
    ("no-contact", "rejected", "the new image did not re-contact the head-end; reverted"),
    ("invalid-state", "rejected", "the request does not fit the current state"),
    ("busy", "rejected", "another upgrade of this component is in progress"),
    ("version-mismatch", "rejected", "the meter runs another version than the one delivered"),
    # -- caller misuse
    ("invalid-argument", "usage", "an argument is missing or has a wrong value"),
    ("not-found", "usage", "no such object"),
    ("conflict", "usage", "the object exists already or is in use"),
    ("forbidden", "usage", "your role does not allow this action"),
    ("unauthenticated", "usage", "missing or invalid credentials"),
    # -- environment
    ("io-error", "operational", "a file or device could not be read or written"),
    ("timeout", "operational", "the peer did not answer in time"),
    ("unreachable", "operational", "the peer could not be reached"),
    ("store-error", "operational", "the database failed"),
)

CODES: dict[str, Code] = {name: Code(name, fam, text) for name, fam, text in _TABLE}


class AmiupError(Exception):
    """Base of every amiup error; carries a stable ``code`` and a specific ``detail``."""

    family: Family = "operational"
    exit_code: int = EXIT_OPERATIONAL

    def __init__(self, code: str, detail: str = "") -> None:
        if code not in CODES:
            raise RuntimeError(f"unregistered error code {code!r}")
        self.code = code
        self.detail = detail
        super().__init__(self.message)

    @property
    def explanation(self) -> str:
        return CODES[self.code].explanation

    @property
    def message(self) -> str:
        """One line for a user: ``CODE: explanation (detail)``."""
        text = f"{self.code}: {self.explanation}"
        return f"{text} ({self.detail})" if self.detail else text


class Rejected(AmiupError):
    """Untrusted input failed a check; the input is refused and nothing changed."""

    family: Family = "rejected"
    exit_code = EXIT_REJECTED


class UsageError(AmiupError):
    """The caller asked for something malformed or impossible."""

    family: Family = "usage"
    exit_code = EXIT_USAGE


class OperationalError(AmiupError):
    """The environment failed (I/O, store, network)."""

    family: Family = "operational"
    exit_code = EXIT_OPERATIONAL


_BY_FAMILY: dict[Family, type[AmiupError]] = {
    "rejected": Rejected,
    "usage": UsageError,
    "operational": OperationalError,
}


def error(code: str, detail: str = "") -> AmiupError:
    """Build the error of the right family for ``code`` (``raise error("bad-signature")``)."""
    if code not in CODES:
        raise RuntimeError(f"unregistered error code {code!r}")
    return _BY_FAMILY[CODES[code].family](code, detail)
