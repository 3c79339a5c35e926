"""Simulated flash/NV memory: named pages, explicit writes, injectable power loss, records.

Every persistent change a meter makes is one call to ``Storage.write`` or ``Storage.erase``
(a page program or a sector erase). A test can arm a power loss that strikes just before the
n-th next write, optionally tearing it (half the page written), which is how the fault
suite reaches every crash point. On top of pages, ``Records`` keeps small crash-consistent
records: two copies per record, each with a sequence number and CRC, the newer valid one wins.
"""

from __future__ import annotations

import os
import struct
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbor2

from amiup.errors import error

PAGE_SIZE = 4096
"""Bytes per flash page of an image slot."""


class PowerLoss(BaseException):
    """The power failed just before a write; RAM state is gone, call ``Meter.boot``.

    A ``BaseException`` (like ``KeyboardInterrupt``): no ``except Exception`` in the firmware
    or its libraries may swallow a power cut.
    """


class Storage(ABC):
    """Pages by name; ``write``/``erase`` are the only mutations and the crash points."""

    def __init__(self) -> None:
        self.writes = 0
        self._countdown: int | None = None
        self._torn = False

    def arm_power_loss(self, n: int, *, torn: bool = False) -> None:
        """Lose power before the n-th next mutation (0 = the very next); ``torn`` half-writes it."""
        if n < 0:
            raise error("invalid-argument", "power-loss countdown must be >= 0")
        self._countdown = n
        self._torn = torn

    def disarm(self) -> None:
        """Cancel an armed power loss."""
        self._countdown = None

    def _strike(self) -> bool:
        """Count one mutation; True when the armed power loss hits this one."""
        self.writes += 1
        if self._countdown is None:
            return False
        if self._countdown == 0:
            self._countdown = None
            return True
        self._countdown -= 1
        return False

    def write(self, key: str, data: bytes) -> None:
        """Program page ``key`` with ``data`` (atomic unless a torn power loss hits it)."""
        if self._strike():
            if self._torn:
                self._put(key, bytes(data[: len(data) // 2]))
            raise PowerLoss(f"before write of {key}")
        self._put(key, bytes(data))

    def erase(self, prefix: str) -> None:
        """Erase every page whose name starts with ``prefix`` (a sector erase)."""
        if self._strike():
            if self._torn:
                for key in self.keys(prefix)[::2]:
                    self._del(key)
            raise PowerLoss(f"before erase of {prefix}")
        self._erase_all(prefix)

    def _erase_all(self, prefix: str) -> None:
        for key in self.keys(prefix):
            self._del(key)

    @abstractmethod
    def read(self, key: str) -> bytes | None:
        """The page's bytes, or None if erased/never written."""

    @abstractmethod
    def keys(self, prefix: str) -> list[str]:
        """Names of written pages that start with ``prefix``, sorted."""

    @abstractmethod
    def _put(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def _del(self, key: str) -> None: ...


class MemoryStorage(Storage):
    """Pages in a dict: fast, for tests and the simulator; ``snapshot``/``clone`` for faults."""

    def __init__(self, pages: dict[str, bytes] | None = None) -> None:
        super().__init__()
        self._pages: dict[str, bytes] = dict(pages or {})

    def read(self, key: str) -> bytes | None:
        return self._pages.get(key)

    def keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self._pages if k.startswith(prefix))

    def _put(self, key: str, data: bytes) -> None:
        self._pages[key] = data

    def _del(self, key: str) -> None:
        self._pages.pop(key, None)

    def clone(self) -> MemoryStorage:
        """An independent copy of the flash contents (counters reset)."""
        return MemoryStorage(self._pages)

    def snapshot(self) -> dict[str, bytes]:
        """The pages as a dict (shared bytes; pages are immutable)."""
        return dict(self._pages)


class DirStorage(Storage):
    """Pages as files under a directory; each write is temp-file + rename, so a ``kill -9``
    of the process is exactly a power loss between two writes."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = False) -> None:
        super().__init__()
        self.root = Path(root)
        self._root = str(self.root)
        self.fsync = fsync
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as ex:
            raise error("io-error", f"cannot create {self.root}: {ex.strerror}") from None

    def _path(self, key: str) -> str:
        """A plain string path (pathlib interns every part: a global table per page name)."""
        parts = key.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise error("invalid-argument", f"bad page name {key!r}")
        return os.path.join(self._root, *parts)

    def read(self, key: str) -> bytes | None:
        try:
            with open(self._path(key), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None
        except OSError as ex:
            raise error("io-error", f"read {key}: {ex.strerror}") from None

    def keys(self, prefix: str) -> list[str]:
        return sorted(key for key, _path in self._iter_keys(prefix))

    def _iter_keys(self, prefix: str) -> Iterator[tuple[str, str]]:
        """(key, file path) of pages under ``prefix``'s folder, scanned lazily."""
        head, _, _ = prefix.rpartition("/")
        base = self._path(head) if head else self._root
        if not os.path.isdir(base):
            return
        stack = [(base, head)]
        while stack:
            folder, rel = stack.pop()
            with os.scandir(folder) as it:
                for entry in it:
                    key = f"{rel}/{entry.name}" if rel else entry.name
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((entry.path, key))
                    elif key.startswith(prefix) and not entry.name.startswith(".tmp-"):
                        yield key, entry.path

    def _erase_all(self, prefix: str) -> None:
        """Unlink while scanning (no list of names: bounded memory for big slots)."""
        try:
            for _key, path in self._iter_keys(prefix):
                os.unlink(path)
        except OSError as ex:
            raise error("io-error", f"erase {prefix}: {ex.strerror}") from None

    def _put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        folder, name = os.path.split(path)
        tmp = os.path.join(folder, f".tmp-{name}")
        try:
            os.makedirs(folder, exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(data)
                if self.fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as ex:
            raise error("io-error", f"write {key}: {ex.strerror}") from None

    def _del(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass
        except OSError as ex:
            raise error("io-error", f"erase {key}: {ex.strerror}") from None


_REC = struct.Struct(">2sQI")  # magic, sequence, length
_MAGIC = b"R1"


def seal(seq: int, payload: bytes) -> bytes:
    """A record page: header, payload, CRC-32 over both."""
    body = _REC.pack(_MAGIC, seq, len(payload)) + payload
    return body + struct.pack(">I", zlib.crc32(body))


def unseal(page: bytes | None) -> tuple[int, bytes] | None:
    """(sequence, payload) of an intact record page, None if erased, torn or corrupt."""
    if page is None or len(page) < _REC.size + 4:
        return None
    magic, seq, length = _REC.unpack_from(page)
    if magic != _MAGIC or len(page) != _REC.size + length + 4:
        return None
    body, (crc,) = page[:-4], struct.unpack(">I", page[-4:])
    if zlib.crc32(body) != crc:
        return None
    return seq, body[_REC.size:]


class Records:
    """Crash-consistent small records (CBOR values), double-buffered with sequence + CRC.

    A save writes the copy that is not the newest valid one, so a power loss (even a torn
    write) leaves the previous value readable: every record is always old or new, never mixed.
    """

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._seq: dict[str, tuple[int, int]] = {}  # name -> (seq, copy index of newest)

    def load(self, name: str) -> Any:
        """The newest intact value of ``name``, or None if it was never saved."""
        best: tuple[int, int, bytes] | None = None
        for copy in (0, 1):
            got = unseal(self.storage.read(f"rec/{name}/{copy}"))
            if got is not None and (best is None or got[0] > best[0]):
                best = (got[0], copy, got[1])
        if best is None:
            self._seq[name] = (0, 1)
            return None
        self._seq[name] = (best[0], best[1])
        return cbor2.loads(best[2])

    def save(self, name: str, value: Any) -> None:
        """Write ``value`` to the older copy with the next sequence number."""
        if name not in self._seq:
            self.load(name)
        seq, copy = self._seq[name]
        target = 1 - copy
        page = seal(seq + 1, cbor2.dumps(value, canonical=True))
        self.storage.write(f"rec/{name}/{target}", page)
        self._seq[name] = (seq + 1, target)
