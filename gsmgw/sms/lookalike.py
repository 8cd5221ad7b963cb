"""Characters that force UCS-2, and their GSM-7 look-alikes (pure).

One character outside the GSM 7-bit default alphabet and its extension table (TS 23.038 §6.2.1)
makes the whole message UCS-2: 70 characters per SMS instead of 160. Word processors put such
characters into ordinary text (’ “ ” … – and non-breaking spaces), and the web console offers to
replace them. The table maps each to what a reader takes for the same thing; letters with an
accent that GSM-7 lacks lose the accent (á -> a), as phones that show GSM-7 do. Characters with
no look-alike (emoji, other scripts) stay: the message is then UCS-2 by necessity.
"""

from __future__ import annotations

import unicodedata

from collections.abc import Sequence

from gsmgw.sms import gsm7
from gsmgw.sms.split import gsm7_can_carry

GSM7_LOOKALIKES: dict[str, str] = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u00b4": "'", "\u0060": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2039": "<", "\u203a": ">",
    "\u2026": "...",
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
    "\u00a0": " ", "\u2002": " ", "\u2003": " ", "\u2007": " ", "\u2009": " ", "\u200a": " ", "\u202f": " ",
    "\u200b": "", "\u00ad": "", "\u2060": "", "\ufeff": "",
    "\u2022": "*", "\u00b7": ".", "\u02c6": "^", "\u02dc": "~", "\u2044": "/", "\u00d7": "x",
    "\u2122": "TM", "\u00a9": "(c)", "\u00ae": "(R)",
}


def forcing_ucs2(text: str, national_languages: Sequence[str] = ()) -> list[str]:
    """The distinct characters of `text` that no GSM-7 table allowed here can carry (the default
    alphabet, or the national tables of `national_languages`), in order of first appearance."""
    found: dict[str, None] = {}
    for char in text:
        if char not in found and not gsm7_can_carry(char, national_languages):
            found[char] = None
    return list(found)


def lookalike(char: str) -> str | None:
    """The GSM-7 text a reader takes for `char`, or None when there is none."""
    if gsm7.is_gsm7(char):
        return char
    replacement = GSM7_LOOKALIKES.get(char)
    if replacement is not None:
        return replacement
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    if base and base != char and gsm7.is_gsm7(base):
        return base
    return None


def replace_lookalikes(text: str) -> str:
    """`text` with every character that has a GSM-7 look-alike replaced by it."""
    return "".join(replacement if (replacement := lookalike(char)) is not None else char for char in text)
