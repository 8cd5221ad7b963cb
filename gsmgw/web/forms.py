"""What people type and upload in the console, read and checked (pure: no I/O).

- `resolve_recipients`: the To field of compose and campaigns: numbers in any form a door
  accepts, `group:NAME` (config or console group), contact names, and `Name <number>` as the
  completion offers them;
- `read_csv`: an uploaded recipient list (`number,name,...`): UTF-8 (with or without a byte
  order mark) or Windows-1252; comma, semicolon or tab separated, as the header row shows (or an
  Excel `sep=;` first line); quoted cells may hold separators, quotes ("") and line breaks; every
  problem names its row (as a spreadsheet numbers them, the header being row 1; with the line of
  the file when a quoted line break makes the two differ) and its column;
- `fill`: `{column}` placeholders of a campaign text.
Nothing here decides whether a client may send somewhere: that is gsmgw.clients, as for every door.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from gsmgw.rules import group_reference
from gsmgw.sms import AddressError, normalize_number

MAX_CSV_ROWS = 50_000
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_ .-]{0,40})\}")
NUMBER_LIKE = re.compile(r"[+0-9][0-9 ()./-]*\Z")
NAME_AND_NUMBER = re.compile(r"(.*)<([^<>]+)>\s*\Z")
NUMBER_COLUMNS = ("number", "phone", "mobile", "to", "nummer", "telefon", "handy")
SEPARATORS = (",", ";", "\t")
SCIENTIFIC = re.compile(r"[0-9](?:[.,][0-9]+)?[eE]\+?[0-9]+\Z")  # 4.91511E+12: a spreadsheet's number format


@dataclass(frozen=True)
class Recipient:
    number: str
    name: str = ""
    fields: dict = field(default_factory=dict)  # column -> value (CSV), for placeholders
    row: int | None = None  # CSV row (header = 1), None for typed recipients
    line: int | None = None  # the file's line where the row starts (differs after a quoted line break)

    @property
    def label(self) -> str:
        return f"row {self.row}" if self.row is not None else self.number


@dataclass(frozen=True)
class RowError:
    row: int | None  # None: not about one row (the file or a typed entry)
    column: str
    message: str
    line: int | None = None

    @property
    def place(self) -> str:
        """The row as a spreadsheet numbers it, and the file's line when that differs."""
        if self.row is None:
            return ""
        return f"{self.row} (line {self.line})" if self.line is not None and self.line != self.row else str(self.row)

    def __str__(self) -> str:
        where = f"row {self.place}, column {self.column}" if self.row is not None else self.column
        return f"{where}: {self.message}"


def split_entries(text: str) -> list[str]:
    return [entry.strip() for entry in re.split(r"[,;\n]", text or "") if entry.strip()]


def resolve_recipients(
    text: str,
    *,
    default_country: str | None,
    expand_group: Callable[[str], Sequence[str]],
    contacts_named: Callable[[str], Sequence[tuple[str, str]]],
    contact_name: Callable[[str], str | None] = lambda number: None,
) -> tuple[list[Recipient], list[str]]:
    """(recipients in order, each number once; problems, one line each saying what to write).

    `expand_group(name)` returns the members or raises ValueError (its message is shown);
    `contacts_named(name)` returns [(number, name)] of contacts with that name."""
    recipients: dict[str, Recipient] = {}
    problems: list[str] = []
    for entry in split_entries(text):
        group = group_reference(entry)
        if group is not None:
            try:
                members = expand_group(group)
            except ValueError as error:
                problems.append(str(error))
                continue
            if not members:
                problems.append(f"the group {group!r} has no members")
            for number in members:
                recipients.setdefault(number, Recipient(number, contact_name(number) or ""))
            continue
        match = NAME_AND_NUMBER.match(entry)
        candidate = match.group(2).strip() if match else entry
        if NUMBER_LIKE.match(candidate):
            try:
                number = normalize_number(candidate, default_country)
            except AddressError as error:
                problems.append(str(error))
                continue
            name = match.group(1).strip() if match else (contact_name(number) or "")
            recipients.setdefault(number, Recipient(number, name))
            continue
        found = contacts_named(entry)
        if not found:
            problems.append(f"{entry!r} is neither a phone number, a contact nor group:NAME; write a number "
                            f"like +4915112345678, a contact's name, or group:NAME")
        elif len(found) > 1:
            problems.append(f"{len(found)} contacts are called {entry!r} ({', '.join(n for n, _ in found)}); "
                            f"write the number")
        else:
            number, name = found[0]
            recipients.setdefault(number, Recipient(number, name))
    return list(recipients.values()), problems


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")  # what spreadsheets on Windows save as "CSV"


def _separator(header_line: str) -> str:
    """The separator the header row uses: the most frequent of SEPARATORS outside quotes (a
    header of one column has none: a comma then, which no cell of that file holds unquoted)."""
    outside, quoted = [], False
    for char in header_line:
        if char == '"':
            quoted = not quoted
        elif not quoted:
            outside.append(char)
    counts = {separator: outside.count(separator) for separator in SEPARATORS}
    best = max(SEPARATORS, key=lambda separator: counts[separator])
    return best if counts[best] else ","


