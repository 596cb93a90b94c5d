"""The cached credential set: signed bundles, the SQLite store, sync, the publisher."""

from sentinel.trust.provider import (
    FileTrust,
    StaticTrust,
    StatusEntry,
    StatusLookup,
    TrustProvider,
)

__all__ = ["FileTrust", "StaticTrust", "StatusEntry", "StatusLookup", "TrustProvider"]
