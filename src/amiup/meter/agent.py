"""The per-component upgrade state machine, as data: ``TABLE[state][event] -> next state``.

Kept apart from the device so the docs can draw it and tests can walk it (h11's habit). A
missing entry is a protocol error (``invalid-state``) that leaves the state unchanged. The
device persists the state in the component record with the slots it describes, so a
transition and the slot change it implies are one atomic record write.
"""

from __future__ import annotations

from amiup.errors import error

STATES: tuple[str, ...] = (
    "idle", "receiving", "received", "verifying", "verified", "scheduled", "activating",
    "trial", "committed", "reverted", "failed",
)
TERMINAL = frozenset({"idle", "committed", "reverted", "failed"})
"""States in which a new offer starts a new transfer."""
PENDING = frozenset({"receiving", "received", "verified", "scheduled"})
"""States that hold a transfer or a staged image a cancel can drop."""

_NEW = {"offer": "receiving"}
TABLE: dict[str, dict[str, str]] = {
    "idle": dict(_NEW),
    "receiving": {"offer": "receiving", "block": "receiving", "complete": "received",
                  "cancel": "idle", "fail": "failed"},
    "received": {"offer": "received", "block": "received", "verify": "verifying",
                 "cancel": "idle", "fail": "failed"},
    "verifying": {"verify_ok": "verified", "fail": "failed", "power_loss": "received"},
    "verified": {"offer": "receiving", "activate": "activating", "schedule": "scheduled",
                 "cancel": "idle"},
    "scheduled": {"offer": "receiving", "activate": "activating", "schedule": "scheduled",
                  "cancel": "idle"},
    "activating": {"started": "trial", "boot_fail": "reverted"},
    "trial": {"self_test_ok": "committed", "contact": "committed", "self_test_fail": "reverted",
              "boot_fail": "reverted", "timeout": "reverted"},
    "committed": dict(_NEW),
    "reverted": dict(_NEW),
    "failed": {**_NEW, "cancel": "idle"},
}


def step(state: str, event: str) -> str:
    """The next state, or ``invalid-state`` naming what was refused."""
    nxt = TABLE.get(state, {}).get(event)
    if nxt is None:
        raise error("invalid-state", f"{event!r} is not allowed in state {state!r}")
    return nxt


def mermaid() -> str:
    """The table as a Mermaid state diagram (docs/meter.md is drawn from this)."""
    lines = ["stateDiagram-v2"]
    for src, moves in TABLE.items():
        for event, dst in moves.items():
            lines.append(f"    {src} --> {dst}: {event}")
    return "\n".join(lines)
