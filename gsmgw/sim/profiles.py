"""Vendor dialects of the simulated modems (data only).

A dialect changes what clients have to cope with, not the network behind it.
Each quirk names the device it was taken from.  Where a manual was the
source, it is named; where the behaviour is a documented observation of
other projects (ModemManager, smstools3, Gammu), that is said instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Profile:
    name: str
    manufacturer: str
    model: str
    revision: str
    # ATI answer; {imei} and the fields above are filled in.
    ati_lines: tuple[str, ...]
    # Index of the first slot of each message storage (27.005 leaves it open).
    first_index: int = 1
    capacities: dict[str, int] = field(default_factory=lambda: {"SM": 20, "ME": 50, "SR": 20})
    # <alpha> field of +CMGL/+CMGR in PDU mode: empty, or an empty quoted string.
    list_alpha: str = ""
    # Lines a modem prints when it powers up (after a replug too); {cpin} = "READY"/"SIM PIN".
    boot_urcs: tuple[str, ...] = ()
    # Status lines the modem prints by itself every `noise_interval` seconds.
    noise_urcs: tuple[str, ...] = ()
    noise_interval: float = 0.0
    # Extra (vendor) commands answered by this dialect, besides the 27.007/27.005 set.
    vendor_commands: frozenset[str] = frozenset()
    # How +CCID prints the ICCID ("+CCID: 89..." or the bare digits).
    ccid_prefix: str = "+CCID: "
    # Line printed when the SIM storage becomes full, if the vendor has one.
    memory_full_urc: str | None = None
    gcap: str = "+GCAP: +CGSM"
    # Quirks of broken firmwares; all off in the well-behaved dialects above.
    # ATE0 answers OK but the modem goes on echoing.
    echo_locked: bool = False
    # The final result of a command the modem does not know ("ERROR" per V.250 §5.7.1).
    unknown_final: str = "ERROR"
    # +CMGL/+CMGR print the text-mode <stat> words ("REC READ") in PDU mode too.
    stat_words: bool = False
    # +CMGS answers <mr>,"<scts>" (TS 27.005 §3.5.1 allows <scts> only with +CSMS=1).
    cmgs_scts: bool = False
    # What AT+CMGS/AT+CMGW print before the PDU; TS 27.005 §3.5.1 says CR LF then "> ".
    prompt: bytes = b"\r\n> "
    # The final "OK" comes glued to the last answer line when that is data (a PDU, numbers, a
    # quoted field), without the CR LF before it.
    glued_ok: bool = False
    # After the right PIN, AT+CPIN? still answers SIM PIN this many seconds; then the modem
    # prints +CPIN: READY by itself.
    pin_ready_delay: float = 0.0
    # +CSCS after power-up (TS 27.007 §5.5). Under UCS2 the PIN, +CSCA and +CNUM are hex.
    default_charset: str = "IRA"
    # Seconds after power-up during which +CPIN? answers NOT READY and SIM commands CME/CMS
    # "SIM busy" (SIMCom and Quectel modules print +CPIN: NOT READY while the SIM starts).
    sim_boot_delay: float = 0.0
    # The character sets AT+CSCS takes.
    charsets: tuple[str, ...] = ("GSM", "IRA", "UCS2", "8859-1", "PCCP437")
    # What an incoming call prints each ring while +CRC=0 (V.250 §6.3: "RING"); None: nothing, so
    # the call is only seen with +CRC=1 (+CRING) or +CLIP=1 (+CLIP).
    ring_urc: str | None = "RING"


GENERIC = Profile(
    name="generic",
    manufacturer="gsmgw",
    model="SIM-MODEM",
    revision="gsmgw-sim 1.0",
    ati_lines=("{manufacturer}", "{model}", "Revision: {revision}"),
    first_index=1,
    gcap="+GCAP: +CGSM,+DS,+ES",
)

# Huawei E173 / E1550 (firmware 11.126.x), "HUAWEI UMTS Datacard Modem AT Command
# Interface Specification" V2.3:
# - ^RSSI, ^MODE and ^BOOT status lines arrive unasked every few seconds until
#   AT^CURC=0 (ModemManager's Huawei plugin and smstools3's FAQ both switch them off);
# - message storage indices start at 0;
# - ^ICCID? answers the ICCID as the SIM stores it in EF_ICCID, nibble-swapped
#   (ModemManager's mm_3gpp_parse_iccid() detects that form by its "98" start);
# - ^CPIN? gives the PIN/PUK attempts left in one line;
# - ^SMMEMFULL: "SM" announces a full SIM storage.
HUAWEI = Profile(
    name="huawei",
    manufacturer="huawei",
    model="E173",
    revision="11.126.85.00.209",
    ati_lines=(
        "Manufacturer: {manufacturer}",
        "Model: {model}",
        "Revision: {revision}",
        "IMEI: {imei}",
        "+GCAP: +CGSM,+DS,+ES",
    ),
    first_index=0,
    boot_urcs=("^BOOT:20952894,0,0,0,72", "^MODE: 5,4"),
    noise_urcs=("^RSSI: {rssi}", "^BOOT:20952894,0,0,0,72", "^MODE: 5,4"),
    noise_interval=3.0,
    vendor_commands=frozenset({"^ICCID", "^CPIN", "^CURC", "^SYSINFO", "^HWVER"}),
    memory_full_urc='^SMMEMFULL: "SM"',
    gcap="+GCAP: +CGSM,+DS,+ES",
)

# SIMCom SIM800L (firmware 1418B05), "SIM800 Series AT Command Manual" V1.09:
# - prints RDY, +CFUN, +CPIN, "Call Ready" and "SMS Ready" after power-up;
# - AT+CCID answers the bare ICCID digits with no "+CCID:" prefix;
# - AT+SPIC gives the PIN/PUK attempts left;
# - storage indices start at 1 and <alpha> is printed as "" in +CMGL/+CMGR
#   (Telit HE910 does the same, see ModemManager's test-modem-helpers.c).
SIMCOM = Profile(
    name="simcom",
    manufacturer="SIMCOM_Ltd",
    model="SIMCOM_SIM800L",
    revision="Revision:1418B05SIM800L24",
    ati_lines=("SIM800 R14.18",),
    first_index=1,
    list_alpha='""',
    boot_urcs=("RDY", "+CFUN: 1", "+CPIN: {cpin}", "Call Ready", "SMS Ready"),
    vendor_commands=frozenset({"+SPIC", "+CSPN"}),
    ccid_prefix="",
    gcap="+GCAP: +CGSM",
)

# Quectel EC25 (EC25EFAR06A06M4G), "Quectel EC2x AT Commands Manual" V1.3:
# - prints RDY, +CPIN and +QIND: SMS DONE / PB DONE after power-up;
# - AT+QPINC? gives the attempts left per PIN ("SC" for the SIM PIN, "P2" for PIN2);
# - AT+QCCID is its ICCID query; storage indices start at 0.
QUECTEL = Profile(
    name="quectel",
    manufacturer="Quectel",
    model="EC25",
    revision="EC25EFAR06A06M4G",
    ati_lines=("{manufacturer}", "{model}", "Revision: {revision}"),
    first_index=0,
    boot_urcs=("RDY", "+CPIN: {cpin}", "+QIND: SMS DONE", "+QIND: PB DONE"),
    vendor_commands=frozenset({"+QPINC", "+QCCID", "+QSPN"}),
    gcap="+GCAP: +CGSM",
)

# ZTE MF-series USB sticks (MF190/MF626, firmwares BD_MF190V1.0.0B03 and alike) and the
# rebadged clones built on them, as the gateway's acceptance list and other projects'
# workarounds describe them:
# - unknown commands end with "COMMAND NOT SUPPORT" instead of ERROR (ModemManager's serial
#   parsers and our at.parser take it as an error final);
# - ATE0 is accepted but the echo stays on;
# - +CMGL/+CMGR print "REC READ"-style <stat> words although AT+CMGF=0 is set;
# - +CMGS answers <mr>,"<scts>";
# - the AT+CMGS prompt is a bare "> " without the CR LF before it;
# - the final OK is glued to the last answer line when that is data ("+CSQ: 17,99OK");
# - after AT+CPIN=<pin> answered OK, AT+CPIN? says SIM PIN until +CPIN: READY comes;
# - it starts in AT+CSCS="UCS2", so AT+CPIN="1234" is a wrong PIN until AT+CSCS="GSM" or
#   "IRA" (ModemManager sets the character set at init for the same reason); it knows only
#   "GSM" and "UCS2";
# - +CPIN: NOT READY for a second after power-up, while the SIM starts;
# - an incoming call prints no RING; it shows only as +CRING (AT+CRC=1) and +CLIP (AT+CLIP=1).
#   Issue 13 reports modems that send nothing while a call rings; this dialect plays one, so the
#   driver's +CRC/+CLIP set-up is tested against it.
ZTE = Profile(
    name="zte",
    manufacturer="ZTE CORPORATION",
    model="MF190",
    revision="BD_MF190V1.0.0B03",
    ati_lines=("Manufacturer: {manufacturer}", "Model: {model}", "Revision: {revision}",
               "IMEI: {imei}", "+GCAP: +CGSM,+DS,+ES"),
    first_index=0,
    echo_locked=True,
    unknown_final="COMMAND NOT SUPPORT",
    stat_words=True,
    cmgs_scts=True,
    prompt=b"> ",
    glued_ok=True,
    pin_ready_delay=1.0,
    default_charset="UCS2",
    charsets=("GSM", "UCS2"),
    sim_boot_delay=1.0,
    gcap="+GCAP: +CGSM,+DS,+ES",
    ring_urc=None,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (GENERIC, HUAWEI, SIMCOM, QUECTEL, ZTE)}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name.lower()]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown modem profile {name!r}; choose one of: {known}") from None
