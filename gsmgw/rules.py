"""How destinations and the allow/deny rules of clients are written, and what they mean.

Pure: no I/O. The config checker (`gsmgw.config`), the client registry (`gsmgw.clients`), the
spool reader (`gsmgw.spool.format`) and the HTTP validators read them through this module, so a
rule that `check-config` accepts is the rule that is matched.

A rule is one of:
  - a number pattern, where `*` is any run of digits and `?` one digit: "+49*", "+49 900*",
    "0049900*", "49900*", or (with `default_country: "49"`) "0900*". It is kept in the E.164
    form of the numbers it matches ("+49900*", see `gsmgw.sms.address.normalize_number_pattern`),
    and every destination is matched in its E.164 form, so a rule matches a number however
    either of them was written. A pattern that starts with `*` ("*", "*900*") is matched against
    the whole E.164 form, "+" included;
  - `group:NAME`: the members of a group of the config;
  - `modem:NAME` (only in `allow`; NAME may hold `*` and `?`): inbound SMS that arrive on that
    modem go to the client's SMPP receiver. `*` alone also means every modem.
The words `group:` and `modem:` are read in any case; blanks around NAME do not count; NAME
itself is matched as written (names in the config are case-sensitive).
"""

from __future__ import annotations

import fnmatch
import re

from gsmgw.sms.address import normalize_number_pattern
from gsmgw.sms.errors import AddressError

GROUP_PREFIX = "group:"
MODEM_PREFIX = "modem:"
ALL = "*"

RULE_EXAMPLES = '"+49*", "group:oncall" or "modem:gsm1"'


class RuleError(ValueError):
    """A rule that cannot be used: `message` says what is wrong, `fix` what to write instead."""

    def __init__(self, message: str, fix: str):
        super().__init__(f"{message}; {fix}")
        self.message = message
        self.fix = fix


def _reference(text: str, prefix: str) -> str | None:
    if text[: len(prefix)].lower() != prefix:
        return None
    return text[len(prefix):].strip()


def group_reference(text: object) -> str | None:
    """NAME of a `group:NAME` destination or rule (prefix in any case, blanks dropped), else None."""
    if not isinstance(text, str):
        return None
    return _reference(text.strip(), GROUP_PREFIX)


def modem_reference(text: str) -> str | None:
    """The modem name pattern of a `modem:NAME` rule, else None."""
    return _reference(text.strip(), MODEM_PREFIX)


def normalize_rule(text: object, default_country: str | None, *, deny: bool = False) -> str:
    """The canonical form of a rule (see the module docstring); RuleError if it has none.

    Group names are not checked against the config here; the caller knows the groups.
    """
    if not isinstance(text, str) or not text.strip():
        raise RuleError(f"a rule must be a non-empty string, not {text!r}", f"write {RULE_EXAMPLES}")
    rule = text.strip()
    group = group_reference(rule)
    if group is not None:
        if not group:
            raise RuleError(f"{rule!r} names no group", 'write "group:oncall" with the name of a group under groups:')
        return GROUP_PREFIX + group
    modem = modem_reference(rule)
    if modem is not None:
        if deny:
            raise RuleError(
                f"{rule!r} in deny: a modem rule only says which modems' inbound SMS the client receives",
                "move it to allow:, or remove it",
            )
        if not modem:
            raise RuleError(f"{rule!r} names no modem", 'write "modem:gsm1" (or "modem:*" for every modem)')
        return MODEM_PREFIX + modem
    try:
        return normalize_number_pattern(rule, default_country)
    except AddressError as exc:
        message, _, fix = str(exc).partition("; ")
        raise RuleError(message, fix or f"write {RULE_EXAMPLES}") from None


def is_number_rule(rule: str) -> bool:
    """True for a canonical number pattern (not `group:` or `modem:`)."""
    return rule.startswith(("+", ALL))


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob as a regex matching the whole subject: `*` any run, `?` one character, the rest
    literal. A canonical number pattern compiled so matches E.164 numbers."""
    parts = [".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern]
    return re.compile("".join(parts) + r"\Z")


def rule_names_modem(rule: str, modem: str) -> bool:
    """Does a canonical rule send inbound SMS of `modem` to the client? (`*` or `modem:PATTERN`)."""
    if rule == ALL:
        return True
    pattern = modem_reference(rule)
    return pattern is not None and fnmatch.fnmatchcase(modem, pattern)
