"""The message status view (gsmgw.spool.message_status): one answer for sent/, the API, webhooks
and SMPP, from the journal's rows or from a spool file."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pytest

from gsmgw.spool import journal as J
from gsmgw.spool import message_status as S
from gsmgw.spool.format import build_failed, build_sent, make_outgoing, update_headers
from gsmgw.spool.journal import NewMessage, NewPart, SqliteJournal
from gsmgw.spool.store import Spool

T0 = 1_790_000_000.0


@dataclass(frozen=True)
class Part:
    seq: int
    report: str | None = "pending"
    tp_status: int | None = None
    discharge: str | None = None
    mr: int | None = None
    state: str = J.PART_SUBMITTED


def delivered(seq, at="2026-11-24T10:00:0%d+01:00"):
    return Part(seq, "delivered", 0, at % seq)


# -- delivery: the whole message from its parts' reports -------------------------------------------

def test_no_report_yet_is_no_delivery():
    assert S.delivery([Part(1), Part(2)]) is None
    assert S.delivery([Part(1, report=None)]) is None  # no report asked


def test_a_single_part_keeps_the_report_file_words():
    one = S.delivery([Part(1, "pending", 0x20)])
    assert one.word == "pending" and one.status_header() == "pending 32 (congestion, SC still trying)"
    one = S.delivery([delivered(1)])
    assert one.word == "delivered" and one.status_header().startswith("delivered 0 (")
    assert one.sent_file_headers() == {"Status": one.status_header(), "Delivered": "2026-11-24T10:00:01+01:00"}


@pytest.mark.parametrize(
    "name, parts, word, counts, header",
    [
        ("part 2 failed, then 1 and 3 delivered: failed wins",
         [delivered(1), Part(2, "failed", 0x41, "x"), delivered(3)], "failed", (2, 1, 0),
         "failed 65 (incompatible destination); 1 of 3 parts failed, 2 delivered"),
        ("failed while the others still wait",
         [Part(1), Part(2, "failed", 0x41), Part(3, "pending", 0x20)], "failed", (0, 1, 2),
         "failed 65 (incompatible destination); 1 of 3 parts failed, 0 delivered"),
        ("two failed: the first names the reason",
         [Part(1, "failed", 0x46), Part(2, "failed", 0x41)], "failed", (0, 2, 0),
         "failed 70 (SM validity period expired); 2 of 2 parts failed, 0 delivered"),
        ("every part delivered",
         [delivered(2), delivered(1)], "delivered", (2, 0, 0),
         "delivered 0 (short message received by the SME); 2 of 2 parts delivered"),
        ("one delivered, one waiting",
         [delivered(1), Part(2, "pending", 0x20), Part(3)], "pending", (1, 0, 2),
         "pending (1 of 3 parts delivered)"),
    ],
)
def test_a_multipart_message_is_delivered_only_when_every_part_is(name, parts, word, counts, header):
    whole = S.delivery(parts)
    assert whole.word == word, name
    assert (whole.delivered, whole.failed, whole.pending) == counts, name
    assert whole.status_header() == header, name
    assert S.report_word(whole.status_header()) == word
    assert ("Delivered" in whole.sent_file_headers()) == (word == "delivered")


def test_delivered_time_is_the_last_parts_discharge():
    whole = S.delivery([delivered(3), delivered(1), delivered(2)])
    assert whole.discharge == "2026-11-24T10:00:03+01:00"


# -- from a spool file ------------------------------------------------------------------------------

NOW = datetime(2026, 11, 24, 10, 0).astimezone()
ORIGINAL = make_outgoing(to="+4915112345678", text="hello")


def sent(**headers):
    data = build_sent(ORIGINAL, modem="gsm1", imsi="262011234567890", sent=NOW, parts=1, message_ids=[7])
    return update_headers(data, headers)


@pytest.mark.parametrize(
    "name, dirname, data, status",
    [
        ("waiting in outgoing", "outgoing", ORIGINAL, "queued"),
        ("claimed", "checked", ORIGINAL, "queued"),
        ("sent, no report", "sent", sent(), "sent"),
        ("sent, pending report", "sent", sent(Status="pending 32 (congestion)"), "sent"),
        ("sent, delivered", "sent", sent(Status="delivered 0 (short message received by the SME)"), "delivered"),
        # The daemon's old view said `sent` here, the HTTP fallback `failed`.
        ("sent, report failed", "sent", sent(Status="failed 65 (incompatible destination)"), "failed"),
        ("gave up", "failed", build_failed(ORIGINAL, failed=NOW, reason="+CMS ERROR 21", attempts=1), "failed"),
        ("expired", "failed", build_failed(ORIGINAL, failed=NOW, reason="expired", attempts=0), "expired"),
        # The daemon's old view took only the exact word, the HTTP fallback any prefix.
        ("expired, with detail", "failed", build_failed(ORIGINAL, failed=NOW, reason="Expired (30 min)", attempts=0),
         "expired"),
        ("a reason that only starts with the letters", "failed",
         build_failed(ORIGINAL, failed=NOW, reason="expiredness of the SIM", attempts=0), "failed"),
        ("damaged sent file", "sent", b"\xff\xfe no headers", "sent"),
    ],
)
def test_a_file_has_the_status_of_its_directory_and_headers(name, dirname, data, status):
    answer = S.from_file("m1", dirname, data, "2026-11-24T09:00:00+01:00")
    assert answer.status == status, name
    assert set(answer.to_api()) == set(S.API_KEYS)
    if status == "failed" and dirname == "sent":
        assert answer.fail_reason == "delivery report: failed 65 (incompatible destination)"


def test_a_delivered_file_gives_its_delivered_time():
    answer = S.from_file("m1", "sent", sent(Status="delivered 0 (x)", Delivered="2026-11-24T10:05:00+01:00"))
    assert answer.delivered == "2026-11-24T10:05:00+01:00" and answer.message_ids == (7,)
    assert answer.to_api()["message_ids"] == [7]


# -- from the journal, and lookup -------------------------------------------------------------------

@pytest.fixture
def stores(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.ensure_dirs()
    journal = SqliteJournal(tmp_path / "journal.sqlite")
    yield spool, journal
    journal.close()


def report(journal, mr, tp_status):
    word = S.REPORT_DELIVERED if tp_status < 0x20 else S.REPORT_PENDING if tp_status < 0x40 else S.REPORT_FAILED
    return journal.match_report(imsi="sim1", modem="gsm1", mr=mr, recipient="+4915112345678", tp_status=tp_status,
                                report_state=word, discharge=f"2026-11-24T10:00:0{mr}+01:00", now=T0 + 10,
                                window=86400)


def test_journal_states_and_reports_give_the_api_words(stores):
    spool, journal = stores
    parts = [NewPart(1, "00", 1), NewPart(2, "00", 1), NewPart(3, "00", 1)]
    journal.add_messages([NewMessage("m", "+4915112345678", parts, report=True)], T0)
    assert S.lookup("m", journal=journal, spool=spool).status == "queued"
    assert journal.claim("m", "gsm1")
    assert S.lookup("m", journal=journal, spool=spool).status == "sending"
    for seq in (1, 2, 3):
        journal.mark_submitting("m", seq, "gsm1", "sim1")
        journal.mark_submitted("m", seq, seq, T0 + seq, sim="sim1", report=True)
    journal.mark_sent("m", "gsm1", "sim1", T0 + 4)
    answer = S.lookup("m", journal=journal, spool=spool)
    assert (answer.status, answer.report, answer.message_ids) == ("sent", None, (1, 2, 3))
    report(journal, 2, 0x41)
    report(journal, 1, 0x00)
    report(journal, 3, 0x00)
    answer = S.lookup("m", journal=journal, spool=spool)
    assert answer.status == "failed" and answer.delivered is None
    assert answer.fail_reason == "delivery report: failed 65 (incompatible destination); 1 of 3 parts failed, 2 delivered"


def test_a_delivered_message_gives_the_networks_discharge_time(stores):
    spool, journal = stores
    journal.add_messages([NewMessage("d", "+4915112345678", [NewPart(1, "00", 1)], report=True)], T0)
    journal.claim("d", "gsm1")
    journal.mark_submitting("d", 1, "gsm1", "sim1")
    journal.mark_submitted("d", 1, 5, T0 + 1, sim="sim1", report=True)
    journal.mark_sent("d", "gsm1", "sim1", T0 + 2)
    report(journal, 5, 0x00)
    answer = S.lookup("d", journal=journal, spool=spool)
    assert answer.status == "delivered" and answer.delivered == "2026-11-24T10:00:05+01:00"


def test_lookup_falls_back_to_the_spool_and_refuses_paths(stores):
    spool, journal = stores
    spool.write_atomic("failed", "refused", build_failed(b"junk", failed=NOW, reason="no blank line", attempts=0))
    answer = S.lookup("refused", journal=journal, spool=spool)
    assert answer.status == "failed" and answer.fail_reason == "no blank line"
    assert S.lookup("never-heard-of", journal=journal, spool=spool) is None
    for bad in ("", "..", "../etc/passwd", ".hidden", "x.tmp", "x.LOCK"):
        assert S.lookup(bad, journal=journal, spool=spool) is None, bad
