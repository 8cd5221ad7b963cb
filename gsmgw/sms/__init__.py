"""gsmgw.sms: the pure SMS codec (GSM-7, UCS-2, addresses, PDUs, splitting, reassembly).

No I/O here. The AT driver, the daemon and the simulator use this package;
docs/DEVELOPING.md lists the interface.
"""

from gsmgw.sms.address import normalize_number, sender_number
from gsmgw.sms.concat import Message, Reassembler, join_parts
from gsmgw.sms.errors import AddressError, DecodeError, TooManyPartsError, UserDataError
from gsmgw.sms.pdu import (
    Concat,
    Ports,
    Sms,
    SubmitPart,
    decode_pdu,
    encode_deliver,
    encode_status_report,
    encode_submit,
)
from gsmgw.sms.national import LANGUAGES as NATIONAL_LANGUAGES
from gsmgw.sms.split import (
    EIGHT_BIT,
    GSM7,
    UCS2,
    Encoding,
    PartCount,
    choose_alphabet,
    choose_encoding,
    count_data_parts,
    count_parts,
)
from gsmgw.sms.udh import check_user_header, parse_hex
from gsmgw.sms.status import status_category, status_meaning
from gsmgw.sms.validity import parse_validity, validity_seconds

__all__ = [
    "AddressError",
    "Concat",
    "DecodeError",
    "EIGHT_BIT",
    "Encoding",
    "GSM7",
    "Message",
    "NATIONAL_LANGUAGES",
    "PartCount",
    "Ports",
    "Reassembler",
    "Sms",
    "SubmitPart",
    "TooManyPartsError",
    "UCS2",
    "UserDataError",
    "check_user_header",
    "choose_alphabet",
    "choose_encoding",
    "count_data_parts",
    "count_parts",
    "decode_pdu",
    "encode_deliver",
    "encode_status_report",
    "encode_submit",
    "join_parts",
    "normalize_number",
    "parse_hex",
    "parse_validity",
    "sender_number",
    "status_category",
    "status_meaning",
    "validity_seconds",
]
