"""The status file: SPOOL.md's JSON keys, atomic rewrite, staleness, the human table."""

from __future__ import annotations

import json
import time

import pytest

from gsmgw.daemon.metrics import Metrics
from gsmgw.daemon.status import (
    MODEM_KEYS,
    QUEUE_KEYS,
    ModemStatus,
    StatusUnavailable,
    format_table,
    is_stale,
    read_status,
    snapshot,
    write_status,
)
from prometheus_client import generate_latest


def sample(now):
    modems = [
        ModemStatus("gsm1", state="ready", port="/dev/gsmgw/gsm1", imsi="262010000000001",
                    operator="Sim Net", signal_dbm=-71, registered=True),
        ModemStatus("gsm2", state="absent", last_error="port gone"),
    ]
    counters = {("gsm1", "sent"): 4, ("gsm1", "received"): 2, ("gsm2", "failed"): 1, ("", "failed"): 3}
    return snapshot(modems, counters, {"outgoing": 1, "checked": 5}, 2, now)


def test_snapshot_has_exactly_the_documented_keys():
    status = sample(time.time())
    assert set(status) == {"updated", "modems", "queue"}
    assert all(tuple(m) == MODEM_KEYS for m in status["modems"])
    assert tuple(status["queue"]) == QUEUE_KEYS
    assert status["queue"] == {"outgoing": 1, "checked": 5, "retrying": 2, "sent_today": 4, "failed_today": 4}
    assert status["modems"][0]["sent_today"] == 4 and status["modems"][1]["failed_today"] == 1


def test_write_then_read_round_trips_and_leaves_no_temporary(tmp_path):
    status = sample(time.time())
    write_status(tmp_path, status)
    write_status(tmp_path, status)
    assert read_status(tmp_path) == json.loads(json.dumps(status))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]


def test_missing_status_file_says_what_to_do(tmp_path):
    with pytest.raises(StatusUnavailable, match="gsmgw run"):
        read_status(tmp_path)


def test_table_warns_when_stale():
    now = time.time()
    fresh = format_table(sample(now), now + 1)
    assert "WARNING" not in fresh
    assert "gsm1" in fresh and "-71 dBm" in fresh and "absent" in fresh and "port gone" in fresh
    stale = format_table(sample(now), now + 600)
    assert is_stale(sample(now), now + 600)
    assert stale.startswith("WARNING: this status is 10 min old: the daemon is not running")


def test_metrics_have_the_names_of_api_md():
    metrics = Metrics()
    metrics.add_modem("gsm1")
    metrics.set_state("gsm1", "ready")
    metrics.set_radio("gsm1", -70, True)
    metrics.sent.labels("gsm1").inc()
    metrics.received.labels("gsm1").inc()
    metrics.failed.inc()
    metrics.set_queue({"outgoing": 3}, 0)
    text = generate_latest(metrics.registry).decode()
    for line in (
        'gsmgw_modem_up{modem="gsm1"} 1.0',
        'gsmgw_modem_signal_dbm{modem="gsm1"} -70.0',
        'gsmgw_messages_sent_total{modem="gsm1"} 1.0',
        'gsmgw_messages_received_total{modem="gsm1"} 1.0',
        "gsmgw_messages_failed_total 1.0",
        'gsmgw_queue_depth{dir="outgoing"} 3.0',
    ):
        assert line in text
