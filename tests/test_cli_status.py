"""`gsmgw status --json` prints SPOOL.md's object even when the daemon has written no status."""

from __future__ import annotations

import json
import subprocess
import sys

KEYS = {"name", "state", "port", "imsi", "iccid", "imei", "operator", "signal_dbm", "registered",
        "sent_today", "failed_today", "received_today", "last_error"}


def test_status_json_without_a_daemon_is_still_one_object_with_every_key(tmp_path):
    # Regression: with no status file, --json printed nothing on stdout, and scripts parsing it broke.
    config = tmp_path / "gsmgw.yaml"
    config.write_text(
        f"spool: {tmp_path / 'spool'}\nstate: {tmp_path / 'state'}\n"
        "modems:\n  - {name: gsm1, port: /dev/ttyUSB0}\n  - {name: gsm2, imsi: '262011234567890'}\n"
    )
    (tmp_path / "spool" / "outgoing").mkdir(parents=True)
    (tmp_path / "spool" / "outgoing" / "waiting").write_text("To: +4915112345678\n\nhi\n")
    result = subprocess.run([sys.executable, "-m", "gsmgw", "status", "--json", "-c", str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "no status file" in result.stderr and "gsmgw run" in result.stderr
    status = json.loads(result.stdout)
    assert status["updated"] is None
    assert [(m["name"], m["state"], m["port"]) for m in status["modems"]] == [
        ("gsm1", "absent", "/dev/ttyUSB0"), ("gsm2", "absent", None)]
    assert all(set(m) == KEYS for m in status["modems"])
    assert status["queue"] == {"outgoing": 1, "checked": 0, "retrying": 0, "sent_today": 0, "failed_today": 0}
