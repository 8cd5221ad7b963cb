"""From the readable part of a mail to the text of an SMS (EMAIL.md "The text"). Pure: no I/O.

- `html_to_text`: an HTML-only mail as a reader sees it: blocks become lines, scripts, styles and
  signature blocks are dropped, `<blockquote>` (the quoted mail of a reply) becomes `>` lines.
- `clean_body`: the signature after `-- `, quoted reply lines (`>`) with the "On … wrote:" or
  "Am … schrieb Name:" line that introduces them, and the "Original Message" part of Outlook replies are removed; runs of
  blanks become one space and runs of empty lines disappear, because an SMS has no room for
  layout.
- `sms_text`: subject, body or both (joined by ": "), as `smtp.text` says.
- `fit_parts`: a text cut so that it fits in `max_parts` SMS parts, ending in "…".

Every function accepts any str and never raises for its content.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html.parser import HTMLParser

from gsmgw.sms import count_parts

TEXT_MODES = ("subject", "body", "subject+body")
SUBJECT_SEPARATOR = ": "
ELLIPSIS = "…"

# An SMS holds at most 255 parts of at most 160 characters: no mail needs more text than this
# to fill one, and cleaning a megabyte of quoted history would only cost time.
MAX_TEXT_CHARS = 64 * 1024
MAX_HTML_CHARS = 512 * 1024
MAX_HTML_NESTING = 256

# Characters that take room in an SMS but show nothing (or only a space) to a reader. A no-break
# space from HTML's &nbsp; would also turn a GSM-7 text into UCS-2 (70 instead of 160 per part).
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_SPACES = dict.fromkeys(map(ord, "\u00a0\u2007\u202f\t\v\f"), " ")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_BLANKS = re.compile(r"[ ]{2,}")

# "On Mon, 1 Jan 2024 at 10:00, Jane <jane@example.org> wrote:" and its translations as mail
# clients write them above a quoted reply.
_ATTRIBUTION_END = re.compile(
    r"(wrote|writes|schrieb|a écrit|escribió|ha scritto|schreef|skrev|napisał|escreveu)\s*:\s*\Z",
    re.IGNORECASE,
)
_ATTRIBUTION_START = re.compile(r"\A(on|am|le|el|il|op|den|dnia|em|w dniu)\b", re.IGNORECASE)
# German, Dutch, Swedish... clients put the name after the verb: "Am 06.12.2026 um 18:34 schrieb
# Jane Doe <jane@example.org>:", so such a line (or its wrapped end) ends in the name and ":".
_ATTRIBUTION_VERB = re.compile(r"\b(wrote|writes|schrieb|a écrit|escribió|ha scritto|schreef|skrev|napisał|"
                               r"pisze|escreveu)\b", re.IGNORECASE)
# Outlook puts the quoted mail below such a line instead of quoting it with ">".
_ORIGINAL_MESSAGE = re.compile(
    r"\A-{2,}\s*(original message|ursprüngliche nachricht|message d'origine|mensaje original|"
    r"messaggio originale|oorspronkelijk bericht|forwarded message|weitergeleitete nachricht)\s*-{2,}\Z",
    re.IGNORECASE,
)
_OUTLOOK_RULE = re.compile(r"\A_{10,}\Z")
_HEADER_LIKE = re.compile(r"\A(from|von|de|van|da|från)\s*:", re.IGNORECASE)

_BLOCK_TAGS = frozenset((
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "fieldset",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr",
    "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody", "thead", "tfoot", "tr", "ul",
))
_CELL_TAGS = frozenset(("td", "th"))
_HIDDEN_TAGS = frozenset(("head", "script", "style", "template", "title", "noscript", "object", "svg"))
_VOID_TAGS = frozenset((
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
))
# Mail clients mark their signature blocks with these classes (Gmail, Thunderbird, Apple Mail, Outlook).
_SIGNATURE_CLASS = re.compile(r"signature|moz-signature|gmail_signature|x_signature", re.IGNORECASE)
# Reply containers that hold the quoted mail rather than marking it with <blockquote>.
_QUOTE_CLASS_OR_ID = re.compile(r"gmail_quote|divRplyFwdMsg|moz-cite-prefix|yahoo_quoted|appendonsend", re.IGNORECASE)


class _TextCollector(HTMLParser):
    """Collects (text, quoted) pieces and line breaks; tolerant of any tag soup."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[tuple[str, bool]] = []
        # Open elements: (tag, hides its content, quotes its content, keeps whitespace).
        self.stack: list[tuple[str, bool, bool, bool]] = []

    def _hidden(self) -> bool:
        return any(hidden for _, hidden, _, _ in self.stack)

    def _quoted(self) -> bool:
        return any(quoted for _, _, quoted, _ in self.stack)

    def _pre(self) -> bool:
        return any(pre for _, _, _, pre in self.stack)

    def _newline(self) -> None:
        self.pieces.append(("\n", False))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = tag.lower()
        if tag in _BLOCK_TAGS:
            self._newline()
        elif tag in _CELL_TAGS:
            self.pieces.append((" ", False))
        if tag in _VOID_TAGS:
            return
        marks = " ".join(value or "" for name, value in attrs if name in ("class", "id"))
        hidden = tag in _HIDDEN_TAGS or bool(_SIGNATURE_CLASS.search(marks))
        quoted = tag == "blockquote" or bool(_QUOTE_CLASS_OR_ID.search(marks))
        if len(self.stack) < MAX_HTML_NESTING:
            self.stack.append((tag, hidden, quoted, tag == "pre"))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag.lower() in _BLOCK_TAGS:
            self._newline()

    def handle_endtag(self, tag: str) -> None:
        tag = tag.lower()
        if tag in _BLOCK_TAGS:
            self._newline()
        for position in range(len(self.stack) - 1, -1, -1):
            if self.stack[position][0] == tag:
                del self.stack[position:]
                return
        # An end tag without its start (tag soup) closes nothing.

    def handle_data(self, data: str) -> None:
        if not data or self._hidden():
            return
        if not self._pre():
            # HTML shows any run of white space as one space (CSS 2.1 §16.6.1).
            words = " ".join(data.split())
            data = (" " if data[0].isspace() else "") + words + (" " if data[-1].isspace() and words else "")
        self.pieces.append((data, self._quoted()))

    def lines(self) -> list[str]:
        lines: list[str] = []
        current: list[str] = []
        quoted = False
        for text, piece_quoted in self.pieces:
            for position, chunk in enumerate(text.split("\n")):
                if position:
                    lines.append(("> " if quoted else "") + "".join(current))
                    current, quoted = [], False
                current.append(chunk)
                quoted = quoted or (piece_quoted and bool(chunk.strip()))
        lines.append(("> " if quoted else "") + "".join(current))
        return lines


