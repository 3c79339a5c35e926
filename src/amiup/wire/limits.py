"""Wire limits: every length a peer can send has a cap, kept in one config dataclass."""

from __future__ import annotations

from dataclasses import dataclass

WIRE_VERSION = 3
"""Version of the message encoding; the first item of every encoded message.

2: ``coded``, ``running`` and ``gathered`` messages; ``missing.have``; ``get_status.brief``
and ``gather_ms``. 3: the read-back's compact forms (``amiup.wire.brief``): meters named by
4-byte short ids (``gathered``, ``get_status.meters``), states by one-byte codes
(``running``, ``gathered``)."""


@dataclass(frozen=True, slots=True)
class WireLimits:
    """Caps checked before anything is decoded or stored (endless-data attack).

    The defaults fit a meter with a few KiB of RAM for the receive buffer: a manifest is
    well under 2 KiB (architecture.md) and its signed header a few hundred bytes more, a
    block at most 4 KiB, an image at most 65536 blocks.
    """

    max_message: int = 16384
    max_block_size: int = 4096
    min_block_size: int = 16
    max_blocks: int = 65536
    max_header: int = 8192
    max_order: int = 2048
    max_text: int = 256
    max_nonce: int = 64
    max_components: int = 8
    max_depth: int = 4

    @property
    def max_bitmap(self) -> int:
        """Bytes in a missing-block bitmap of ``max_blocks`` bits."""
        return (self.max_blocks + 7) // 8


DEFAULT_LIMITS = WireLimits()
