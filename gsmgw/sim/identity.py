"""Deterministic identities of simulated modems and SIMs (pure).

Tests and documentation rely on these numbers, so they depend only on the
modem's index:

| index | number         | IMSI            | operator    |
|-------|----------------|-----------------|-------------|
| 0     | +4917000000000 | 262010000000000 | Telekom.de  |
| 1     | +4917000000001 | 262020000000001 | Vodafone.de |
| 2     | +4917000000002 | 262030000000002 | o2 - de     |

The operator cycles through the three German networks and the IMSI's MCC+MNC
matches it.  IMEI and ICCID carry a correct Luhn check digit
(3GPP TS 23.003 §6.2.1 for the IMEI; ITU-T E.118 for the ICCID).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Operator:
    mcc_mnc: str
    long_name: str
    short_name: str
    smsc: str


OPERATORS = (
    Operator("26201", "Telekom.de", "TDG", "+491710760000"),
    Operator("26202", "Vodafone.de", "Vodafone", "+491722270333"),
    Operator("26203", "o2 - de", "o2", "+491760000443"),
)

NUMBER_BASE = 4917000000000


@dataclass(frozen=True)
class Identity:
    index: int
    number: str
    imsi: str
    imei: str
    iccid: str
    operator: Operator

    @property
    def name(self) -> str:
        return f"modem{self.index}"


def luhn_digit(digits: str) -> str:
    """Check digit that makes ``digits + check`` pass the Luhn test (ISO/IEC 7812-1 Annex B)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def identity_for(index: int) -> Identity:
    if not 0 <= index < 1000:
        raise ValueError(f"modem index {index} is out of range; use 0 to 999")
    operator = OPERATORS[index % len(OPERATORS)]
    # IMSI: MCC+MNC (5 digits) + 10-digit MSIN = 15 digits (TS 23.003 §2.2).
    imsi = f"{operator.mcc_mnc}{index:010d}"
    # IMEI: 8-digit TAC + 6-digit serial + check digit (TS 23.003 §6.2.1).
    imei_body = f"35000000{index:06d}"
    # ICCID: 89 (telecom) + 49 (Germany) + issuer + account, 19 digits + check.
    iccid_body = f"894901{operator.mcc_mnc[3:]}{index:011d}"
    return Identity(
        index=index,
        number=f"+{NUMBER_BASE + index}",
        imsi=imsi,
        imei=imei_body + luhn_digit(imei_body),
        iccid=iccid_body + luhn_digit(iccid_body),
        operator=operator,
    )
