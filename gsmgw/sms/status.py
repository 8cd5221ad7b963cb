"""TP-ST, the status of a delivery report, in words (TS 23.040 §9.2.3.15).

Pure code: no I/O.
"""

from __future__ import annotations

DELIVERED = "delivered"
PENDING = "pending"
FAILED = "failed"

# TS 23.040 §9.2.3.15, in the spec's words.
_MEANINGS = {
    0x00: "short message received by the SME",
    0x01: "forwarded by the SC to the SME but the SC is unable to confirm delivery",
    0x02: "short message replaced by the SC",
    0x20: "congestion, SC still trying",
    0x21: "SME busy, SC still trying",
    0x22: "no response from SME, SC still trying",
    0x23: "service rejected, SC still trying",
    0x24: "quality of service not available, SC still trying",
    0x25: "error in SME, SC still trying",
    0x40: "remote procedure error",
    0x41: "incompatible destination",
    0x42: "connection rejected by SME",
    0x43: "not obtainable",
    0x44: "quality of service not available",
    0x45: "no interworking available",
    0x46: "SM validity period expired",
    0x47: "SM deleted by originating SME",
    0x48: "SM deleted by SC administration",
    0x49: "SM does not exist",
    0x60: "congestion, SC gave up",
    0x61: "SME busy, SC gave up",
    0x62: "no response from SME, SC gave up",
    0x63: "service rejected, SC gave up",
    0x64: "quality of service not available, SC gave up",
    0x65: "error in SME, SC gave up",
}


def status_category(status: int) -> str:
    """`delivered`, `pending` or `failed` for a TP-ST value.

    0x00-0x1F transaction completed, 0x20-0x3F temporary error with the SC
    still trying, 0x40-0x7F permanent error or temporary error with the SC no
    longer trying. §9.2.3.15: reserved values (0x80 and up) are to be read as
    "service rejected", i.e. failed.
    """
    if not 0 <= status <= 0xFF:
        raise ValueError(f"TP-ST {status} is outside 0..255")
    if status < 0x20:
        return DELIVERED
    if status < 0x40:
        return PENDING
    return FAILED


def status_meaning(status: int) -> str:
    """The spec's words for a TP-ST value (TS 23.040 §9.2.3.15); SC-specific and reserved values say so."""
    if status in _MEANINGS:
        return _MEANINGS[status]
    low = status & 0x1F
    if status < 0x80 and low >= 0x10:
        return f"SC-specific status {status:#04x}"
    return f"reserved status {status:#04x}"
