"""docs/DEVELOPING.md, the contract between our packages, names only what exists.

- every dotted name `gsmgw.x.y[.Name[.attr]]` it cites resolves (module, then attributes: a
  class attribute, a dataclass or Protocol field, or an attribute its methods set on self);
- every `from gsmgw.x import a, b` in its code blocks imports;
- every method its code blocks call on a journal (`j.`), a spool, the bus, the simulated network
  (`net.`) or the context (`ctx.`) exists on that class;
- and, the other way round, every method of the journal's Protocols is written down.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "DEVELOPING.md"
TEXT = DOC.read_text(encoding="utf-8")
CODE = "\n".join(re.findall(r"```(?:python|sh)?\n(.*?)```", TEXT, re.S))


def _has(owner: object, name: str) -> bool:
    if hasattr(owner, name):
        return True
    if not inspect.isclass(owner):
        return False
    for cls in owner.__mro__:
        if name in getattr(cls, "__annotations__", {}):
            return True
        if dataclasses.is_dataclass(cls) and name in {f.name for f in dataclasses.fields(cls)}:
            return True
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        if re.search(rf"\bself\.{re.escape(name)}\b\s*(:[^=\n]*)?=", source):
            return True
    return False


def resolve(dotted: str) -> str | None:
    """None when `dotted` names something that exists, else what is missing."""
    parts = dotted.split(".")
    module = None
    taken = 0
    for end in range(len(parts), 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:end]))
        except ModuleNotFoundError:
            continue
        taken = end
        break
    if module is None:
        return f"no module {dotted}"
    owner: object = module
    for name in parts[taken:]:
        if not _has(owner, name):
            return f"{'.'.join(parts[:parts.index(name)])} has no {name}"
        owner = getattr(owner, name, None)
        if owner is None:
            break  # a field or an attribute set in __init__: nothing below it to check
    return None


# A file name (STATE/gsmgw.lock, systemd/gsmgw.service) is not a Python name.
DOTTED = sorted(set(re.findall(r"(?<![/\w.-])gsmgw(?:\.[A-Za-z_]\w*)+", TEXT)))


@pytest.mark.parametrize("dotted", DOTTED)
def test_every_dotted_name_resolves(dotted):
    assert resolve(dotted.rstrip(".")) is None, f"DEVELOPING.md cites {dotted}: {resolve(dotted)}"


def _imports() -> list[tuple[str, str]]:
    found = []
    for module, names in re.findall(r"from (gsmgw[\w.]*) import \(([^)]*)\)", CODE, re.S) + re.findall(
        r"from (gsmgw[\w.]*) import ([^(\n][^\n]*)", CODE
    ):
        for line in names.splitlines():
            line = line.split("#", 1)[0]
            for name in line.split(","):
                name = name.strip().split(" as ")[0].strip()
                if re.fullmatch(r"[A-Za-z_]\w*", name):
                    found.append((module, name))
    return found


def test_every_import_in_its_code_blocks_works():
    missing = [f"from {module} import {name}" for module, name in _imports()
               if not _has(importlib.import_module(module), name)]
    assert _imports() and not missing, missing


def _receivers():
    from gsmgw.daemon.context import GatewayContext
    from gsmgw.daemon.events import EventBus
    from gsmgw.sim import SimNetwork
    from gsmgw.spool.journal import ClusterJournal, Journal, SqliteJournal
    from gsmgw.spool.journal.postgresql import PostgresJournal
    from gsmgw.spool.store import Spool

    return {
        "j": (Journal, ClusterJournal, SqliteJournal, PostgresJournal),
        "spool": (Spool,),
        "bus": (EventBus,),
        "net": (SimNetwork,),
        "ctx": (GatewayContext,),
    }


def test_every_method_its_code_blocks_call_exists():
    missing = []
    for receiver, classes in _receivers().items():
        for name in sorted(set(re.findall(rf"(?<![\w.]){receiver}\.([A-Za-z_]\w*)", CODE))):
            if not any(_has(cls, name) for cls in classes):
                missing.append(f"{receiver}.{name}")
    assert not missing, f"DEVELOPING.md calls what does not exist: {missing}"


def test_every_journal_method_is_written_down():
    from gsmgw.spool.journal import ClusterJournal, Journal

    methods = {name for protocol in (Journal, ClusterJournal) for name, value in vars(protocol).items()
               if callable(value) and not name.startswith("_")}
    unwritten = sorted(name for name in methods if not re.search(rf"\bj\.{name}\b", CODE))
    assert methods and not unwritten, f"journal methods DEVELOPING.md does not name: {unwritten}"
