"""The worker's side of the supervisor's events: every kind has its case, and its state moves
are the table's (gsmgw.daemon.pool.WORKER_MOVES)."""

from __future__ import annotations

import logging

import pytest

from gsmgw.at.modem import ModemInfo
from gsmgw.at.supervisor import EventKind, SupervisorEvent
from gsmgw.config import Defaults, ModemConfig
from gsmgw.daemon import pool
from gsmgw.daemon.inbound import Inbound
from gsmgw.daemon.outbound import Outbound, SendSettings
from gsmgw.daemon.worker import Worker
from gsmgw.spool.journal import SqliteJournal
from gsmgw.spool.store import Spool
from gsmgw.states import StateMoveRefused


@pytest.fixture
def worker(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.ensure_dirs()
    journal = SqliteJournal(tmp_path / "state" / "journal.sqlite")
    settings = SendSettings(default_country="49", defaults=Defaults(report=False), groups={}, modem_names=("gsm1",))
    made = Worker(
        ModemConfig(name="gsm1", port="/dev/gsmgw-test/gsm1"),
        journal=journal, inbound=Inbound(spool, journal, None), outbound=Outbound(spool, journal, None, settings),
        bus=None, metrics=None, fleet=lambda: {}, on_change=lambda: None,
    )
    yield made
    journal.close()


def event(kind: EventKind, **extra) -> SupervisorEvent:
    return SupervisorEvent(kind, "/dev/gsmgw-test/gsm1", **extra)


def test_another_modem_with_the_same_sim_is_taken_and_warned_about(worker, caplog):
    old = ModemInfo("/dev/gsmgw-test/gsm1", "generic", imei="350000000000001", imsi="262010000000001")
    new = ModemInfo("/dev/gsmgw-test/gsm1", "generic", imei="350000000000002", imsi="262010000000001")
    for kind in (EventKind.OPENING, EventKind.READY):
        worker._on_supervisor(event(kind, info=old))
    with caplog.at_level(logging.WARNING, logger="gsmgw.worker"):
        worker._on_supervisor(event(EventKind.MODEM_CHANGED, detail="another modem", info=new, previous=old))
    assert worker.status.imei == "350000000000002" and worker.state is pool.READY
    assert "gsm1: another modem" in caplog.text


def test_every_event_kind_moves_the_worker_along_its_table(worker):
    worker._on_supervisor(event(EventKind.OPENING))
    assert worker.state is pool.STARTING
    worker._on_supervisor(event(EventKind.READY))
    assert worker.state is pool.READY
    worker._on_supervisor(event(EventKind.RESTARTED, detail="it printed 'RDY'"))
    assert worker.state is pool.STARTING
    worker._on_supervisor(event(EventKind.RECOVERY, step="reinit"))
    worker._on_supervisor(event(EventKind.RECOVERED, step="reinit"))
    assert worker.state is pool.READY
    worker._on_supervisor(event(EventKind.ABSENT, detail="port gone"))
    assert worker.state is pool.ABSENT and worker.status.last_error == "port gone"
    with pytest.raises(StateMoveRefused, match="absent -> ready"):
        worker._set_state(pool.READY)  # a modem that was gone comes back through starting
    worker._on_supervisor(event(EventKind.STOPPED))
    assert worker.state is pool.ABSENT
