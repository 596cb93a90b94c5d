"""Which sound (and spoken prompt) each result gets: sentinel.web.cues via the hub."""

from __future__ import annotations

from datetime import UTC, datetime

from sentinel.journal import Event
from sentinel.policy import Decision
from sentinel.reasons import ReasonCode, is_admit
from sentinel.web.cues import PROMPTS, STAFF_REASONS, cue_for
from sentinel.web.hub import decision_message


def test_every_reason_has_a_cue_and_a_spoken_prompt() -> None:
    for r in ReasonCode:
        cue, prompt = cue_for(r.value)
        assert prompt in PROMPTS, r
        assert (cue == "admit") == is_admit(r), r
        assert (cue == "staff") == (r in STAFF_REASONS), r
    assert cue_for("NOT_A_CODE") == ("staff", "staff")  # unknown: a person must look
    assert cue_for("EXPIRED") == ("refuse", "refused")
    assert cue_for("CODE_EXPIRED") == ("refuse", "refresh")
    assert cue_for("UNREADABLE") == ("refuse", "retry")


def test_the_kiosk_message_carries_the_cue() -> None:
    t = datetime(2022, 5, 1, tzinfo=UTC)
    for reason, cue in (
        (ReasonCode.ADMIT, "admit"),
        (ReasonCode.TEST_TOO_OLD, "refuse"),
        (ReasonCode.BAD_SIGNATURE, "staff"),
    ):
        kind = "admit" if is_admit(reason) else "refuse"
        msg = decision_message(Event(t, "v", "g", kind, reason.value, "dcc"), Decision.of(reason))
        assert msg["cue"] == cue
    ov = decision_message(Event(t, "v", "g", "override", "OVERRIDE", ""), None)
    assert ov["cue"] == "admit" and ov["verdict"] == "admit"
