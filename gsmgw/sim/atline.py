"""Split one AT command line into the commands it holds (pure; no I/O).

ITU-T V.250 §5.2 and §5.4: a command line is the prefix ``AT`` (either case,
anything before it is ignored), then basic commands written back to back
(``E0V1``, ``&F``, ``S0=0``, ``H``, ``Dnumber;``) and extended commands
(``+CMGF=0``, ``^CURC=0``) separated by ``;``.  So ``ATE0;+CMEE=1``,
``AT+CMGF=0;+CNMI=2,1,0,2,0`` and ``ate0v1`` are all one line.
"""

from __future__ import annotations

from dataclasses import dataclass

# Characters that start a vendor or standard extended command name.
EXTENDED_PREFIXES = "+^$#%*!"


class LineSyntaxError(ValueError):
    """The line cannot be split into commands; a modem answers ERROR."""


@dataclass(frozen=True)
class Command:
    """One command of a line.

    ``name`` is upper case with its prefix: ``E``, ``&F``, ``S0``, ``+CMGS``,
    ``^ICCID``.  ``form`` is ``action`` (``AT+CMGL`` / ``ATE``), ``set``
    (``=...``), ``read`` (``?``) or ``test`` (``=?``).  ``arg`` is the raw text
    after ``=`` (extended) or the digits after the letter (basic), unchanged.
    """

    name: str
    form: str
    arg: str = ""


def find_prefix(line: str) -> int:
    """Index just after the ``AT`` prefix, or -1 when the line has none (V.250 §5.2.1)."""
    upper = line.upper()
    position = upper.find("AT")
    return -1 if position < 0 else position + 2


def split_line(line: str) -> list[Command]:
    """Commands of the text after ``AT``; raises LineSyntaxError for what a modem rejects."""
    commands: list[Command] = []
    position = 0
    length = len(line)
    while position < length:
        char = line[position]
        if char in " ;":
            position += 1
            continue
        if char in EXTENDED_PREFIXES:
            command, position = _extended(line, position)
        else:
            command, position = _basic(line, position)
        commands.append(command)
    return commands


def _extended(line: str, start: int) -> tuple[Command, int]:
    """V.250 §5.4.1: name up to ``=``, ``?`` or ``;``; arguments up to an unquoted ``;``."""
    position = start + 1
    while position < len(line) and (line[position].isalnum() or line[position] in "_-."):
        position += 1
    name = line[start:position].upper()
    if len(name) < 2:
        raise LineSyntaxError(f"empty extended command name at column {start}")
    rest = line[position:]
    if rest.startswith("=?"):
        return Command(name, "test"), _skip_to_separator(line, position + 2)
    if rest.startswith("?"):
        return Command(name, "read"), _skip_to_separator(line, position + 1)
    if rest.startswith("="):
        end = _argument_end(line, position + 1)
        return Command(name, "set", line[position + 1 : end]), end
    return Command(name, "action"), position


def _basic(line: str, start: int) -> tuple[Command, int]:
    """V.250 §5.3: a letter (or ``&`` + letter) and an optional number; S-registers; D."""
    char = line[start].upper()
    if char == "&":
        if start + 1 >= len(line) or not line[start + 1].isalpha():
            raise LineSyntaxError(f"'&' without a command letter at column {start}")
        name = "&" + line[start + 1].upper()
        position = start + 2
    elif char.isalpha():
        name = char
        position = start + 1
    else:
        raise LineSyntaxError(f"unexpected {line[start]!r} at column {start}")
    if name == "D":
        # V.250 §6.3.1: the dial string runs to the end of the line (or its ';').
        end = line.find(";", position)
        end = len(line) if end < 0 else end + 1
        return Command("D", "action", line[position:end]), end
    if name == "S":
        digits_end = position
        while digits_end < len(line) and line[digits_end].isdigit():
            digits_end += 1
        register = "S" + (line[position:digits_end] or "0")
        if line[digits_end : digits_end + 1] == "?":
            return Command(register, "read"), digits_end + 1
        if line[digits_end : digits_end + 1] == "=":
            value_end = digits_end + 1
            while value_end < len(line) and line[value_end].isdigit():
                value_end += 1
            return Command(register, "set", line[digits_end + 1 : value_end]), value_end
        return Command(register, "read"), digits_end
    digits_end = position
    while digits_end < len(line) and line[digits_end].isdigit():
        digits_end += 1
    return Command(name, "action", line[position:digits_end]), digits_end


def _argument_end(line: str, position: int) -> int:
    in_quotes = False
    while position < len(line):
        char = line[position]
        if char == '"':
            in_quotes = not in_quotes
        elif char == ";" and not in_quotes:
            return position
        position += 1
    if in_quotes:
        raise LineSyntaxError("unterminated quoted string")
    return position


def _skip_to_separator(line: str, position: int) -> int:
    if position < len(line) and line[position] not in ";":
        raise LineSyntaxError(f"unexpected {line[position]!r} after '?' at column {position}")
    return position


def split_arguments(arg: str) -> list[str]:
    """Comma-separated parameters with quotes removed; empty ones stay as ""."""
    values: list[str] = []
    current: list[str] = []
    in_quotes = False
    for char in arg:
        if char == '"':
            in_quotes = not in_quotes
        elif char == "," and not in_quotes:
            values.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    values.append("".join(current).strip())
    return values
