"""Simulated firmware images: what the meter's boot loader and self-test look at.

A generated image starts with a small header (component, version, and an optional fault,
the test hook for bad images) followed by filler that is mostly shared between versions of
one component, so deltas between versions stay small as they do for real firmware. Any
image without this header is treated as good firmware: packages built from arbitrary bytes
still install, boot and pass.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import cbor2

COMPONENTS: tuple[str, ...] = ("metrology", "ami_app", "ami_comm", "han_app", "han_comm")
Fault = Literal["self-test", "no-boot", "no-contact"]
FAULTS: tuple[str, ...] = ("self-test", "no-boot", "no-contact")
_MAGIC = b"AMIFW1"
_HEADER_MAX = 250


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How an image behaves when started: the simulated hardware's view of it."""

    boots: bool = True
    self_test: bool = True
    contacts: bool = True


def make_image(component: str, version: str, *, size: int = 4096,
               fault: Fault | None = None) -> bytes:
    """A deterministic image of ``size`` bytes; ``fault`` makes it misbehave when started."""
    head = cbor2.dumps({"c": component, "v": version, "f": fault}, canonical=True)
    header = _MAGIC + bytes([len(head)]) + head
    if size < len(header):
        raise ValueError(f"image size {size} is smaller than its header")
    out = bytearray(header)
    seed = hashlib.sha256(f"amiup-fw/{component}".encode()).digest()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        counter += 1
    del out[size:]
    # A version-specific change every 1 KiB: versions differ a little, like real releases.
    mark = hashlib.sha256(f"{component}/{version}".encode()).digest()[:8]
    for pos in range(len(header) + 64, size - len(mark), 1024):
        out[pos:pos + len(mark)] = mark
    return bytes(out)


def behaviour(image_head: bytes) -> Behaviour:
    """The behaviour encoded in an image's first bytes (good if it carries no header)."""
    if not image_head.startswith(_MAGIC) or len(image_head) < len(_MAGIC) + 1:
        return Behaviour()
    n = image_head[len(_MAGIC)]
    try:
        head = cbor2.loads(image_head[len(_MAGIC) + 1:len(_MAGIC) + 1 + n])
    except Exception:
        return Behaviour()
    fault = head.get("f") if isinstance(head, dict) else None
    return Behaviour(boots=fault != "no-boot", self_test=fault != "self-test",
                     contacts=fault != "no-contact")


HEAD_BYTES = len(_MAGIC) + 1 + _HEADER_MAX
"""How many leading bytes ``behaviour`` needs."""
