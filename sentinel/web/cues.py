"""What the kiosk plays for a result: a cue (tone) and a spoken prompt family.

Three cues, told apart by ear alone (pitch contour and rhythm, kiosk.js):
``admit`` (two rising notes), ``refuse`` (two low falling notes) and ``staff`` (three
quick mid notes: the visitor cannot fix it alone; staff must look).  Each refusal also
names a prompt family, spoken zh then en when the prompt files exist (espeak-ng at
install time, scripts/make_prompts.py).  No personal data is ever spoken.
"""

from __future__ import annotations

from pathlib import Path

from sentinel.reasons import ReasonCode, is_admit

LANGS = ("zh", "en")

# Refusals staff must handle: forgery, revocation, red status, a changed health status,
# identity mismatch, a reused code, no or stale trust data, device alarms.
STAFF_REASONS = frozenset(
    {
        ReasonCode.BAD_SIGNATURE,
        ReasonCode.REVOKED,
        ReasonCode.STATUS_RED,
        ReasonCode.CODE_RED,
        ReasonCode.CODE_STATUS_CHANGED,
        ReasonCode.CODE_REPLAY,
        ReasonCode.IDENTITY_MISMATCH,
        ReasonCode.NO_TRUST_DATA,
        ReasonCode.DATA_STALE,
        ReasonCode.CAMERA_FAULT,
        ReasonCode.DOOR_FORCED,
        ReasonCode.DOOR_HELD_OPEN,
    }
)
_RETRY = {
    ReasonCode.UNREADABLE,
    ReasonCode.MALFORMED,
    ReasonCode.TOO_LARGE,
    ReasonCode.SCHEMA_INVALID,
    ReasonCode.ID_UNREADABLE,
}
_REFRESH = {ReasonCode.CODE_EXPIRED, ReasonCode.CODE_NOT_YET_VALID}
_MORE = {ReasonCode.SECOND_CREDENTIAL_REQUIRED, ReasonCode.ID_REQUIRED}

# Prompt family -> (Chinese, English) spoken text.
PROMPTS: dict[str, tuple[str, str]] = {
    "welcome": ("请进", "Please enter"),
    "retry": ("请重新出示", "Please show it again"),
    "refresh": ("请刷新您的健康码", "Please refresh your code"),
    "more": ("请出示其他证明", "Please show another document"),
    "refused": ("不能入场", "Entry not possible"),
    "staff": ("请稍候，工作人员马上来", "Please wait, staff will help you"),
}

# Hints (not decisions: nothing journaled, no cue) -> (Chinese, English) shown on the idle
# screen.  "人像面": the side with the photo and the number, unambiguous where "正面" is not.
HINTS: dict[str, tuple[str, str]] = {
    "card_back": ("请翻转证件，出示人像面", "Please turn the card over: the side with your photo"),
    # a QR code the camera sees but cannot read for a second (too far, tilted, moving)
    "code_unreadable": ("请将二维码正对摄像头，保持不动", "Hold the code still, facing the camera"),
}


def cue_for(reason: str) -> tuple[str, str]:
    """(cue, prompt family) for a reason code value; unknown codes: staff."""
    try:
        r = ReasonCode(reason)
    except ValueError:
        return "staff", "staff"
    if is_admit(r):
        return "admit", "welcome"
    if r in STAFF_REASONS:
        return "staff", "staff"
    if r in _RETRY:
        return "refuse", "retry"
    if r in _REFRESH:
        return "refuse", "refresh"
    if r in _MORE:
        return "refuse", "more"
    return "refuse", "refused"


SOUNDS_DIR = Path(__file__).parent / "static" / "sounds"


def prompts_installed(directory: Path = SOUNDS_DIR) -> bool:
    """True when every prompt file exists in both languages (made at install time)."""
    return all((directory / f"{fam}-{lang}.wav").is_file() for fam in PROMPTS for lang in LANGS)
