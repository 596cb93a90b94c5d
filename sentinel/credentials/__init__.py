"""Symbol text → Credential: the EU DCC chain, ID documents, health codes."""

from sentinel.credentials.model import (
    Credential,
    CredentialKind,
    Recovery,
    TestResult,
    Vaccination,
)

__all__ = ["Credential", "CredentialKind", "Recovery", "TestResult", "Vaccination"]
