"""gsmgw.sms: the pure SMS codec (GSM-7, UCS-2, addresses, PDUs, splitting, reassembly).

No I/O here. The AT driver, the daemon and the simulator use this package;
docs/DEVELOPING.md lists the interface.
"""

from gsmgw.sms.address import normalize_number, sender_number
from gsmgw.sms.concat import Message, Reassembler, join_parts
from gsmgw.sms.errors import AddressError, DecodeError, TooManyPartsError
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
from gsmgw.sms.split import EIGHT_BIT, GSM7, UCS2, PartCount, choose_alphabet, count_parts
from gsmgw.sms.status import status_category, status_meaning
from gsmgw.sms.validity import parse_validity, validity_seconds

__all__ = [
    "AddressError",
    "Concat",
    "DecodeError",
    "EIGHT_BIT",
    "GSM7",
    "Message",
    "PartCount",
    "Ports",
    "Reassembler",
    "Sms",
    "SubmitPart",
    "TooManyPartsError",
    "UCS2",
    "choose_alphabet",
    "count_parts",
    "decode_pdu",
    "encode_deliver",
    "encode_status_report",
    "encode_submit",
    "join_parts",
    "normalize_number",
    "parse_validity",
    "sender_number",
    "status_category",
    "status_meaning",
    "validity_seconds",
]
