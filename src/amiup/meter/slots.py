"""Image slots and the transfer area as flash pages, read and written as streams.

Two slots per component (SM-10) hold whole images in ``PAGE_SIZE`` pages; which slot runs is
decided by the component record, never by page contents, so a half-written staged slot is
harmless. The transfer area keeps received payload blocks, one page each, tagged with the
transfer id, index and a CRC: the received-bitmap is rebuilt from them at boot, so a block
costs exactly one write and a power loss loses at most the block being written.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections.abc import Callable, Iterator

from amiup.meter.storage import PAGE_SIZE, Storage

_BLK = struct.Struct(">III")  # transfer id, index, length


def slot_prefix(component: str, slot: int) -> str:
    return f"slot/{component}/{slot}/"


def xfer_prefix(component: str) -> str:
    return f"xfer/{component}/"


def plain_prefix(component: str) -> str:
    """Scratch pages for a decrypted delta patch (detools needs to seek in the patch)."""
    return f"plain/{component}/"


class SlotWriter:
    """Streams an image into pages under ``prefix``, hashing as it goes (one page in RAM)."""

    def __init__(self, storage: Storage, prefix: str) -> None:
        self.storage = storage
        self.prefix = prefix
        self._buf = bytearray()
        self._page = 0
        self.size = 0
        self._hash = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._buf += data
        self.size += len(data)
        self._hash.update(data)
        while len(self._buf) >= PAGE_SIZE:
            self._flush(bytes(self._buf[:PAGE_SIZE]))
            del self._buf[:PAGE_SIZE]
        return len(data)

    def _flush(self, page: bytes) -> None:
        self.storage.write(f"{self.prefix}{self._page:06d}", page)
        self._page += 1

    def close(self) -> str:
        """Write the last partial page; the hex SHA-256 of everything written."""
        if self._buf:
            self._flush(bytes(self._buf))
            self._buf.clear()
        return self._hash.hexdigest()


class PagedReader(io.RawIOBase):
    """A seekable read-only file over fixed-size pages fetched one at a time."""

    def __init__(self, size: int, page_size: int, fetch: Callable[[int], bytes | None]) -> None:
        super().__init__()
        self.size = size
        self.page_size = page_size
        self._fetch = fetch
        self._pos = 0
        self._cache: tuple[int, bytes] = (-1, b"")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _page(self, n: int) -> bytes:
        if self._cache[0] != n:
            self._cache = (n, self._fetch(n) or b"")
        return self._cache[1]

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        want = min(len(buf), self.size - self._pos)
        done = 0
        while done < want:
            page_no, off = divmod(self._pos, self.page_size)
            chunk = self._page(page_no)[off:off + want - done]
            if not chunk:
                break
            buf[done:done + len(chunk)] = chunk
            done += len(chunk)
            self._pos += len(chunk)
        return done


def slot_reader(storage: Storage, prefix: str, size: int) -> PagedReader:
    """A seekable file over the image pages under ``prefix``."""
    return PagedReader(size, PAGE_SIZE, lambda n: storage.read(f"{prefix}{n:06d}"))


def transfer_reader(storage: Storage, component: str, transfer_id: int,
                   block_size: int, size: int) -> PagedReader:
    """A seekable file over a transfer's received blocks (the patch stream for detools)."""
    return PagedReader(size, block_size,
                       lambda n: read_block(storage, component, transfer_id, n))


def slot_digest(storage: Storage, prefix: str, size: int) -> str:
    """Hex SHA-256 of the first ``size`` bytes under ``prefix``, streamed."""
    h = hashlib.sha256()
    reader = slot_reader(storage, prefix, size)
    while chunk := reader.read(PAGE_SIZE):
        h.update(chunk)
    return h.hexdigest() if reader.tell() == size else ""


def block_page(transfer_id: int, index: int, data: bytes) -> bytes:
    """A transfer-area page: header, block data, CRC over both."""
    body = _BLK.pack(transfer_id, index, len(data)) + data
    return body + struct.pack(">I", zlib.crc32(body))


def read_block(storage: Storage, component: str, transfer_id: int, index: int) -> bytes | None:
    """The data of block ``index`` if its page is intact and belongs to ``transfer_id``."""
    page = storage.read(f"{xfer_prefix(component)}{index:06d}")
    if page is None or len(page) < _BLK.size + 4:
        return None
    tid, idx, length = _BLK.unpack_from(page)
    if (tid, idx) != (transfer_id, index) or len(page) != _BLK.size + length + 4:
        return None
    if zlib.crc32(page[:-4]) != struct.unpack(">I", page[-4:])[0]:
        return None
    return page[_BLK.size:-4]


def block_length(index: int, n_blocks: int, block_size: int, payload_size: int) -> int:
    """Expected length of block ``index`` (the last one may be short)."""
    if index < n_blocks - 1:
        return block_size
    return payload_size - block_size * (n_blocks - 1)


def scan_bitmap(storage: Storage, component: str, transfer_id: int, n_blocks: int,
                block_size: int, payload_size: int) -> bytearray:
    """Rebuild the received-bitmap from intact pages of this transfer (boot recovery)."""
    bitmap = bytearray((n_blocks + 7) // 8)
    for key in storage.keys(xfer_prefix(component)):
        try:
            index = int(key.rsplit("/", 1)[1])
        except ValueError:
            continue
        if index >= n_blocks:
            continue
        data = read_block(storage, component, transfer_id, index)
        if data is not None and len(data) == block_length(index, n_blocks, block_size,
                                                          payload_size):
            bitmap[index // 8] |= 1 << (index % 8)
    return bitmap


def iter_payload(storage: Storage, component: str, transfer_id: int,
                 n_blocks: int) -> Iterator[bytes]:
    """The received payload, block by block (callers have checked completeness)."""
    for index in range(n_blocks):
        data = read_block(storage, component, transfer_id, index)
        if data is None:
            raise LookupError(f"block {index} vanished")
        yield data
