"""What a MongoDB client sends: a command listener tests attach to count or inspect commands."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from pymongo import AsyncMongoClient, monitoring
from signpost.shared.mongo import Database, Document
from signpost.shared.service import Runtime


class SentCommands(monitoring.CommandListener):
    """Every command the client starts, oldest first; `clear()` to count from a point on."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, dict[str, Any]]] = []  # (name, command)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def clear(self) -> None:
        self.commands.clear()

    def names(self, *collections: str) -> list[str]:
        """The names of the commands sent to these collections (to any, when none are given)."""
        return [
            name for name, command in self.commands if not collections or command.get(name) in collections
        ]

    def named(self, name: str, collection: str | None = None) -> list[dict[str, Any]]:
        """The commands of this name (sent to `collection`, when given)."""
        return [
            command
            for sent, command in self.commands
            if sent == name and (collection is None or command.get(name) == collection)
        ]


@asynccontextmanager
async def watched(
    runtime: Runtime, db: Database | None = None
) -> AsyncIterator[tuple[Runtime, SentCommands]]:
    """`runtime` on a client of its own that records every command it sends (to `db`'s database,
    when given, else the runtime's), and those commands."""
    sent = SentCommands()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        runtime.settings.mongodb_url, tz_aware=True, event_listeners=[sent]
    )
    try:
        yield replace(runtime, client=client, db=client[(db if db is not None else runtime.db).name]), sent
    finally:
        await client.close()
