"""Hypothesis strategies for spool files: near-valid outgoing files, as users and programs write
them, with the values that broke readers before (durations past the year 9999, times at the
ends of the calendar, wrong alphabets, odd line ends). Shared by the spool and recovery fuzzers.
"""

from __future__ import annotations

from hypothesis import strategies as st

GROUPS = {"ops": ("+4915100000001", "+4915100000002")}

# Text without lone surrogates: a file's body is bytes, and the codec maps a lone surrogate to
# U+FFFD, so drawing one would only test the strategy.
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)

good_numbers = st.sampled_from(["+4915112345678", "015112345678", "004917612345678", "+49 (0) 30 123456", "group:ops"])
numbers = good_numbers | st.sampled_from(
    ["4930123456", "group:nobody", "+4915112345678, 0151 00000003", "12", "Vodafone", "", "+" + "9" * 30]
)
durations = st.one_of(
    st.sampled_from(["30 min", "2 days", "1 week", "1 h 30 min", "0", "soon", "-5 s", "1000000 weeks", "522 weeks"]),
    st.builds(
        lambda n, unit: f"{n} {unit}",
        st.integers(0, 10**30) | st.integers(0, 10**400),
        st.sampled_from(["s", "min", "hours", "days", "weeks", "", "parsecs"]),
    ),
)
times = st.one_of(
    st.sampled_from(
        ["2026-11-24T10:15:00+01:00", "2026-11-24T10:15:00Z", "2026-11-24", "9999-12-31T23:59:59-14:00",
         "0001-01-01T00:00:00+14:00", "9999-12-31", "0001-01-01", "2026-13-01"]
    ),
    st.datetimes().map(lambda moment: moment.isoformat()),
    st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat()),
)
# header -> (values that are fine, any value worth trying)
header_values = {
    "Expires": (st.sampled_from(["30 min", "2026-11-24T12:00:00+01:00"]), st.one_of(durations, times)),
    "Send_after": (st.sampled_from(["10 min", "2026-11-24T09:00:00Z"]), st.one_of(durations, times)),
    "Validity": (st.sampled_from(["2 days", "167"]), st.one_of(durations, st.integers(-5, 300).map(str))),
    "Alphabet": (st.sampled_from(["UTF-8", "ISO"]), st.sampled_from(["Latin", "UCS2", "Unicode", "GSM", "klingon"])),
    "Max_parts": (st.sampled_from(["6", "255"]), st.integers(-1, 300).map(str)),
    "Priority": (st.sampled_from(["high", "low"]), st.sampled_from(["urgent", ""])),
    "Modem": (st.just("gsm1"), st.sampled_from(["nope", "gsm2"])),
    "Report": (st.sampled_from(["yes", "no"]), st.just("maybe")),
    "Flash": (st.sampled_from(["yes", "no"]), st.just("perhaps")),
    "SMSC": (st.just("+491710760000"), st.sampled_from(["x", "", "+" + "1" * 30])),
    "To_TOA": (st.sampled_from(["international", "national"]), st.sampled_from(["unknown", "weird"])),
    "Autosplit": (st.just("1"), st.just("0")),
    "Text": (texts, texts),
    "UDH": (st.just("no"), st.just("yes")),
    "Client": (st.just("app"), st.text(max_size=20)),
    "Callback": (st.just("https://example.net/r"), st.text(max_size=20)),
}
header_names = st.sampled_from(sorted(header_values))
other_headers = st.tuples(st.from_regex(r"\A[A-Za-z][A-Za-z_-]{0,11}\Z"), st.text(max_size=20))


def _encode_body(text: str, alphabet: str) -> bytes:
    if alphabet == "utf-16-be":
        return text.encode("utf-16-be", "surrogatepass")
    return text.encode(alphabet, "replace")


@st.composite
def spool_files(draw) -> bytes:
    """A file with a To: line (usually), other headers, a blank line and a body. All headers but
    one hold values that are fine, so each example gets as far as the value being fuzzed."""
    eol = draw(st.sampled_from([b"\n", b"\r\n"]))
    lines = [("To", draw(good_numbers))] if draw(st.integers(0, 9)) != 9 else []
    for name in draw(st.lists(header_names, max_size=5, unique=True)):
        lines.append((name, draw(header_values[name][0])))
    fuzzed = draw(st.sampled_from(["To", *sorted(header_values), "other"]))
    if fuzzed == "To":
        lines.append(("To", draw(numbers)))
    elif fuzzed == "other":
        lines.append(draw(other_headers))
    else:
        lines.append((fuzzed, draw(header_values[fuzzed][1])))
    lines = draw(st.permutations(lines))
    head = b"".join(f"{name}: {value}".encode("utf-8", "surrogatepass") + eol for name, value in lines)
    body = _encode_body(draw(texts), draw(st.sampled_from(["utf-8", "latin-1", "utf-16-be"])))
    bom = b"\xef\xbb\xbf" if draw(st.integers(0, 9)) == 9 else b""
    blank = eol if draw(st.integers(0, 19)) != 19 else b""
    return bom + head + blank + body + draw(st.sampled_from([b"", eol]))
