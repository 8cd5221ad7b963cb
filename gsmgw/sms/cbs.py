"""The data coding of USSD strings (and cell broadcasts): TS 23.038 §5, and how AT+CUSD prints
them (TS 27.007 §7.15). Pure code: no I/O.

A network answers a USSD request (a balance check, "*100#") in the GSM 7-bit default alphabet
or in UCS2, and says which in <dcs>. TS 27.007 §7.15: GSM 7-bit text is printed in the TE
character set (gsmgw sets "IRA"), 8-bit data and UCS2 as hex of their octets. Some firmwares
print GSM 7-bit text as the hex of its packed septets (Huawei E1550: the profile's ussd_packed).
"""

from __future__ import annotations

import re

from gsmgw.sms import gsm7
from gsmgw.sms.split import EIGHT_BIT, GSM7, UCS2

_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
# TS 23.038 §5, group 0001: 0x11 is UCS2 "preceded by language indication": the first two octets
# are the language as two packed GSM 7-bit characters (ISO 639), then the UCS2 text.
DCS_UCS2_WITH_LANGUAGE = 0x11


def cbs_alphabet(dcs: int) -> str:
    """The alphabet of a CBS/USSD data coding scheme (TS 23.038 §5): "gsm7", "8bit" or "ucs2".

    0000 and 0010-0011: GSM 7-bit (a language); 0001: 0x10 GSM 7-bit, 0x11 UCS2, each preceded by
    a language indication; 01xx (general) and 1001 (with a user data header): bits 3..2 are
    00 GSM 7-bit, 01 8-bit, 10 UCS2; 1111: bit 2 is 8-bit data, else GSM 7-bit. Reserved codings
    "shall be assumed to be the GSM 7 bit default alphabet" (§5).
    """
    group = (dcs >> 4) & 0x0F
    if group == 0x1:
        return UCS2 if dcs == DCS_UCS2_WITH_LANGUAGE else GSM7
    if 0x4 <= group <= 0x7 or group == 0x9:
        return {0: GSM7, 1: EIGHT_BIT, 2: UCS2}.get((dcs >> 2) & 0x03, GSM7)
    if group == 0xF:
        return EIGHT_BIT if dcs & 0x04 else GSM7
    return GSM7


def decode_ussd(text: str | None, dcs: int | None, *, packed: bool = False) -> str | None:
    """The text of a +CUSD answer as the network meant it: UCS2 from its hex, GSM 7-bit as printed
    (or unpacked from hex when the firmware sends packed septets, `packed`). 8-bit data and
    anything that does not read in its coding stay as the modem printed them."""
    if text is None:
        return None
    alphabet = cbs_alphabet(dcs) if dcs is not None else GSM7
    is_hex = bool(_HEX.fullmatch(text))
    if alphabet == UCS2 and is_hex:
        data = bytes.fromhex(text)
        if dcs == DCS_UCS2_WITH_LANGUAGE:
            data = data[2:]
        if len(data) % 2 == 0:
            try:
                return data.decode("utf-16-be")
            except UnicodeDecodeError:
                return text
        return text
    if alphabet == GSM7 and is_hex and packed:
        data = bytes.fromhex(text)
        return gsm7.decode_septets(gsm7.unpack_septets(data, len(data) * 8 // 7)).rstrip("\r")
    return text
