"""The campaign and assignment state tables: legal moves only, forward only, confirm by read-back."""

from __future__ import annotations

from amiup.ums import states as st
from reqmark import req


@req("UMS-5")
def test_campaign_lifecycle_table() -> None:
    assert st.campaign_next("draft", "approve") == "approved"
    assert st.campaign_next("draft", "start") is None  # approval first, always
    assert st.campaign_next("approved", "start") == "running"
    assert st.campaign_next("running", "halt") == "halted"
    assert st.campaign_next("halted", "resume") == "running"
    assert st.campaign_next("paused", "resume") == "running"
    assert st.campaign_next("completed", "cancel") is None
    assert st.campaign_next("cancelled", "resume") is None
    assert set(st.campaign_sources("cancel")) == {"draft", "approved", "running", "paused",
                                                  "halted"}


@req("UMS-5", "UMS-8")
def test_reports_move_forward_only_and_never_confirm() -> None:
    assert st.assignment_next("offered", "reach:verified") == "verified"
    assert st.assignment_next("verified", "reach:transferring") is None  # late report
    assert "confirmed" not in st.REPORTABLE
    assert st.assignment_next("activated", "reach:confirmed") is None
    assert st.assignment_next("activated", "readback-ok") == "confirmed"
    assert st.reach_sources("activated") == ("pending", "offered", "transferring",
                                              "transferred", "verified", "scheduled")


@req("UMS-9", "UMS-6")
def test_final_states_and_their_only_exits() -> None:
    assert {"confirmed", "failed", "cancelled", "expired"} == st.TERMINAL
    assert st.ASSIGNMENT_TABLE["confirmed"] == {} and st.ASSIGNMENT_TABLE["cancelled"] == {}
    assert st.ASSIGNMENT_TABLE["failed"] == {"retry": "pending"}
    for s in st.ACTIVE:  # every active state can expire: nothing stays in progress forever
        assert st.assignment_next(s, "expire") == "expired"
        assert st.assignment_next(s, "cancel") == "cancelled"
    assert st.assignment_sources("claim") == ("pending",)


def test_store_and_state_module_agree() -> None:
    from amiup.ums import models

    assert tuple(models.ASSIGNMENT_STATES) == st.ASSIGNMENT_STATES
    assert tuple(models.CAMPAIGN_STATES) == st.CAMPAIGN_STATES
    assert tuple(models.ACTIVE_ASSIGNMENT_STATES) == st.ACTIVE
