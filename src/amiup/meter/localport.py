"""The optical local port: field-tool authentication, then the same upgrade path (SEC-8, G-1).

A field tool holds a credential the utility signed (tool key, role, validity window, which
meters) and proves possession of the tool key by signing the meter's fresh challenge. Every
failed attempt is logged and raises an alarm; attempts are rate-limited and the port locks
after ``max_failures`` in a row. The failure counter and lockout live in NV storage, so
pulling the power does not reset them. After login, the tool drives the very same offer /
block / verify / activate code as the head-end (no maintenance-mode bypass, G-3); the
utility-signed credential stands in for the order, and local downgrades are never allowed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from amiup.errors import error
from amiup.meter.device import Accept, Meter
from amiup.meter.report import StatusReport
from amiup.trust import PrivateKey, PublicKey, cose, public_bytes, public_from_bytes, sign
from amiup.trust.canonical import dumps, loads
from amiup.trust.keys import verify_signature

CREDENTIAL_CTY = "application/amiup-fieldtool+cbor"
ROLES = ("reader", "installer")
_CONTEXT = b"amiup-localport-v1"
_CHALLENGE_TTL = 120.0


@dataclass(frozen=True, slots=True)
class Credential:
    """What the utility allows one field tool to do, and until when."""

    tool_id: str
    role: str
    not_before: int
    not_after: int
    meters: tuple[str, ...]
    groups: tuple[str, ...]
    tool_key: bytes

    def to_dict(self) -> dict[str, Any]:
        return {"tool": self.tool_id, "role": self.role, "nbf": self.not_before,
                "exp": self.not_after, "meters": list(self.meters),
                "groups": list(self.groups), "key": self.tool_key}

    @classmethod
    def from_dict(cls, d: Any) -> Credential:
        try:
            if set(d) != {"tool", "role", "nbf", "exp", "meters", "groups", "key"}:
                raise ValueError("wrong fields")
            return cls(str(d["tool"]), str(d["role"]), int(d["nbf"]), int(d["exp"]),
                       tuple(str(m) for m in d["meters"]), tuple(str(g) for g in d["groups"]),
                       bytes(d["key"]))
        except (TypeError, ValueError, KeyError) as ex:
            raise error("auth-failed", f"credential is malformed ({ex})") from None


def issue_credential(utility_key: PrivateKey, tool_public_key: PublicKey, *, tool_id: str,
                     role: str, not_before: int, not_after: int,
                     meters: tuple[str, ...] = (), groups: tuple[str, ...] = ()) -> bytes:
    """A credential signed by the utility key (COSE_Sign1)."""
    if role not in ROLES:
        raise error("invalid-argument", f"role {role!r}: one of {', '.join(ROLES)}")
    if not meters and not groups:
        raise error("invalid-argument", "a credential names meters or groups ('*' = all)")
    if not_after <= not_before:
        raise error("invalid-argument", "credential expiry must be after its start")
    cred = Credential(tool_id, role, not_before, not_after, tuple(meters), tuple(groups),
                      public_bytes(tool_public_key))
    return cose.sign_single(dumps(cred.to_dict()), utility_key, CREDENTIAL_CTY)


def sign_challenge(tool_key: PrivateKey, challenge: bytes, meter_id: str) -> bytes:
    """The field tool's answer: its key signs the challenge bound to this meter."""
    return sign(tool_key, _CONTEXT + challenge + meter_id.encode())


