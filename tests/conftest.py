"""Shared fixtures: a demo issuing authority with real keys, a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sentinel.authority import dcc_issue as di
from sentinel.credentials.trustlist import TrustList

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def now() -> datetime:
    return NOW


@pytest.fixture(scope="session")
def signer() -> di.IssuerKey:
    return di.make_signer(
        "XX",
        not_before=datetime(2021, 1, 1, tzinfo=UTC),
        not_after=datetime(2030, 1, 1, tzinfo=UTC),
    )


@pytest.fixture(scope="session")
def rsa_signer() -> di.IssuerKey:
    return di.make_signer(
        "XX",
        rsa_key=True,
        not_before=datetime(2021, 1, 1, tzinfo=UTC),
        not_after=datetime(2030, 1, 1, tzinfo=UTC),
    )


@pytest.fixture(scope="session")
def trust(signer: di.IssuerKey, rsa_signer: di.IssuerKey) -> TrustList:
    return TrustList.from_certificates([signer.der, rsa_signer.der], country="XX")
