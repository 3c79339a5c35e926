"""Campaign and assignment state machines as data: which transition is legal from where.

Two tables, in the h11 habit: ``{state: {event: next_state}}``. The scheduler never writes a
state it did not look up here, and every write is a conditional update on the state it read
(``UPDATE ... WHERE id = ? AND state = ?``), so a duplicate, late or concurrent event is a
no-op instead of a corruption. ``docs/campaigns.md`` draws both tables from this module.

Assignment progress states are ordered (``RANK``): a report from the head-end says "this
meter has reached state S", and it applies only while the assignment is active and below S.
That makes reports idempotent and order-insensitive (a late ``transferring`` after
``verified`` changes nothing). ``confirmed`` is reachable only from a version read back from
the meter (UMS-8), never from the end of a transfer.
"""

from __future__ import annotations

from functools import cache
from typing import Final

# -- campaign lifecycle ------------------------------------------------------------------

DRAFT: Final = "draft"
APPROVED: Final = "approved"
RUNNING: Final = "running"
PAUSED: Final = "paused"
HALTED: Final = "halted"
COMPLETED: Final = "completed"
CANCELLED: Final = "cancelled"

CAMPAIGN_STATES: Final = (DRAFT, APPROVED, RUNNING, PAUSED, HALTED, COMPLETED, CANCELLED)
CAMPAIGN_FINAL: Final = frozenset({COMPLETED, CANCELLED})

# event -> next state, per current state. "halt" and "complete" are the scheduler's own.
CAMPAIGN_TABLE: Final[dict[str, dict[str, str]]] = {
    DRAFT: {"approve": APPROVED, "cancel": CANCELLED},
    APPROVED: {"start": RUNNING, "cancel": CANCELLED},
    RUNNING: {"pause": PAUSED, "halt": HALTED, "complete": COMPLETED, "cancel": CANCELLED},
    PAUSED: {"resume": RUNNING, "cancel": CANCELLED},
    HALTED: {"resume": RUNNING, "retry": RUNNING, "cancel": CANCELLED},
    COMPLETED: {"retry": RUNNING},
    CANCELLED: {},
}


def campaign_next(state: str, event: str) -> str | None:
    """Next campaign state for ``event`` in ``state``, or None when the event is not legal."""
    return CAMPAIGN_TABLE.get(state, {}).get(event)


def campaign_sources(event: str) -> tuple[str, ...]:
    """Every campaign state from which ``event`` is legal (for the conditional UPDATE)."""
    return tuple(s for s in CAMPAIGN_STATES if event in CAMPAIGN_TABLE[s])


# -- assignment (one meter component in one campaign) -------------------------------------

PENDING: Final = "pending"
OFFERED: Final = "offered"
TRANSFERRING: Final = "transferring"
TRANSFERRED: Final = "transferred"
VERIFIED: Final = "verified"
SCHEDULED: Final = "scheduled"
ACTIVATED: Final = "activated"
CONFIRMED: Final = "confirmed"
FAILED: Final = "failed"
EXPIRED: Final = "expired"

# Progress order: a head-end report "reached S" moves an active assignment forward only.
PROGRESS: Final = (
    PENDING, OFFERED, TRANSFERRING, TRANSFERRED, VERIFIED, SCHEDULED, ACTIVATED, CONFIRMED,
)
RANK: Final[dict[str, int]] = {s: i for i, s in enumerate(PROGRESS)}
ASSIGNMENT_STATES: Final = (*PROGRESS, FAILED, CANCELLED, EXPIRED)
TERMINAL: Final = frozenset({CONFIRMED, FAILED, CANCELLED, EXPIRED})
ACTIVE: Final = tuple(s for s in PROGRESS if s != CONFIRMED)
IN_FLIGHT: Final = tuple(s for s in ACTIVE if s != PENDING)
# States that a head-end may report; CONFIRMED is derived by the UMS from a read-back.
REPORTABLE: Final = frozenset({OFFERED, TRANSFERRING, TRANSFERRED, VERIFIED, SCHEDULED, ACTIVATED})

ASSIGNMENT_TABLE: Final[dict[str, dict[str, str]]] = {
    **{
        s: {
            **{f"reach:{t}": t for t in PROGRESS[RANK[s] + 1 :] if t in REPORTABLE},
            "readback-ok": CONFIRMED,
            "fail": FAILED,
            "retry-later": PENDING,
            "cancel": CANCELLED,
            "expire": EXPIRED,
        }
        for s in ACTIVE
    },
    CONFIRMED: {},
    FAILED: {"retry": PENDING},
    CANCELLED: {},
    EXPIRED: {"retry": PENDING},
}
# A claim is its own event: only a pending assignment can be handed to a head-end.
ASSIGNMENT_TABLE[PENDING]["claim"] = OFFERED
# Nothing retries "later" from pending itself (it is already waiting).
del ASSIGNMENT_TABLE[PENDING]["retry-later"]


def assignment_next(state: str, event: str) -> str | None:
    """Next assignment state for ``event`` in ``state``, or None when not legal."""
    return ASSIGNMENT_TABLE.get(state, {}).get(event)


def assignment_sources(event: str) -> tuple[str, ...]:
    """Every assignment state from which ``event`` is legal (for the conditional UPDATE)."""
    return tuple(s for s in ASSIGNMENT_STATES if event in ASSIGNMENT_TABLE[s])


@cache
def reach_sources(target: str) -> tuple[str, ...]:
    """Active states below ``target``: where a head-end report "reached target" applies."""
    return assignment_sources(f"reach:{target}")