_TAG = re.compile(r"<[^>]*>")


def html_to_text(html: str) -> str:
    """The text a reader sees in `html`, one block per line; quoted blocks become `>` lines."""
    html = html[:MAX_HTML_CHARS]
    collector = _TextCollector()
    try:
        collector.feed(html)
        collector.close()
        return "\n".join(collector.lines())
    except Exception:  # noqa: BLE001 - the stdlib parser has raised on odd declarations; strip tags instead
        import html as html_module

        return html_module.unescape(_TAG.sub(" ", html))


def _normalize(text: str) -> str:
    text = text[:MAX_TEXT_CHARS]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.translate(_INVISIBLE).translate(_SPACES)
    text = _CONTROL.sub("", text)
    # Lone surrogates (a broken decoder upstream) cannot be sent or stored: U+FFFD instead.
    return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "replace")


def _is_quote(line: str) -> bool:
    return line.lstrip().startswith(">")


def _cut_at_signature(lines: list[str]) -> list[str]:
    """Everything before the signature separator (RFC 3676 §4.3 "-- ", also without its space,
    which many clients trim) or the start of an Outlook-style quoted original."""
    for position, line in enumerate(lines):
        stripped = line.strip()
        if line.rstrip() == "--" or _ORIGINAL_MESSAGE.match(stripped):
            return lines[:position]
        if _OUTLOOK_RULE.match(stripped):
            following = next((other.strip() for other in lines[position + 1:] if other.strip()), "")
            if _HEADER_LIKE.match(following):
                return lines[:position]
    return lines


