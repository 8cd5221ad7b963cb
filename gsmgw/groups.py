"""Groups of numbers under one name space: the config's (`groups:`) and the console's.

`group:NAME` in a spool file, over HTTP, over SMPP and in the console means either kind
(WEB.md). A console group cannot take a config group's name (the console refuses it), and a
config group added later with the same name wins, so a name never means two lists.
Members are E.164 numbers. `console` is one dict the console updates in place, so every holder
of this book (the daemon's file reader, the client registry, the SMPP server) sees an edit at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping


class GroupBook(Mapping[str, tuple[str, ...]]):
    def __init__(self, config_groups: Mapping[str, tuple[str, ...]] | None = None,
                 console_groups: Mapping[str, tuple[str, ...]] | None = None):
        self.config: Mapping[str, tuple[str, ...]] = config_groups or {}
        self.console: dict[str, tuple[str, ...]] = dict(console_groups or {})

    def __getitem__(self, name: str) -> tuple[str, ...]:
        if name in self.config:
            return tuple(self.config[name])
        return self.console[name]

    def __contains__(self, name: object) -> bool:
        return name in self.config or name in self.console

    def __iter__(self) -> Iterator[str]:
        yield from self.config
        yield from (name for name in self.console if name not in self.config)

    def __len__(self) -> int:
        return len(self.config) + sum(1 for name in self.console if name not in self.config)

    def is_config_group(self, name: str) -> bool:
        return name in self.config

    def set_console_group(self, name: str, members: tuple[str, ...] | None) -> None:
        """Replace (or with None remove) a console group, in place for every holder."""
        if members is None:
            self.console.pop(name, None)
        else:
            self.console[name] = tuple(members)
