"""The cached credential set on the device: signed bundles, the SQLite store, sync (the
publisher is the authority's: ``sentinel/authority/publish.py``)."""

from sentinel.trust.provider import (
    FileTrust,
    StaticTrust,
    StatusEntry,
    StatusLookup,
    TrustProvider,
)

__all__ = ["FileTrust", "StaticTrust", "StatusEntry", "StatusLookup", "TrustProvider"]
