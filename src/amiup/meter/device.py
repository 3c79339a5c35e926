"""The reference meter: five components in two slots each, driven by calls that carry `now`.

Sans-I/O: no clock, no socket, no sleep; the head-end (or the local port) calls ``offer``,
``block``, ``verify``, ``activate`` ... and ``tick``; every persistent change goes through
``Storage`` so a power loss can strike before any write, and ``boot`` recovers. Each
component's state and slot pointers live in ONE record, so every transition is one atomic
write; image pages are only ever written into the inactive slot, which no record trusts
until a verified write says so. Checks come first, then state changes (h11 / TUF habit).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography.hazmat.primitives import serialization

from amiup import COMPONENTS
from amiup.errors import AmiupError, Rejected, error
from amiup.meter import agent
from amiup.meter.eventlog import EventLog
from amiup.meter.firmware import HEAD_BYTES, Behaviour, behaviour
from amiup.meter.metrology import Metrology, profile_from_list
from amiup.meter.report import ComponentStatus, LocalUpgrade, StatusReport
from amiup.meter.slots import (
    SlotWriter,
    block_length,
    block_page,
    iter_payload,
    plain_prefix,
    read_block,
    scan_bitmap,
    slot_prefix,
    slot_reader,
    transfer_reader,
    xfer_prefix,
)
from amiup.meter.storage import Records, Storage
from amiup.package import (
    Identity,
    Manifest,
    SignedManifest,
    StreamDecryptor,
    UpgradeOrder,
    check_compatible,
    check_rollback,
    verify_manifest,
    verify_order,
)
from amiup.package import delta as delta_mod
from amiup.trust import PrivateKey, PublicKey, TrustAnchors, key_id

DEFAULT_BLOCK = 1024
MIN_BLOCK, MAX_BLOCK = 64, 4096
NO_ALARM = frozenset({"transfer-incomplete", "invalid-state", "busy", "malformed-message"})
"""Refusals that are not failed security checks (so they raise no SEC-10 alarm)."""
NV_RECORDS = ("cal", "cfg", "cred", "han", "net")
"""Records no upgrade may change (SM-7, MET-2, AMI-2, HAN-2)."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Accept:
    """The meter's answer to an offer: where to send blocks and which are still missing."""

    transfer_id: int
    component: str
    block_size: int
    n_blocks: int
    missing: bytes


@dataclass(frozen=True, slots=True)
class Alarm:
    """A failed security check, to be reported upward (SEC-10)."""

    time: float
    code: str
    component: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class Event:
    """One upgrade step and its outcome, reported upward (SM-8)."""

    time: float
    component: str
    kind: str
    outcome: str
    detail: str


@dataclass(frozen=True, slots=True)
class TransferShape:
    """A transfer that still takes blocks: its component and geometry (for coded repair)."""

    component: str
    n_blocks: int
    block_size: int
    payload_size: int


@dataclass(frozen=True, slots=True)
class MeterConfig:
    """Device timing and sizes (bounded trial window, metrology gap, slot capacity)."""

    trial_window: float = 300.0
    metrology_gap: float = 2.0
    slot_capacity: int = 16 * 1024 * 1024
    save_interval: float = 60.0
    log_capacity: int = 128


def transfer_id(manifest_digest: bytes, block_size: int) -> int:
    """Same on every meter for one package and block size, so multicast can address it."""
    return int.from_bytes(hashlib.sha256(manifest_digest + block_size.to_bytes(4, "big"))
                          .digest()[:4], "big")


