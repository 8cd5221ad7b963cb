"""gammu (Debian's python3-gammu, libgammu) as an independent decoder of the PDUs gsmgw writes.

python3-gammu is built for Debian's own Python, not for the test virtualenv, so each call runs
/usr/bin/python3 once with every PDU of the batch and reads gammu.DecodePDU's answers as JSON.
"""

import json
import subprocess

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"

_SCRIPT = r"""
import json, sys
import gammu
out = []
for pdu in json.load(sys.stdin):
    sms = gammu.DecodePDU(bytes.fromhex(pdu))
    udh = sms["UDH"]
    text = sms["Text"]
    out.append({
        "type": sms["Type"], "number": sms["Number"], "coding": sms["Coding"], "class": sms["Class"],
        "length": sms["Length"], "udh_type": udh["Type"], "udh": udh["Text"].hex().upper(),
        "text": text.hex().upper() if isinstance(text, bytes) else text,
    })
json.dump(out, sys.stdout)
"""


def _available() -> bool:
    try:
        done = subprocess.run([SYSTEM_PYTHON, "-c", "import gammu"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


needs_gammu = pytest.mark.skipif(not _available(), reason="python3-gammu is not installed (apt-get install python3-gammu)")


def gammu_decode(pdus: list[str]) -> list[dict]:
    """gammu's reading of each PDU (hex with SMSC field, as gsmgw writes them)."""
    done = subprocess.run(
        [SYSTEM_PYTHON, "-c", _SCRIPT], input=json.dumps(pdus), capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout)
