"""State machines with their moves in a table: a move the table does not list is refused.

The modem supervisor (gsmgw.at.supervisor.MOVES) and the daemon's workers
(gsmgw.daemon.pool.WORKER_MOVES) keep their states as enums and check every change here, so a
new state or a move nobody drew fails loudly instead of drifting.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

State = TypeVar("State", bound=StrEnum)


class StateMoveRefused(RuntimeError):
    """A state machine was asked for a move its table does not list (a bug, not a modem fault)."""


def check_move(table: Mapping[State, frozenset[State]], previous: State, new: State, what: str) -> None:
    """Refuse `previous -> new` unless `table[previous]` lists it; staying in a state is no move."""
    if new == previous:
        return
    allowed = table.get(previous, frozenset())
    if new not in allowed:
        raise StateMoveRefused(
            f"{what}: {previous} -> {new} is not a move of its state machine "
            f"(from {previous} it may go to {', '.join(sorted(allowed)) or 'nothing'})"
        )