def _missing(bitmap: bytearray, n_blocks: int) -> bytes:
    """Bitmap of blocks NOT received (same bit order as the received bitmap)."""
    out = bytearray(b ^ 0xFF for b in bitmap[:(n_blocks + 7) // 8])
    if n_blocks % 8:
        out[-1] &= (1 << (n_blocks % 8)) - 1
    return bytes(out)


def _count(bitmap: bytearray) -> int:
    return sum(bin(b).count("1") for b in bitmap)


def _decrypting(chunks: Iterator[bytes], dec: StreamDecryptor) -> Iterator[bytes]:
    for chunk in chunks:
        plain = dec.feed(chunk)
        if plain:
            yield plain
    tail = dec.finish()
    if tail:
        yield tail


class Meter:
    """One meter; call ``boot(now)`` first and after every ``PowerLoss``."""

    def __init__(self, storage: Storage, config: MeterConfig | None = None) -> None:
        self.storage = storage
        self.config = config or MeterConfig()
        self.on = False
        self._alarms: deque[Alarm] = deque(maxlen=1000)
        self._events: deque[Event] = deque(maxlen=1000)

    # ------------------------------------------------------------------ boot and power
    def boot(self, now: float) -> None:
        """Read everything back from storage and finish or roll back interrupted steps."""
        self.on = False
        self.records = Records(self.storage)
        meta = self.records.load("meter")
        if meta is None:
            raise error("not-found", "meter storage is not provisioned")
        self.meter_id: str = meta["serial"]
        self.vendor: str = meta["vendor"]
        self.model: str = meta["model"]
        self.hw_rev: str = meta["hw_rev"]
        self.groups: tuple[str, ...] = tuple(meta["groups"])
        self.anchors = TrustAnchors.from_bytes(self.records.load("trust"))
        key = serialization.load_pem_private_key(self.records.load("cred")["meter_key"], None)
        self._key: PrivateKey = key  # type: ignore[assignment]
        cal = self.records.load("cal")
        self.metrology = Metrology.from_dict(self.records.load("metro"), float(cal["gain"]),
                                             profile_from_list(cal["profile"]))
        self.log = EventLog(self.storage, self.records, self.config.log_capacity)
        self.log.load()
        self.local: dict[str, Any] = self.records.load("local") or {"next": 1, "items": []}
        self.comp: dict[str, dict[str, Any]] = {}
        self.bitmaps: dict[str, bytearray] = {}
        self.received: dict[str, int] = {}  # set bits per bitmap (no O(n) count per block)
        counter = int(self.records.load("ctr") or 0)
        for c in COMPONENTS:
            rec = self.records.load(f"comp/{c}")
            if rec is None:
                raise error("not-found", f"component {c} is not provisioned")
            self.comp[c] = rec
            x = rec.get("x")
            if x is not None and x.get("ctr") is not None:
                counter = max(counter, int(x["ctr"]))
            if rec["state"] == "verifying":
                rec["state"] = "received"
            if x is not None and rec["state"] in ("receiving", "received"):
                bm = scan_bitmap(self.storage, c, x["tid"], x["nb"], x["bs"], x["size"])
                self.bitmaps[c] = bm
                self.received[c] = _count(bm)
                rec["state"] = "received" if self.received[c] == x["nb"] else "receiving"
        self.counter = counter
        self.on = True
        gap = self.metrology.outage(now)
        self._save_metro(now)
        self._log(now, "meter", "boot", "ok",
                  f"outage {gap.end - gap.start:.1f}s {gap.energy_wh:.4f}Wh" if gap else "")
        self._reconcile_local()
        for c in COMPONENTS:
            if self.comp[c]["state"] == "trial":
                self._run_trial(c, now)
        self.tick(now)

    def power_loss(self) -> None:
        """The power fails now: RAM is gone; only ``boot`` is valid next."""
        self.on = False

    def _on(self, now: float) -> None:
        if not self.on:
            raise error("invalid-state", "the meter is off; boot it first")
        self.metrology.advance(now)
        if now - self._metro_saved >= self.config.save_interval:
            self._save_metro(now)

    def _save_metro(self, now: float) -> None:
        self.metrology.advance(now)
        self.records.save("metro", self.metrology.to_dict())
        self._metro_saved = now

    # ------------------------------------------------------------------ identity
    @property
    def public_key(self) -> PublicKey:
        return self._key.public_key()

    @property
    def identity(self) -> Identity:
        return Identity(self.vendor, self.model, self.hw_rev,
                        {c: self._running(c)["v"] for c in COMPONENTS})

    @property
    def reachable(self) -> bool:
        """False while an ``ami_comm`` image on trial cannot talk (network must drop traffic)."""
        rec = self.comp["ami_comm"]
        return not (rec["state"] == "trial" and not self._behaviour("ami_comm").contacts)

    def _running(self, c: str) -> dict[str, Any]:
        rec = self.comp[c]
        slot: dict[str, Any] = rec["slots"][rec["active"]]
        return slot

    def _staged_slot(self, c: str) -> int:
        return 1 - int(self.comp[c]["active"])

    def _behaviour(self, c: str) -> Behaviour:
        head = slot_reader(self.storage, slot_prefix(c, int(self.comp[c]["active"])),
                          int(self._running(c)["n"]))
        return behaviour(head.read(HEAD_BYTES) or b"")

    # ------------------------------------------------------------------ reporting
    def _log(self, now: float, component: str, kind: str, outcome: str, detail: str = "") -> None:
        self.log.append(now, component, kind, outcome, detail)
        if component != "meter" or kind in ("boot",):
            self._events.append(Event(now, component, kind, outcome, detail))

    def _alarm(self, now: float, err: AmiupError, component: str | None) -> None:
        self._alarms.append(Alarm(now, err.code, component, err.detail))
        self.log.append(now, component or "meter", "alarm", err.code, err.detail)

    def _guard(self, now: float, component: str | None, fn: Callable[[], T]) -> T:
        """Run a check; a failed security check raises an alarm before propagating."""
        try:
            return fn()
        except Rejected as ex:
            if ex.code not in NO_ALARM:
                self._alarm(now, ex, component)
            raise

    def pop_alarms(self) -> list[Alarm]:
        out = list(self._alarms)
        self._alarms.clear()
        return out

    def pop_events(self) -> list[Event]:
        out = list(self._events)
        self._events.clear()
        return out

    def status(self, nonce: bytes, now: float) -> StatusReport:
        """Signed report of every component (SM-1, MET-5, UMS-10)."""
        self._on(now)
        comps = {c: self._component_status(c) for c in COMPONENTS}
        local = tuple(LocalUpgrade(**u) for u in self.local["items"])
        m = self.metrology
        report = StatusReport(
            self.meter_id, now, bytes(nonce), self.counter, self.log.head, comps,
            comps["metrology"].legal_version, local,
            {"energy_wh": m.energy_wh, "gap_seconds": m.gap_seconds,
             "gap_energy_wh": m.gap_energy_wh, "gain": m.gain})
        return report.sign(self._key)

    def component_status(self, component: str, now: float) -> ComponentStatus:
        """One component's versions and state, unsigned: the brief read-back's answer."""
        self._on(now)
        return self._component_status(self._component(component))

    def _component_status(self, c: str) -> ComponentStatus:
        rec = self.comp[c]
        run = self._running(c)
        staged = (rec["slots"][self._staged_slot(c)]
                  if rec["state"] in ("verified", "scheduled") else None)
        x = rec.get("x")
        bm = self.bitmaps.get(c)
        active = x is not None and rec["state"] in ("receiving", "received")
        return ComponentStatus(
            run["v"], run["h"], int(rec["floor"]), staged["v"] if staged else None,
            staged["h"] if staged else None, rec["state"], rec.get("code"),
            x["tid"] if active and x else None, self.received.get(c, 0) if active and bm is not None else 0,
            int(x["nb"]) if active and x else 0, run.get("l"), run.get("p"))

    # ------------------------------------------------------------------ offer
    def offer(self, order: bytes, signed_header: bytes, now: float, *,
              block_size: int | None = None) -> Accept:
        """A remote offer: the utility's order plus the vendor-signed manifest (SEC-3)."""
        self._on(now)
        return self._offer(order, signed_header, now, block_size, tool=None, activation=None)

    def _order_in_progress(self, order: bytes) -> dict[str, Any] | None:
        for rec in self.comp.values():
            x = rec.get("x")
            if x is not None and x.get("order") == order and rec["state"] not in (
                    "trial", "committed", "reverted"):
                return x  # the same order again resumes its transfer; once carried out, a replay
        return None

    def _check_offer(self, order_bytes: bytes | None, header: bytes, now: float,
                     tool: str | None) -> tuple[UpgradeOrder | None, SignedManifest]:
        """Every offer check, in the order of issue 3; raises on the first failure."""
        order = None
        if order_bytes is not None:
            prior = self._order_in_progress(order_bytes)
            last = int(prior["ctr"]) - 1 if prior is not None else self.counter
            order = verify_order(order_bytes, self.anchors, meter_id=self.meter_id, now=now,
                                 last_counter=last, meter_groups=self.groups)
        elif tool is None:
            raise error("not-authorized", "an upgrade needs a utility order or a local login")
        signed = verify_manifest(header, self.anchors)
        m = signed.manifest
        if order is not None and order.package_digest != signed.digest:
            raise error("order-mismatch", "the order names another package")
        check_compatible(m, self.identity)
        if m.component == "metrology" and m.legal is None:
            raise error("legal-fields-missing", "metrology image without legal identity")
        check_rollback(int(self.comp[m.component]["floor"]), m.security_seq,
                       order.allow_downgrade if order is not None else False)
        cap = self.config.slot_capacity
        if m.image.size > cap or m.payload.size > cap:
            raise error("too-large", f"image {m.image.size} / payload {m.payload.size} bytes "
                        f"> slot of {cap}")
        if m.encryption is not None:
            mine = key_id(self.public_key)
            if all(r.kid != mine for r in m.encryption.recipients):
                raise error("decrypt-failed", "payload is not encrypted for this meter")
        if m.payload.kind == "delta" and m.payload.from_sha256 != self._running(m.component)["h"]:
            raise error("delta-base-mismatch", "the delta was made from another image")
        return order, signed

    def _offer(self, order_bytes: bytes | None, header: bytes, now: float,
               block_size: int | None, *, tool: str | None,
               activation: str | int | None) -> Accept:
        order, signed = self._guard(now, None,
                                    lambda: self._check_offer(order_bytes, header, now, tool))
        m = signed.manifest
        c = m.component
        rec = self.comp[c]
        bs = max(MIN_BLOCK, min(MAX_BLOCK, block_size or DEFAULT_BLOCK))
        tid = transfer_id(signed.digest, bs)
        nb = -(-m.payload.size // bs)
        act: str | int = (order.activation if order is not None
                          else (activation if activation is not None else "on-command"))
        x = rec.get("x")
        same = x is not None and x["tid"] == tid
        if rec["state"] in ("trial", "activating", "verifying"):
            raise error("busy", f"{c} is in state {rec['state']}")
        if same and rec["state"] in ("receiving", "received", "verified", "scheduled"):
            assert x is not None
            if order is not None and order_bytes != x.get("order"):
                x.update(order=order_bytes, ctr=order.counter, act=order.activation)
                self._save(c)
                self.counter = max(self.counter, order.counter)
            elif tool is not None and activation is not None:
                x["act"] = activation
            done = rec["state"] in ("verified", "scheduled")
            missing = bytes((nb + 7) // 8) if done else _missing(self.bitmaps[c], nb)
            return Accept(tid, c, bs, nb, missing)
        agent.step(rec["state"], "offer")
        rec.update(state="receiving", code=None, at=None, trial=None, x={
            "tid": tid, "hdr": header, "order": order_bytes,
            "ctr": order.counter if order is not None else None, "bs": bs, "nb": nb,
            "size": m.payload.size, "act": act, "tool": tool, "ver": m.version,
            "seq": m.security_seq})
        rec["slots"][self._staged_slot(c)] = None
        self._save(c)
        if order is not None:
            self.counter = max(self.counter, order.counter)
            self.records.save("ctr", self.counter)
        self.storage.erase(xfer_prefix(c))
        self.bitmaps[c] = bytearray((nb + 7) // 8)
        self.received[c] = 0
        self._log(now, c, "offered", "accepted",
                  f"{m.version} seq {m.security_seq} {m.payload.kind} {nb}x{bs}"
                  + (f" local:{tool}" if tool else ""))
        if nb == 0:
            rec["state"] = "received"
        return Accept(tid, c, bs, nb, _missing(self.bitmaps[c], nb))

    # ------------------------------------------------------------------ blocks
    def _by_tid(self, tid: int) -> str | None:
        for c, rec in self.comp.items():
            x = rec.get("x")
            if x is not None and x["tid"] == tid and rec["state"] in ("receiving", "received"):
                return c
        return None

    def block(self, transfer_id: int, index: int, data: bytes, now: float) -> bool:
        """Store one block (any order); False for a duplicate or a transfer not ours."""
        self._on(now)
        c = self._by_tid(transfer_id)
        if c is None:
            return False
        rec = self.comp[c]
        x = rec["x"]
        if not 0 <= index < x["nb"]:
            raise error("malformed-message", f"block {index} of {x['nb']}")
        if len(data) != block_length(index, x["nb"], x["bs"], x["size"]):
            raise error("malformed-message", f"block {index} has {len(data)} bytes")
        bm = self.bitmaps[c]
        if bm[index // 8] >> (index % 8) & 1:
            return False
        self.storage.write(f"{xfer_prefix(c)}{index:06d}", block_page(transfer_id, index, data))
        bm[index // 8] |= 1 << (index % 8)
        self.received[c] += 1
        if rec["state"] == "receiving" and self.received[c] == x["nb"]:
            rec["state"] = agent.step("receiving", "complete")
            self._events.append(Event(now, c, "received", "ok", f"{x['nb']} blocks"))
        return True

    def transfer_shape(self, transfer_id: int) -> TransferShape | None:
        """Shape of ``transfer_id`` while it takes blocks (receiving or received), else None."""
        c = self._by_tid(transfer_id)
        if c is None:
            return None
        x = self.comp[c]["x"]
        return TransferShape(c, int(x["nb"]), int(x["bs"]), int(x["size"]))

    def stored_block(self, transfer_id: int, index: int) -> bytes:
        """Block ``index`` as stored (page tag and CRC checked): what a coded-repair decoder
        subtracts from its symbols. ``not-found`` if the block is not (or no longer) held."""
        if not self.on:
            raise error("invalid-state", "the meter is off; boot it first")
        c = self._by_tid(transfer_id)
        data = read_block(self.storage, c, transfer_id, index) if c is not None else None
        if data is None:
            raise error("not-found", f"block {index} of transfer {transfer_id} is not stored")
        return data

    def missing(self, transfer_id: int) -> bytes:
        """Bitmap of blocks still missing (all zero bits once complete)."""
        c = self._by_tid(transfer_id)
        if c is not None:
            return _missing(self.bitmaps[c], self.comp[c]["x"]["nb"])
        for rec in self.comp.values():  # already staged or installed: nothing is missing
            x = rec.get("x")
            if x is not None and x["tid"] == transfer_id and rec["state"] != "failed":
                return bytes((int(x["nb"]) + 7) // 8)
        raise error("not-found", f"no transfer {transfer_id}")

    # ------------------------------------------------------------------ verify
    def verify(self, component: str, now: float) -> str:
        """Check the received payload and build the staged image (SM-3); the new state."""
        self._on(now)
        c = self._component(component)
        rec = self.comp[c]
        x = rec.get("x")
        if x is not None and rec["state"] in ("verified", "scheduled", "trial", "committed",
                                               "reverted"):
            return str(rec["state"])  # a repeated command (its reply was lost): same answer
        if x is not None and rec["state"] == "failed":
            raise error(str(rec["code"]), "verification failed earlier; offer again")
        if rec["state"] == "receiving" and x is not None:
            raise error("transfer-incomplete",
                        f"{x['nb'] - self.received[c]} of {x['nb']} blocks missing")
        rec["state"] = agent.step(rec["state"], "verify")
        assert x is not None
        try:
            info = self._guard(now, c, lambda: self._build_staged(c, x))
        except Rejected as ex:
            rec.update(state=agent.step("verifying", "fail"), code=ex.code)
            rec["slots"][self._staged_slot(c)] = None
            self._save(c)
            self._clean(c)
            self._log(now, c, "failed", ex.code, ex.detail)
            raise
        rec["state"] = agent.step("verifying", "verify_ok")
        rec["slots"][self._staged_slot(c)] = info
        self._save(c)
        self._clean(c)
        self._log(now, c, "verified", "ok", f"{info['v']} sha256 {info['h'].hex()[:16]}")
        act = x["act"]
        if act == "now":
            self._activate(c, now)
        elif isinstance(act, int | float) and not isinstance(act, bool):
            self._schedule(c, float(act), now)
        return str(rec["state"])

    def _build_staged(self, c: str, x: dict[str, Any]) -> dict[str, Any]:
        """Stream payload -> digest, then decrypt/delta into the inactive slot, then check."""
        signed = verify_manifest(x["hdr"], self.anchors)
        m: Manifest = signed.manifest
        tid, nb = x["tid"], x["nb"]
        sha = hashlib.sha256()
        size = 0
        try:
            for chunk in iter_payload(self.storage, c, tid, nb):
                sha.update(chunk)
                size += len(chunk)
        except LookupError:
            raise error("transfer-incomplete", "a block was lost") from None
        if size != m.payload.size:
            raise error("size-mismatch", f"payload {size} bytes, manifest {m.payload.size}")
        if sha.digest() != m.payload.sha256:
            raise error("digest-mismatch", "payload SHA-256 differs from the signed manifest")
        chunks: Iterator[bytes] = iter_payload(self.storage, c, tid, nb)
        if m.encryption is not None:
            chunks = _decrypting(chunks, StreamDecryptor(m.encryption, self._key))
        staged = self._staged_slot(c)
        self.storage.erase(slot_prefix(c, staged))
        writer = SlotWriter(self.storage, slot_prefix(c, staged))
        if m.payload.kind == "delta":
            run = self._running(c)
            if m.payload.from_sha256 != run["h"]:
                raise error("delta-base-mismatch", "running image is not the delta's base")
            if m.encryption is not None:
                # detools seeks in the patch: spool the plaintext patch to scratch pages.
                self.storage.erase(plain_prefix(c))
                spool = SlotWriter(self.storage, plain_prefix(c))
                for chunk in chunks:
                    spool.write(chunk)
                spool.close()
                patch = slot_reader(self.storage, plain_prefix(c), spool.size)
            else:
                patch = transfer_reader(self.storage, c, tid, int(x["bs"]), int(x["size"]))
            old = slot_reader(self.storage, slot_prefix(c, int(self.comp[c]["active"])),
                             int(run["n"]))
            delta_mod.apply_stream(old, patch, writer)  # type: ignore[arg-type]
        else:
            for chunk in chunks:
                writer.write(chunk)
        digest = writer.close()
        if writer.size != m.image.size:
            raise error("size-mismatch", f"image {writer.size} bytes, manifest {m.image.size}")
        if bytes.fromhex(digest) != m.image.sha256:
            raise error("digest-mismatch", "image SHA-256 differs from the signed manifest")
        return {"v": m.version, "h": m.image.sha256, "n": m.image.size, "s": m.security_seq,
                "l": m.legal.legal_version if m.legal else None,
                "r": m.legal.approval_ref if m.legal else None, "p": m.protocol}

    # ------------------------------------------------------------------ activation
    def activate(self, component: str, at: float | None, now: float) -> str:
        """Activate the staged image now (``at`` None or past) or at ``at`` (SM-5)."""
        self._on(now)
        c = self._component(component)
        state = self.comp[c]["state"]
        if state in ("trial", "committed", "reverted") and self.comp[c].get("x") is not None:
            return str(state)  # already activated: a repeated command gets the outcome
        if state not in ("verified", "scheduled"):
            raise error("invalid-state", f"{c} is {state}, not verified")
        if at is None or at <= now:
            self._activate(c, now)
        else:
            self._schedule(c, float(at), now)
        return str(self.comp[c]["state"])

    def _schedule(self, c: str, at: float, now: float) -> None:
        rec = self.comp[c]
        if at <= now:
            self._activate(c, now)
            return
        rec.update(state=agent.step(rec["state"], "schedule"), at=at)
        self._save(c)
        self._log(now, c, "scheduled", "ok", f"at {at}")

    def _activate(self, c: str, now: float) -> None:
        rec = self.comp[c]
        agent.step(rec["state"], "activate")
        if c == "metrology":
            gap = self.metrology.pause(now, self.config.metrology_gap, "metrology-activation")
            self._save_metro(now)
            self._log(now, c, "metrology-gap", "logged",
                      f"{gap.end - gap.start:.1f}s {gap.energy_wh:.4f}Wh")
        prev = int(rec["active"])
        rec.update(state="trial", active=1 - prev, at=None, code=None,
                   trial={"prev": prev, "deadline": now + self.config.trial_window})
        self._save(c)
        self._log(now, c, "activated", "trial", self._running(c)["v"])
        self._run_trial(c, now)

    def _run_trial(self, c: str, now: float) -> None:
        """Start the image on trial: boot, self-test, and for ami_comm wait for contact."""
        beh = self._behaviour(c)
        if not beh.boots:
            self._revert(c, now, "boot-failed")
        elif not beh.self_test:
            self._revert(c, now, "self-test-failed")
        elif c != "ami_comm":
            self._commit(c, now, "self_test_ok")
        elif now >= self.comp[c]["trial"]["deadline"]:
            self._revert(c, now, "no-contact")

    def _commit(self, c: str, now: float, event: str) -> None:
        rec = self.comp[c]
        rec["state"] = agent.step(rec["state"], event)
        run = self._running(c)
        rec.update(floor=int(run["s"]), trial=None, code=None,
                   last=self._last(c, now, run["v"], "committed"))
        rec["slots"][self._staged_slot(c)] = None  # the old image is no longer a fallback
        self._save(c)
        self._log(now, c, "committed", "ok", run["v"])
        self._reconcile_local()

    def _revert(self, c: str, now: float, code: str) -> None:
        rec = self.comp[c]
        bad = self._running(c)["v"]
        event = {"boot-failed": "boot_fail",
                 "self-test-failed": "self_test_fail"}.get(code, "timeout")
        rec["state"] = agent.step(rec["state"], event)
        bad_slot = int(rec["active"])
        if c == "metrology":
            self.metrology.pause(now, self.config.metrology_gap, "metrology-activation")
            self._save_metro(now)
        rec.update(active=int(rec["trial"]["prev"]), trial=None, code=code,
                   last=self._last(c, now, bad, f"reverted:{code}"))
        rec["slots"][bad_slot] = None
        self._save(c)
        self._log(now, c, "reverted", code, f"{bad} -> {self._running(c)['v']}")
        self._reconcile_local()

    def _last(self, c: str, now: float, version: str, outcome: str) -> dict[str, Any] | None:
        x = self.comp[c].get("x")
        if x is None or not x.get("tool"):
            return None
        return {"time": now, "component": c, "version": version, "tool_id": x["tool"],
                "outcome": outcome}

    def _reconcile_local(self) -> None:
        """Record finished local upgrades for the next status (UMS-10), once each."""
        changed = False
        seen = {(u["component"], u["time"]) for u in self.local["items"]}
        for c in COMPONENTS:
            last = self.comp[c].get("last")
            if last and (c, last["time"]) not in seen:
                item = {"seq": self.local["next"], **last}
                self.local = {"next": self.local["next"] + 1,
                              "items": [*self.local["items"], item][-16:]}
                changed = True
        if changed:
            self.records.save("local", self.local)

    def cancel(self, component: str, now: float) -> str:
        """Drop a pending transfer or staged/scheduled image (not once activating)."""
        self._on(now)
        c = self._component(component)
        rec = self.comp[c]
        if rec["state"] == "idle":
            return "idle"  # nothing pending (or a repeated cancel)
        rec_state = agent.step(rec["state"], "cancel")
        rec.update(state=rec_state, at=None, x=None, code=None)
        rec["slots"][self._staged_slot(c)] = None
        self._save(c)
        self.storage.erase(xfer_prefix(c))
        self.bitmaps.pop(c, None)
        self.received.pop(c, None)
        self._log(now, c, "cancelled", "ok")
        return rec_state

    def tick(self, now: float) -> None:
        """Timers: scheduled activations, trial windows; advances metrology."""
        self._on(now)
        for c in COMPONENTS:
            rec = self.comp[c]
            if rec["state"] == "scheduled" and rec["at"] is not None and rec["at"] <= now:
                self._activate(c, now)
            elif rec["state"] == "trial" and now >= rec["trial"]["deadline"]:
                self._revert(c, now, "no-contact" if c == "ami_comm" else "self-test-failed")

    def next_deadline(self) -> float | None:
        """When ``tick`` next has something to do."""
        times = [float(r["at"]) for r in self.comp.values() if r["state"] == "scheduled"]
        times += [float(r["trial"]["deadline"]) for r in self.comp.values()
                  if r["state"] == "trial"]
        return min(times) if times else None

    def contact(self, now: float) -> None:
        """The head-end heard from us: an ``ami_comm`` on trial that can talk commits (AMI-1)."""
        self._on(now)
        if self.comp["ami_comm"]["state"] == "trial" and self.reachable:
            self._commit("ami_comm", now, "contact")

    def update_trust(self, now: float, *, root: bytes | None = None,
                     revocations: bytes | None = None) -> None:
        """Apply a root rotation and/or revocation list signed by a threshold of root keys
        (SEC-9); refused changes raise an alarm and leave the anchors as they were."""
        self._on(now)

        def apply() -> TrustAnchors:
            anchors = self.anchors
            if root is not None:
                anchors = anchors.apply_root(root)
            if revocations is not None:
                anchors = anchors.apply_revocations(revocations)
            return anchors

        anchors = self._guard(now, None, apply)
        self.records.save("trust", anchors.to_bytes())
        self.anchors = anchors
        self._log(now, "meter", "trust-updated", "ok",
                  f"root v{anchors.root.version} revocations v{anchors.revocation_version}")

    # ------------------------------------------------------------------ helpers
    def _component(self, name: str) -> str:
        if name not in self.comp:
            raise error("invalid-argument", f"no component {name!r}")
        return name

    def _clean(self, c: str) -> None:
        """Free the transfer and scratch areas (their content is no longer trusted by anyone)."""
        self.storage.erase(xfer_prefix(c))
        if self.storage.keys(plain_prefix(c)):
            self.storage.erase(plain_prefix(c))

    def _save(self, c: str) -> None:
        self.records.save(f"comp/{c}", self.comp[c])

    def nv_snapshot(self) -> dict[str, Any]:
        """The data no upgrade may touch, as stored (SM-7 checks compare these)."""
        return {name: self.records.load(name) for name in NV_RECORDS}

    def registers(self) -> tuple[float, float, float]:
        """(energy Wh, total gap seconds, energy missed in gaps Wh)."""
        m = self.metrology
        return m.energy_wh, m.gap_seconds, m.gap_energy_wh

    def export_log(self) -> dict[str, Any]:
        return self.log.export()

    def slot_image(self, component: str, active: bool = True) -> bytes:
        """A whole slot image (tests and tools only: not on the upgrade path)."""
        rec = self.comp[self._component(component)]
        slot = int(rec["active"]) if active else 1 - int(rec["active"])
        info = rec["slots"][slot]
        if info is None:
            return b""
        return slot_reader(self.storage, slot_prefix(component, slot), int(info["n"])).read()
