"""Fuzzing the spool reader: any bytes a user can drop into outgoing/ are read into a message or
refused with a SpoolFormatError that says what to fix, never anything else.

An exception of another type used to escape the daemon's file reader and stop it (an
`Expires: 1000000 weeks` overflowed datetime at every start), so every example here also does
what the daemon does with an accepted file: timestamps, ISO text, the PDUs of every part.
The strategies draw mostly near-valid files, so that the accepting path is fuzzed as hard as
the refusing one; they live in tests/spoolfiles.py, shared with the recovery fuzzer.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gsmgw.config import Defaults
from gsmgw.sms import encode_submit
from gsmgw.spool.format import (
    SpoolFormatError,
    build_failed,
    build_sent,
    iso,
    parse_outgoing,
    read_spool_file,
    single_recipient,
    update_headers,
)
from spoolfiles import GROUPS, spool_files

NOW = datetime(2026, 11, 24, 10, 0, 0, tzinfo=timezone(timedelta(hours=1)))
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# File times as the daemon passes them in (an mtime, which `touch -d` can set to anything).
created_times = st.none() | st.datetimes(timezones=st.just(timezone.utc)) | st.just(NOW - timedelta(hours=1))


def read_as_the_daemon_does(data: bytes, created: datetime | None):
    try:
        message = parse_outgoing(
            data, now=NOW, default_country="49", defaults=Defaults(report=False), groups=GROUPS, created=created
        )
    except SpoolFormatError as exc:
        assert exc.reason
        return None
    assert message.recipients  # E.164, or as dialled with To_TOA
    assert 1 <= message.parts <= message.max_parts <= 255
    for moment in (message.send_after, message.expires):
        if moment is not None:
            assert moment.utcoffset() is not None
            moment.timestamp()
            iso(moment.astimezone(timezone.utc))
    for number in message.recipients:
        parts = encode_submit(
            number, message.text, report=message.report, flash=message.flash, validity=message.validity,
            smsc=message.smsc, max_parts=message.max_parts,
        )
        assert len(parts) == message.parts
        single_recipient(data, number)
    return message


@FUZZ
@given(st.binary(max_size=400), created_times)
@example(b"To: +4915112345678\nExpires: 1000000 weeks\n\nhi", None)
@example(b"To: +4915112345678\nSend_after: 1 h\n\nhi", datetime(9999, 12, 31, 23, 0, tzinfo=timezone.utc))
def test_arbitrary_bytes_are_read_or_refused_with_a_reason(data, created):
    read_as_the_daemon_does(data, created)


@FUZZ
@given(spool_files(), created_times)
def test_near_valid_files_are_read_or_refused_with_a_reason(data, created):
    read_as_the_daemon_does(data, created)


@FUZZ
@given(st.one_of(st.binary(max_size=300), spool_files()), st.text(max_size=60))
def test_the_files_gsmgw_writes_from_any_original_keep_its_body(data, reason):
    failed = build_failed(data, failed=NOW, reason=reason, attempts=3)
    kept = read_spool_file(failed)
    assert kept.headers.get("Attempts") == "3"
    # The original is never lost: after our headers, its body (or all of it) is still there.
    assert data.endswith(kept.body) or kept.body.endswith(data)
    try:
        original = read_spool_file(data)
    except SpoolFormatError:
        return
    sent = build_sent(data, modem="gsm1", imsi=None, sent=NOW, parts=2, message_ids=[1, 2])
    assert read_spool_file(sent).body == original.body
    assert read_spool_file(update_headers(data, {"Status": reason or None})).body == original.body
