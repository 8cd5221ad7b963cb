"""Vendor dialects: data (init strings, queries, URC prefixes, quirks) plus small pure parsers.

A profile is chosen from the manufacturer the modem reports (``AT+CGMI``, or ``ATI`` when CGMI
fails), or forced in the config (``profile:``). Everything here is pure; the modem driver runs
the commands. Each quirk names the device it was seen on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from gsmgw.at.parser import split_fields


@dataclass(frozen=True)
class Quirk:
    device: str
    what: str


def _attempts_cpinr(lines: list[str]) -> int | None:
    """TS 27.007 §8.65: ``+CPINR: <code>,<retries>[,<default_retries>]``, one line per code."""
    for line in lines:
        if line.upper().startswith("+CPINR:"):
            f = split_fields(line.split(":", 1)[1])
            if len(f) >= 2 and f[0].upper() == "SIM PIN" and f[1].isdigit():
                return int(f[1])
    return None


def _attempts_huawei(lines: list[str]) -> int | None:
    """Huawei ``^CPIN: <code>,[<times>],<puk_times>,<pin_times>,<puk2_times>,<pin2_times>``
    (HUAWEI UMTS Datacard Modem AT Command Interface Specification, ^CPIN)."""
    for line in lines:
        if line.upper().startswith("^CPIN:"):
            f = split_fields(line.split(":", 1)[1])
            if len(f) >= 4 and f[3].isdigit():
                return int(f[3])
    return None


def _attempts_simcom(lines: list[str]) -> int | None:
    """SIMCom ``+SPIC: <pin1>,<puk1>,<pin2>,<puk2>`` (SIM800 Series AT Command Manual, AT+SPIC)."""
    for line in lines:
        if line.upper().startswith("+SPIC:"):
            f = split_fields(line.split(":", 1)[1])
            if f and f[0].isdigit():
                return int(f[0])
    return None


def _attempts_quectel(lines: list[str]) -> int | None:
    """Quectel ``+QPINC: "SC",<pin_counter>,<puk_counter>`` (Quectel EC2x AT Commands Manual)."""
    for line in lines:
        if line.upper().startswith("+QPINC:"):
            f = split_fields(line.split(":", 1)[1])
            if len(f) >= 2 and f[0].upper() == "SC" and f[1].isdigit():
                return int(f[1])
    return None


@dataclass(frozen=True)
class ModemProfile:
    name: str
    # Sent after ATE0 / AT+CMEE=1 / AT+CMGF=0. A failing one is logged, not fatal: firmwares
    # of one vendor differ.
    init_commands: tuple[str, ...]
    # AT+CNMI settings tried in order (TS 27.005 §3.4.1). 2,1,0,2,0 stores both SMS and status
    # reports and announces them with +CMTI/+CDSI, so nothing is lost while we are busy and an
    # SMS is deleted only once it is on disk.
    cnmi_choices: tuple[str, ...]
    # (mem1, mem2, mem3) choices for AT+CPMS, tried in order (TS 27.005 §3.2.2).
    cpms_choices: tuple[tuple[str, str, str], ...]
    # Queries for the PIN attempts left, with the parser of each; tried in order.
    pin_attempt_queries: tuple[tuple[str, Callable[[list[str]], int | None]], ...]
    # Commands that print the ICCID, tried in order.
    iccid_commands: tuple[str, ...]
    # USSD strings sent and received as packed GSM 7-bit hex instead of text.
    ussd_packed: bool = False
    # Sent at init so that an incoming call is announced with its type and caller: +CRC=1 gives
    # "+CRING: VOICE" for RING (TS 27.007 §6.11), +CLIP=1 the caller (§7.6). Some modems print
    # nothing at all while a call rings until one of them is on. A refusal is logged, not fatal.
    call_commands: tuple[str, ...] = ("AT+CRC=1", "AT+CLIP=1")
    # Tried in order to hang up a ringing call: +CHUP (TS 27.007 §6.5), then V.250's H (§6.3.6),
    # which smstools3 offers (voicecall_hangup_ath) for devices on which +CHUP does nothing.
    hangup_commands: tuple[str, ...] = ("AT+CHUP", "ATH")
    extra_urc_prefixes: frozenset[str] = frozenset()
    quirks: tuple[Quirk, ...] = ()


_CPINR = ('AT+CPINR="SIM PIN"', _attempts_cpinr)
_CNMI_DEFAULT = ("2,1,0,2,0", "2,1,0,1,0", "1,1,0,2,0", "1,1,0,1,0", "2,1,0,0,0", "1,1,0,0,0")
_CPMS_DEFAULT = (("SM", "SM", "SM"), ("ME", "ME", "ME"), ("MT", "MT", "MT"))
# TS 31.102 §4.2 / TS 102.221 §13.2: EF_ICCID (2FE2 = 12258) is 10 bytes, read with READ BINARY.
_CRSM_ICCID = "AT+CRSM=176,12258,0,0,10"

GENERIC = ModemProfile(
    name="generic",
    init_commands=(),
    cnmi_choices=_CNMI_DEFAULT,
    cpms_choices=_CPMS_DEFAULT,
    pin_attempt_queries=(_CPINR,),
    iccid_commands=("AT+CCID", "AT+ICCID", _CRSM_ICCID),
)

HUAWEI = ModemProfile(
    name="huawei",
    # ^CURC=0 stops the periodic ^RSSI/^MODE/^BOOT lines (they are parsed anyway if it fails).
    init_commands=("AT^CURC=0",),
    cnmi_choices=_CNMI_DEFAULT,
    cpms_choices=_CPMS_DEFAULT,
    pin_attempt_queries=(("AT^CPIN?", _attempts_huawei), _CPINR),
    iccid_commands=("AT^ICCID?", _CRSM_ICCID, "AT+CCID"),
    quirks=(
        Quirk("Huawei E173/E1550", "prints ^RSSI, ^MODE and ^BOOT every few seconds until AT^CURC=0"),
        Quirk("Huawei E173", "^ICCID? prints the ICCID nibble-swapped, as stored in EF_ICCID"),
        Quirk("Huawei E173", "SMS storage indices start at 0"),
        Quirk("Huawei E1550", "old firmwares want USSD as packed GSM 7-bit hex; set ussd_packed"),
    ),
)

SIMCOM = ModemProfile(
    name="simcom",
    init_commands=(),
    cnmi_choices=_CNMI_DEFAULT,
    cpms_choices=_CPMS_DEFAULT,
    pin_attempt_queries=(("AT+SPIC", _attempts_simcom), _CPINR),
    iccid_commands=("AT+CCID", "AT+ICCID", _CRSM_ICCID),
    quirks=(
        Quirk("SIMCom SIM800L", "AT+CCID prints the bare ICCID digits without a +CCID: prefix"),
        Quirk("SIMCom SIM800L", "prints RDY, +CFUN: 1, +CPIN: READY, Call Ready, SMS Ready after boot"),
        Quirk("SIMCom SIM800L", "prints <alpha> as \"\" in +CMGL/+CMGR"),
    ),
)

QUECTEL = ModemProfile(
    name="quectel",
    init_commands=(),
    cnmi_choices=_CNMI_DEFAULT,
    cpms_choices=(("ME", "ME", "ME"), ("SM", "SM", "SM"), ("MT", "MT", "MT")),
    pin_attempt_queries=(('AT+QPINC="SC"', _attempts_quectel), _CPINR),
    iccid_commands=("AT+QCCID", "AT+CCID", _CRSM_ICCID),
    quirks=(
        Quirk("Quectel EC25", "prints +QIND: SMS DONE when SMS commands become usable after boot"),
        Quirk("Quectel EC25", "SIM storage is small; ME storage is preferred"),
        Quirk("Quectel EC25", "SMS storage indices start at 0"),
    ),
)

PROFILES: dict[str, ModemProfile] = {p.name: p for p in (GENERIC, HUAWEI, SIMCOM, QUECTEL)}


def get_profile(name: str) -> ModemProfile:
    try:
        return PROFILES[name.lower()]
    except KeyError:
        raise ValueError(
            f"unknown modem profile {name!r}; use one of: {', '.join(sorted(PROFILES))}"
        ) from None


def detect_profile(manufacturer: str) -> ModemProfile:
    """The profile for the text of ``AT+CGMI`` (or ``ATI``)."""
    text = manufacturer.lower()
    if "huawei" in text:
        return HUAWEI
    if "simcom" in text or re.search(r"\bsim(800|900|7[0-9]{3}|5[0-9]{3})", text):
        return SIMCOM
    if "quectel" in text:
        return QUECTEL
    return GENERIC


def normalise_iccid(text: str) -> str | None:
    """An ICCID from a query's answer, as the 19-20 digits printed on the SIM.

    EF_ICCID stores the digits BCD with swapped nibbles (TS 102.221 §13.2), padded with F. Some
    queries (AT+CRSM, Huawei ^ICCID?) print that raw form, which starts "98" because every ICCID
    starts "89" (ITU-T E.118). ModemManager tells the two forms apart the same way.
    """
    m = re.search(r"[0-9A-Fa-f]{18,22}", text)
    if not m:
        return None
    digits = m.group(0).upper()
    if digits.startswith("98"):
        digits = "".join(digits[i + 1] + digits[i] for i in range(0, len(digits) - 1, 2))
    digits = digits.rstrip("F")
    return digits if digits.isdigit() else None