def _is_named_attribution(line: str) -> bool:
    """"Am … schrieb Jane Doe:": an attribution whose verb comes before the name."""
    return line.endswith(":") and bool(_ATTRIBUTION_START.match(line)) and bool(_ATTRIBUTION_VERB.search(line))


def _drop_quotes(lines: list[str]) -> list[str]:
    """Without quoted lines and the attribution line(s) that introduce a quote."""
    kept: list[str] = []
    for position, line in enumerate(lines):
        if _is_quote(line):
            continue
        following = next((other for other in lines[position + 1:] if other.strip()), None)
        if following is not None and _is_quote(following):
            stripped = line.strip()
            previous = kept[-1].strip() if kept else ""
            if _ATTRIBUTION_END.search(stripped) or _is_named_attribution(stripped):
                # "On Mon, 1 Jan 2024, Jane Doe <jane@" / "example.org> wrote:" is often wrapped.
                if previous and _ATTRIBUTION_START.match(previous) and not _ATTRIBUTION_START.match(stripped):
                    kept.pop()
                continue
            if stripped.endswith(":") and previous and _is_named_attribution(f"{previous} {stripped}"):
                kept.pop()  # "Am …, schrieb Jane Doe" / "<jane@example.org>:"
                continue
        kept.append(line)
    return kept


def fold_blanks(text: str) -> str:
    """Runs of spaces become one space, lines are trimmed, empty lines are dropped."""
    lines = (_BLANKS.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def clean_body(text: str) -> str:
    """The words a person wrote in a mail body: no signature, no quoted reply, no empty layout."""
    lines = _normalize(text).split("\n")
    lines = _drop_quotes(_cut_at_signature(lines))
    return fold_blanks("\n".join(lines))


def clean_subject(subject: str) -> str:
    """A subject on one line with single spaces."""
    return " ".join(_normalize(subject).split())


def unflow(text: str, *, delsp: bool) -> str:
    """RFC 3676 format=flowed: a line ending in a space continues on the next line (§4.2).

    With DelSp=yes the space was added by the sender and is removed (§4.5). The signature
    separator "-- " is never a flowed line (§4.3).
    """
    out: list[str] = []
    current = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith(" "):
            line = line[1:]  # space-stuffing (§4.4)
        if line.endswith(" ") and line != "-- ":
            current += line[:-1] if delsp else line
            continue
        out.append(current + line)
        current = ""
    if current:
        out.append(current)
    return "\n".join(out)


def sms_text(subject: str, body: str, mode: str) -> str:
    """The SMS text of a mail: `mode` is one of TEXT_MODES. When the part `mode` names is empty
    the other is used, so a device that writes only a subject (or only a body) still gets through.
    Returns "" when both are empty."""
    subject, body = subject.strip(), body.strip()
    if mode == "subject":
        return subject or body
    if mode == "body":
        return body or subject
    if subject and body:
        return f"{subject}{SUBJECT_SEPARATOR}{body}"
    return subject or body


def fit_parts(text: str, max_parts: int, national_languages: Sequence[str] = ()) -> str:
    """`text`, or its longest beginning that fits in `max_parts` parts with "…" after it, counted
    as the encoder will send it (with `defaults.national_languages`).

    "…" is not in the GSM 7-bit alphabet (TS 23.038 §6.2.1), so a cut text is sent in UCS-2;
    the cut is computed with that, and falls after a word when one ends in the last 20 characters.
    """
    if count_parts(text, national_languages=national_languages).parts <= max_parts:
        return text

    def fits(length: int) -> bool:
        return count_parts(text[:length].rstrip() + ELLIPSIS, national_languages=national_languages).parts <= max_parts

    low, high = 0, len(text)  # fits(low) holds, fits(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            low = middle
        else:
            high = middle
    cut = text[:low]
    word_end = max(cut.rfind(" "), cut.rfind("\n"))
    if word_end > 0 and low - word_end <= 20:
        cut = cut[:word_end]
    return cut.rstrip() + ELLIPSIS
