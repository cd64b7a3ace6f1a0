"""What a MongoDB client sends: a command listener tests attach to count or inspect commands."""

from __future__ import annotations

from typing import Any

from pymongo import monitoring


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
