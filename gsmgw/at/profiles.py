"""Vendor dialects: data (init strings, queries, unsolicited lines, quirks) plus small pure parsers.

A profile is chosen from the manufacturer the modem reports (``AT+CGMI``, or ``ATI`` when CGMI
fails), or forced in the config (``profile:``). Everything here is pure; the modem driver runs
the commands. Each quirk and each vendor URC names the device it was seen on.

The parser (gsmgw.at.parser) knows the URCs of TS 27.005/27.007; the vendors' own lines and their
decoders are the profiles' `urcs`. The parser asks for all of them (VENDOR_URCS) from the first
byte on, because a modem prints them before its profile is known (at boot, during AT+CGMI).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

from gsmgw.at.events import ModemBooted, ModemReady, Noise, PowerDown, SignalReport, SimStatus, StorageFull, Urc
from gsmgw.at.parser import csq_to_dbm, split_fields

# (text after the prefix, its fields, the whole line) -> the event; a bare line has no fields.
Decode = Callable[[str, list[str], str], Urc]


def _noise(rest: str, f: list[str], raw: str) -> Urc:
    return Noise(raw)


def _booted(rest: str, f: list[str], raw: str) -> Urc:
    return ModemBooted(raw)


def _ready(rest: str, f: list[str], raw: str) -> Urc:
    return ModemReady(raw)


def _power_down(rest: str, f: list[str], raw: str) -> Urc:
    return PowerDown(raw)


def _sim_status(rest: str, f: list[str], raw: str) -> Urc:
    return SimStatus(raw, rest.strip().upper())


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def huawei_hcsq_to_dbm(fields: list[str]) -> int | None:
    """Huawei ^HCSQ: <sysmode>,<rssi>,... (Huawei ME909s/E3372 AT manual, ^HCSQ): rssi 0 is
    below -120 dBm, 1..96 is -120..-25 dBm in 1 dB steps, 255 unknown."""
    if len(fields) < 2 or fields[0].upper() == "NOSERVICE":
        return None
    value = _int(fields[1])
    if value is None or not 0 <= value <= 96:
        return None
    return -121 + value


def _huawei_rssi(rest: str, f: list[str], raw: str) -> Urc:
    return SignalReport(raw, csq_to_dbm(_int(f[0])))  # ^RSSI: <rssi> as +CSQ's


def _huawei_hcsq(rest: str, f: list[str], raw: str) -> Urc:
    return SignalReport(raw, huawei_hcsq_to_dbm(f))


def _huawei_memfull(rest: str, f: list[str], raw: str) -> Urc:
    return StorageFull(raw, f[0].upper())  # ^SMMEMFULL: <mem>


def _simcom_smsfull(rest: str, f: list[str], raw: str) -> Urc:
    return StorageFull(raw, f[0].upper())  # +SMSFULL: <mem>


def _quectel_qind(rest: str, f: list[str], raw: str) -> Urc:
    what = f[0].upper()
    if what == "CSQ" and len(f) > 1:
        return SignalReport(raw, csq_to_dbm(_int(f[1])))
    if what in ("SMS DONE", "PB DONE"):
        return ModemReady(raw)
    if what == "SMSFULL":
        # Quectel EC25 with AT+QINDCFG="smsfull",1: +QIND: "smsfull",<storage>
        return StorageFull(raw, f[1].upper() if len(f) > 1 else "")
    return Noise(raw)


@dataclass(frozen=True)
class VendorUrc:
    """A line a vendor's firmware prints unsolicited: `line` is its prefix before ':' ("^RSSI"),
    or with `bare` the whole line ("SMS READY"); `device` where it was seen; `decode` what it means
    (Noise: a line nobody needs, reported so that nothing vanishes silently)."""

    line: str
    device: str
    decode: Decode = _noise
    bare: bool = False


@dataclass(frozen=True)
class Quirk:
    """A device's deviation from the standards. `handled_by` names the ModemProfile field (or the
    function of this module) that acts on it (tests check that it exists); None where the
    standard code path already copes and nothing is switched for it."""

    device: str
    what: str
    handled_by: str | None


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
    # The vendor's own unsolicited lines and what they mean (the parser asks for VENDOR_URCS).
    urcs: tuple[VendorUrc, ...] = ()
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
    urcs=(
        *(VendorUrc(prefix, "ZTE MF-series sticks (no profile of their own)") for prefix in (
            "+ZPASR", "+ZUSIMR", "+ZDONR", "+ZEND")),
        VendorUrc("START", "unattributed: a boot banner kept from the parser's old list", _booted, bare=True),
    ),
)

HUAWEI = ModemProfile(
    name="huawei",
    # ^CURC=0 stops the periodic ^RSSI/^MODE/^BOOT lines (they are parsed anyway if it fails).
    init_commands=("AT^CURC=0",),
    cnmi_choices=_CNMI_DEFAULT,
    cpms_choices=_CPMS_DEFAULT,
    pin_attempt_queries=(("AT^CPIN?", _attempts_huawei), _CPINR),
    iccid_commands=("AT^ICCID?", _CRSM_ICCID, "AT+CCID"),
    urcs=(
        VendorUrc("^RSSI", "Huawei E173/E1550 (every few seconds until AT^CURC=0)", _huawei_rssi),
        VendorUrc("^HCSQ", "Huawei ME909s/E3372", _huawei_hcsq),
        VendorUrc("^SIMST", "Huawei E173/E3372", _sim_status),
        VendorUrc("^SMMEMFULL", "Huawei E173/E3372", _huawei_memfull),
        VendorUrc("^SYSSTART", "Huawei ME909u (ME909u Application Guide §2.1: the module has been reset)", _booted),
        VendorUrc("^SYSSTART", "Huawei ME909u, as a line of its own", _booted, bare=True),
        *(VendorUrc(prefix, "Huawei E173, E3372, ME909") for prefix in (
            "^BOOT", "^MODE", "^SRVST", "^DSFLOWRPT", "^NWTIME", "^STIN", "^CEND", "^ORIG", "^CONF", "^CONN",
            "^RFSWITCH", "^NDISSTAT", "^ACTIVEBAND", "^CSNR", "^ECLSTAT", "^CRSSI")),
    ),
    quirks=(
        Quirk("Huawei E173/E1550", "prints ^RSSI, ^MODE and ^BOOT every few seconds until AT^CURC=0",
              "init_commands"),
        Quirk("Huawei E173", "^ICCID? prints the ICCID nibble-swapped, as stored in EF_ICCID", "normalise_iccid"),
        Quirk("Huawei E173", "SMS storage indices start at 0", None),
        Quirk("Huawei E1550", "old firmwares want USSD as packed GSM 7-bit hex", "ussd_packed"),
    ),
)

SIMCOM = ModemProfile(
    name="simcom",
    init_commands=(),
    cnmi_choices=_CNMI_DEFAULT,
    cpms_choices=_CPMS_DEFAULT,
    pin_attempt_queries=(("AT+SPIC", _attempts_simcom), _CPINR),
    iccid_commands=("AT+CCID", "AT+ICCID", _CRSM_ICCID),
    urcs=(
        VendorUrc("+SIMCARD", "SIMCom SIM800", _sim_status),
        VendorUrc("+SMSFULL", "SIMCom SIM800", _simcom_smsfull),
        *(VendorUrc(prefix, "SIMCom SIM800, SIM7600") for prefix in (
            "*PSUTTZ", "DST", "+PSNWID", "+CPSI", "+CGNSINF", "+PACSP")),
        VendorUrc("RDY", "SIMCom SIM800L, Quectel EC25: the first line after power-up", _booted, bare=True),
        VendorUrc("SMS READY", "SIMCom SIM800L", _ready, bare=True),
        VendorUrc("CALL READY", "SIMCom SIM800L", _ready, bare=True),
        VendorUrc("PB DONE", "SIMCom SIM7600", _ready, bare=True),
        VendorUrc("NORMAL POWER DOWN", "SIMCom SIM800", _power_down, bare=True),
        VendorUrc("UNDER-VOLTAGE POWER DOWN", "SIMCom SIM800", _power_down, bare=True),
        *(VendorUrc(line, "SIMCom SIM800 (its spelling)", bare=True) for line in (
            "UNDER-VOLTAGE WARNNING", "OVER-VOLTAGE WARNNING", "UNDER-VOLTAGE WARNING")),
    ),
    quirks=(
        Quirk("SIMCom SIM800L", "AT+CCID prints the bare ICCID digits without a +CCID: prefix", "normalise_iccid"),
        Quirk("SIMCom SIM800L", "prints RDY, +CFUN: 1, +CPIN: READY, Call Ready, SMS Ready after boot", "urcs"),
        Quirk("SIMCom SIM800L", "prints <alpha> as \"\" in +CMGL/+CMGR", None),
    ),
)

QUECTEL = ModemProfile(
    name="quectel",
    init_commands=(),
    cnmi_choices=_CNMI_DEFAULT,
    cpms_choices=(("ME", "ME", "ME"), ("SM", "SM", "SM"), ("MT", "MT", "MT")),
    pin_attempt_queries=(('AT+QPINC="SC"', _attempts_quectel), _CPINR),
    iccid_commands=("AT+QCCID", "AT+CCID", _CRSM_ICCID),
    urcs=(
        VendorUrc("+QIND", "Quectel EC25 (SMS DONE, PB DONE, csq, smsfull)", _quectel_qind),
        VendorUrc("+QUSIM", "Quectel EC25", _sim_status),
        VendorUrc("+QSTK", "Quectel EC25, M95, BG96"),
        VendorUrc("+QIURC", "Quectel EC25, M95, BG96"),
        VendorUrc("RDY", "SIMCom SIM800L, Quectel EC25: the first line after power-up", _booted, bare=True),
        VendorUrc("APP RDY", "Quectel EC2x/BG96", _ready, bare=True),
        VendorUrc("POWERED DOWN", "Quectel EC25", _power_down, bare=True),
    ),
    quirks=(
        Quirk("Quectel EC25", "prints +QIND: SMS DONE when SMS commands become usable after boot", "urcs"),
        Quirk("Quectel EC25", "SIM storage is small; ME storage is preferred", "cpms_choices"),
        Quirk("Quectel EC25", "SMS storage indices start at 0", None),
    ),
)

PROFILES: dict[str, ModemProfile] = {p.name: p for p in (GENERIC, HUAWEI, SIMCOM, QUECTEL)}


def _vendor_urcs() -> dict[tuple[str, bool], VendorUrc]:
    """Every profile's URCs by (line, bare); a line two vendors print must mean the same."""
    table: dict[tuple[str, bool], VendorUrc] = {}
    for profile in PROFILES.values():
        for urc in profile.urcs:
            key = (urc.line.upper(), urc.bare)
            if key in table and table[key].decode is not urc.decode:
                raise ValueError(f"{urc.line!r} means two things: {table[key].device} / {urc.device}")
            table.setdefault(key, urc)
    return table


# What the parser asks: the vendor lines of all profiles, by (upper-case line, bare).
VENDOR_URCS: Mapping[tuple[str, bool], VendorUrc] = _vendor_urcs()
PROFILE_FIELDS = frozenset(field.name for field in fields(ModemProfile))


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