def read_csv(data: bytes, *, default_country: str | None) -> tuple[list[Recipient], list[str], list[RowError]]:
    """(recipients, the column names, problems). A row with a problem is not among the recipients;
    a number in two rows is kept once (the later row is a problem, so nobody gets it twice)."""
    text = _decode(data)
    if not text.strip():
        return [], [], [RowError(None, "File", "the file is empty; the first row names the columns, e.g. number,name")]
    lines = io.StringIO(text, newline=None)
    first = lines.readline()
    skipped_lines = 0
    declared = re.fullmatch(r"\s*sep=(.)\s*", first)
    if declared:  # Excel's "sep=;" line before the header
        separator, skipped_lines = declared.group(1), 1
        first = lines.readline()
    else:
        separator = _separator(first)
    lines.seek(0)
    if skipped_lines:
        lines.readline()
    reader = csv.reader(lines, delimiter=separator, quotechar='"', doublequote=True, skipinitialspace=False,
                        strict=False)
    try:
        header = [cell.strip() for cell in next(reader)]
    except (StopIteration, csv.Error) as error:
        return [], [], [RowError(1, "(header)", f"cannot read the first row: {error}", line=1 + skipped_lines)]
    lowered = [name.lower() for name in header]
    number_column = next((i for i, name in enumerate(lowered) if name in NUMBER_COLUMNS), None)
    if number_column is None:
        return [], header, [RowError(1, "(header)", f"no column is called number (the columns are: "
                                                    f"{', '.join(header) or 'none'}); name the column of "
                                                    f"phone numbers 'number' in the first row", line=1 + skipped_lines)]
    name_column = next((i for i, name in enumerate(lowered) if name == "name"), None)
    recipients: list[Recipient] = []
    problems: list[RowError] = []
    seen: dict[str, int] = {}
    row_number = 1
    line = reader.line_num + 1 + skipped_lines  # where the next row starts
    try:
        for cells in reader:
            row_number += 1
            at, line = line, reader.line_num + 1 + skipped_lines

            def problem(column: str, message: str) -> None:
                problems.append(RowError(row_number, column, message, line=at))

            if not any(cell.strip() for cell in cells):
                continue  # blank lines at the end of a spreadsheet's export
            if row_number - 1 > MAX_CSV_ROWS:
                problem("(file)", f"more than {MAX_CSV_ROWS} rows; split the file")
                break
            if len(cells) > len(header):
                problem(header[-1] if header else "(row)",
                        f"{len(cells)} cells but the header names {len(header)} columns (a {_separator_name(separator)} "
                        f"in a cell needs quotes around the cell)")
                continue
            values = {header[i]: (cells[i].strip() if i < len(cells) else "") for i in range(len(header))}
            raw_number = values[header[number_column]]
            if not raw_number:
                problem(header[number_column], "the number is empty")
                continue
            if SCIENTIFIC.match(raw_number):
                problem(header[number_column], f"{raw_number!r} is a number the spreadsheet shortened (scientific "
                                               "notation loses digits); format the column as text, type the numbers "
                                               "again and save the file again")
                continue
            try:
                number = normalize_number(raw_number, default_country)
            except AddressError as error:
                problem(header[number_column], str(error))
                continue
            if number in seen:
                problem(header[number_column], f"{number} is already in row {seen[number]}")
                continue
            seen[number] = row_number
            name = values[header[name_column]] if name_column is not None else ""
            recipients.append(Recipient(number, name, values, row_number, at))
    except csv.Error as error:
        problems.append(RowError(row_number + 1, "(row)", f"cannot read this row as CSV: {error}", line=line))
    return recipients, header, problems


def _separator_name(separator: str) -> str:
    return {",": "comma", ";": "semicolon", "\t": "tab"}.get(separator, repr(separator))


def placeholders(template: str) -> list[str]:
    return list(dict.fromkeys(match.group(1) for match in PLACEHOLDER.finditer(template)))


def fill(template: str, recipient: Recipient) -> tuple[str, RowError | None]:
    """The text for one recipient; a placeholder whose field is empty is a problem of that row.

    Field names match case-insensitively; `{number}` and `{name}` always exist. A placeholder that
    names no field stays as written (`unknown_placeholders` reports those before)."""
    values = {key.lower(): value for key, value in recipient.fields.items()}
    values.setdefault("number", recipient.number)
    values.setdefault("name", recipient.name)
    for name in placeholders(template):
        if name.lower() in values and not values[name.lower()]:
            column = next((key for key in recipient.fields if key.lower() == name.lower()), name)
            return "", RowError(recipient.row, column, f"empty, but the message uses {{{name}}}"
                                if recipient.row is not None else
                                f"{recipient.number} has no {name} (the message uses {{{name}}})", line=recipient.line)
    return PLACEHOLDER.sub(lambda match: values.get(match.group(1).lower(), match.group(0)), template), None


def unknown_placeholders(template: str, columns: Iterable[str]) -> list[str]:
    known = {column.lower() for column in columns} | {"number", "name"}
    return [name for name in placeholders(template) if name.lower() not in known]


def spreadsheet_safe(value: str) -> str:
    """A CSV cell that a spreadsheet shows as text and never runs as a formula (a cell starting
    with =, +, -, @ is one); a phone number like +4915112345678 stays as it is."""
    if not value:
        return value
    if value[0] in "=-@\t\r" or (value[0] == "+" and not value[1:].isdigit()):
        return "'" + value
    return value


def local_datetime(value: str) -> datetime | None:
    """A `datetime-local` field ("2026-11-25T10:15") in this machine's zone; None if empty.
    ValueError for anything else."""
    text = (value or "").strip()
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.astimezone()
