"""The meter's event log: hash-chained, bounded ring with a checkpoint, exportable (SM-8).

Each entry hashes its content with the previous entry's hash, so editing, dropping or
reordering a retained entry breaks the chain. The ring keeps the last ``capacity`` entries;
before an entry is overwritten its hash goes into a checkpoint record, and verification
starts from that checkpoint. The head (last sequence number and hash) is reported in the
signed status so the UMS can anchor the chain. One page write per event (two once full).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import cbor2

from amiup.errors import error
from amiup.meter.storage import Records, Storage, seal, unseal

GENESIS = bytes(32)
DEFAULT_CAPACITY = 128


@dataclass(frozen=True, slots=True)
class Entry:
    """One logged event: when, which component, what happened, and its outcome."""

    seq: int
    time: float
    component: str
    kind: str
    outcome: str
    detail: str
    prev: bytes

    def body(self) -> bytes:
        return cbor2.dumps([self.seq, self.time, self.component, self.kind, self.outcome,
                            self.detail, self.prev], canonical=True)

    @property
    def hash(self) -> bytes:
        return hashlib.sha256(self.body()).digest()

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "time": self.time, "component": self.component,
                "kind": self.kind, "outcome": self.outcome, "detail": self.detail,
                "prev": self.prev.hex(), "hash": self.hash.hex()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Entry:
        return cls(int(d["seq"]), float(d["time"]), str(d["component"]), str(d["kind"]),
                   str(d["outcome"]), str(d["detail"]), bytes.fromhex(d["prev"]))


class EventLog:
    """The ring in storage plus its RAM view (rebuilt at boot)."""

    def __init__(self, storage: Storage, records: Records,
                 capacity: int = DEFAULT_CAPACITY) -> None:
        self.storage = storage
        self.records = records
        self.capacity = capacity
        self.entries: list[Entry] = []
        self.checkpoint: tuple[int, bytes] = (0, GENESIS)  # (seq of first kept, prev hash)

    def load(self) -> None:
        """Boot: read the checkpoint and every intact ring page, keep the linked chain."""
        ck = self.records.load("logck")
        self.checkpoint = (int(ck[0]), bytes(ck[1])) if ck else (0, GENESIS)
        found: dict[int, Entry] = {}
        for key in self.storage.keys("log/"):
            got = unseal(self.storage.read(key))
            if got is None:
                continue
            try:
                e = Entry(*cbor2.loads(got[1]))
            except (TypeError, ValueError, cbor2.CBORDecodeError):
                continue
            if e.seq >= self.checkpoint[0]:
                found[e.seq] = e
        chain: list[Entry] = []
        seq, prev = self.checkpoint
        while seq in found and found[seq].prev == prev:
            chain.append(found[seq])
            prev = found[seq].hash
            seq += 1
        self.entries = chain

    @property
    def head(self) -> tuple[int, bytes]:
        """(next sequence number, hash of the last entry)."""
        if self.entries:
            last = self.entries[-1]
            return last.seq + 1, last.hash
        return self.checkpoint

    def append(self, time: float, component: str, kind: str, outcome: str,
               detail: str = "") -> Entry:
        """Log an event durably (checkpoint first when the ring is full)."""
        seq, prev = self.head
        entry = Entry(seq, float(time), component, kind, outcome, detail[:200], prev)
        if len(self.entries) >= self.capacity:
            oldest = self.entries[0]
            self.records.save("logck", [oldest.seq + 1, oldest.hash])
            self.checkpoint = (oldest.seq + 1, oldest.hash)
            self.entries = self.entries[1:]
        self.storage.write(f"log/{seq % self.capacity:04d}", seal(seq, entry.body()))
        self.entries.append(entry)
        return entry

    def export(self) -> dict[str, Any]:
        """The retained chain with its checkpoint, for the UMS or a field tool (JSON-able)."""
        return {"checkpoint": {"seq": self.checkpoint[0], "hash": self.checkpoint[1].hex()},
                "entries": [e.to_dict() for e in self.entries]}


def verify_export(data: dict[str, Any], head: tuple[int, bytes] | None = None) -> int:
    """Check an exported log's chain (and against a reported head); entries checked.

    Raises ``digest-mismatch`` naming the first entry whose link or hash is wrong.
    """
    try:
        seq = int(data["checkpoint"]["seq"])
        prev = bytes.fromhex(data["checkpoint"]["hash"])
        entries = [(Entry.from_dict(d), d.get("hash")) for d in data["entries"]]
    except (KeyError, TypeError, ValueError) as ex:
        raise error("malformed-message", f"event log export: {ex}") from None
    for entry, claimed in entries:
        if entry.seq != seq or entry.prev != prev:
            raise error("digest-mismatch", f"event log broken at entry {entry.seq}")
        if claimed is not None and claimed != entry.hash.hex():
            raise error("digest-mismatch", f"event log entry {entry.seq} was edited")
        prev = entry.hash
        seq += 1
    if head is not None and (seq, prev) != (head[0], head[1]):
        raise error("digest-mismatch", "event log does not end at the reported head")
    return len(entries)
