"""Credential: what a decision needs to know, and nothing more (minimized)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum


class CredentialKind(StrEnum):
    DCC_VACCINATION = "dcc-vaccination"
    DCC_TEST = "dcc-test"
    DCC_RECOVERY = "dcc-recovery"
    HEALTH_CODE = "health-code"
    ID_DOCUMENT = "id-document"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Vaccination:
    dose_number: int
    series_doses: int
    vaccinated_on: date
    product: str  # mp, e.g. EU/1/20/1528
    disease: str  # tg, 840539006 = COVID-19


@dataclass(frozen=True, slots=True)
class TestResult:
    __test__ = False  # not a pytest class

    test_type: str  # tt, LP6464-4 (NAAT) or LP217198-3 (RAT)
    sampled_at: datetime  # sc, timezone-aware
    not_detected: bool  # tr == 260415000
    disease: str


@dataclass(frozen=True, slots=True)
class Recovery:
    first_positive_on: date  # fr
    valid_from: date  # df
    valid_until: date  # du
    disease: str


@dataclass(frozen=True, slots=True)
class Credential:
    """A verified (signature-checked) credential, minimized for the decision.

    ``display_name`` is masked (``B**** A*****, 1974``) for staff to compare with the
    person; ``holder_pseudonym`` is a keyed hash used only to count repeat refusals.
    ``revocation_keys`` are the hashes a revocation list is matched against.
    """

    kind: CredentialKind
    issuer_kid: str = ""
    issuer_country: str = ""
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    vaccination: Vaccination | None = None
    test: TestResult | None = None
    recovery: Recovery | None = None
    status: str | None = None  # green / yellow / red (health codes, ID documents)
    status_valid_until: datetime | None = None
    holder_pseudonym: str = ""
    display_name: str = ""
    revocation_keys: tuple[str, ...] = ()
