"""Fleet: journal events → SQLite outbox → MQTT broker → central PostgreSQL; heartbeats."""

from sentinel.fleet.outbox import EXPORT_FIELDS, Outbox, export_payload

__all__ = ["EXPORT_FIELDS", "Outbox", "export_payload"]