class LocalPort:
    """The port's authentication state machine; ``login`` returns a ``Session``."""

    def __init__(self, meter: Meter, *, max_failures: int = 5, lockout: float = 900.0,
                 min_interval: float = 2.0,
                 random: Callable[[int], bytes] = os.urandom) -> None:
        self.meter = meter
        self.max_failures = max_failures
        self.lockout = lockout
        self.min_interval = min_interval
        self._random = random
        self._challenge: tuple[bytes, float] | None = None

    def _state(self) -> dict[str, Any]:
        got: dict[str, Any] | None = self.meter.records.load("lp")
        return got or {"fails": 0, "locked_until": 0.0, "last": -1e18}

    def challenge(self, now: float) -> bytes:
        """A fresh single-use challenge (valid two minutes)."""
        nonce = self._random(16)
        self._challenge = (nonce, now)
        return nonce

    def login(self, credential: bytes, response: bytes, now: float) -> Session:
        """Authenticate a field tool; failures are logged, alarmed, rate-limited, locked."""
        meter = self.meter
        meter._on(now)
        st = self._state()
        if now < st["locked_until"]:
            err = error("locked-out", f"port locked until {st['locked_until']:.0f}")
            meter._alarm(now, err, None)
            raise err
        if now - st["last"] < self.min_interval:
            err = error("locked-out",
                        f"rate limited: {self.min_interval}s after a failed attempt")
            meter._alarm(now, err, None)
            raise err
        try:
            cred = self._check(credential, response, now)
        except Exception as ex:
            fails = int(st["fails"]) + 1
            locked = now + self.lockout if fails >= self.max_failures else 0.0
            meter.records.save("lp", {"fails": 0 if locked else fails, "locked_until": locked,
                                      "last": now})
            detail = getattr(ex, "detail", str(ex))
            err = error("auth-failed", f"attempt {fails}: {detail}")
            meter._alarm(now, err, None)
            if locked:
                meter._log(now, "meter", "local-lockout", "locked", f"until {locked:.0f}")
                raise error("locked-out",
                            f"{fails} failed attempts; locked until {locked:.0f}") from None
            raise err from None
        finally:
            self._challenge = None
        meter.records.save("lp", {"fails": 0, "locked_until": 0.0, "last": st["last"]})
        meter._log(now, "meter", "local-login", "ok", f"{cred.tool_id} as {cred.role}")
        return Session(meter, cred)

    def _check(self, credential: bytes, response: bytes, now: float) -> Credential:
        meter = self.meter
        if self._challenge is None or now - self._challenge[1] > _CHALLENGE_TTL:
            raise error("auth-failed", "no fresh challenge")
        nonce = self._challenge[0]
        signed = cose.decode_single(credential, content_type=CREDENTIAL_CTY, code="auth-failed")
        key = meter.anchors.find("utility", signed.kid)
        if not signed.check(key):
            raise error("bad-signature", "credential is not signed by the utility")
        cred = Credential.from_dict(loads(signed.payload, what="credential", code="auth-failed"))
        if not cred.not_before <= now <= cred.not_after:
            raise error("auth-failed", "credential is expired or not yet valid")
        if not ("*" in cred.meters or meter.meter_id in cred.meters
                or set(cred.groups) & set(meter.groups)):
            raise error("auth-failed", "credential does not name this meter")
        if cred.role not in ROLES:
            raise error("auth-failed", f"unknown role {cred.role!r}")
        tool = public_from_bytes(cred.tool_key)
        if not verify_signature(tool, response, _CONTEXT + nonce + meter.meter_id.encode()):
            raise error("auth-failed", "challenge response does not verify")
        return cred


class Session:
    """An authenticated local session: the meter's own upgrade calls, role-checked."""

    def __init__(self, meter: Meter, credential: Credential) -> None:
        self.meter = meter
        self.credential = credential

    def _allow(self, now: float, upgrade: bool) -> None:
        if now > self.credential.not_after:
            raise error("auth-failed", "credential expired during the session")
        if upgrade and self.credential.role != "installer":
            raise error("not-authorized", f"role {self.credential.role} cannot upgrade")

    def status(self, nonce: bytes, now: float) -> StatusReport:
        self._allow(now, False)
        return self.meter.status(nonce, now)

    def offer(self, signed_header: bytes, now: float, *, block_size: int | None = None,
              activation: str | int = "on-command") -> Accept:
        self._allow(now, True)
        self.meter._on(now)
        return self.meter._offer(None, signed_header, now, block_size,
                                 tool=self.credential.tool_id, activation=activation)

    def block(self, transfer_id: int, index: int, data: bytes, now: float) -> bool:
        self._allow(now, True)
        return self.meter.block(transfer_id, index, data, now)

    def missing(self, transfer_id: int, now: float) -> bytes:
        self._allow(now, True)
        return self.meter.missing(transfer_id)

    def verify(self, component: str, now: float) -> str:
        self._allow(now, True)
        return self.meter.verify(component, now)

    def activate(self, component: str, at: float | None, now: float) -> str:
        self._allow(now, True)
        return self.meter.activate(component, at, now)

    def cancel(self, component: str, now: float) -> str:
        self._allow(now, True)
        return self.meter.cancel(component, now)
