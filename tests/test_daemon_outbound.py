"""Outbound without modems: claiming, expansion per recipient, and recovery of every leftover
a crash can leave (postfix-style: the files and the journal are reconciled at start)."""

from __future__ import annotations

import logging
import time

import pytest

from gsmgw.config import Defaults
from gsmgw.daemon.outbound import Outbound, SendSettings
from gsmgw.spool import journal as J
from gsmgw.spool import message_status
from gsmgw.spool.format import make_outgoing, read_spool_file
from gsmgw.spool.journal import SqliteJournal
from gsmgw.spool.store import Spool

T0 = time.time()  # relative Expires: counts from the file's real mtime


class Clock:
    now = T0

    def __call__(self):
        return self.now


@pytest.fixture
def parts(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.ensure_dirs()
    journal = SqliteJournal(tmp_path / "state" / "journal.sqlite")
    settings = SendSettings(default_country="49", defaults=Defaults(report=False), groups={"ops": ("+4915100000001", "+4915100000002")},
                            modem_names=("gsm1", "gsm2"))
    outbound = Outbound(spool, journal, None, settings, clock=Clock())
    yield spool, journal, outbound
    journal.close()


def queued(journal):
    return sorted(journal.messages_in_state(J.QUEUED))


def test_claim_expands_groups_and_lists_into_one_message_each(parts):
    spool, journal, outbound = parts
    spool.submit(make_outgoing(to=["group:ops", "0151 00000003"], text="hi"))
    (name,) = spool.list("outgoing")
    assert outbound.accept([name]) == 3
    assert queued(journal) == [f"{name}.1", f"{name}.2", f"{name}.3"]
    assert spool.list("checked") == queued(journal)
    recipients = [read_spool_file(spool.read("checked", n)).headers.get("To") for n in queued(journal)]
    assert recipients == ["+4915100000001", "+4915100000002", "+4915100000003"]


def test_recovery_after_a_crash_inside_the_expansion(parts):
    spool, journal, outbound = parts
    data = make_outgoing(to=["+4915100000001", "+4915100000002"], text="hi")
    spool.write_atomic("checked", "X", data)
    spool.write_atomic("checked", "X.1", data)  # the crash came after the first child
    outbound.recover()
    assert queued(journal) == ["X.1", "X.2"]
    assert spool.list("checked") == ["X.1", "X.2"]


def test_recovery_when_the_journal_has_the_children_but_the_original_is_left(parts):
    spool, journal, outbound = parts
    data = make_outgoing(to=["+4915100000001", "+4915100000002"], text="hi")
    spool.write_atomic("outgoing", "X", data)
    outbound.accept(["X"])
    journal.claim("X.1", "gsm1")
    journal.mark_submitting("X.1", 1, "gsm1", "sim")
    journal.mark_submitted("X.1", 1, 7, T0, sim="sim", report=False)
    outbound.finish_sent("X.1", "gsm1", "sim")
    spool.write_atomic("checked", "X", data)  # as if its removal had not happened
    outbound.recover()
    assert queued(journal) == ["X.2"]
    assert spool.list("checked") == ["X.2"]
    assert spool.list("sent") == ["X.1"]


def test_recovery_finishes_what_was_submitted_and_settles_rows_without_files(parts, caplog):
    spool, journal, outbound = parts
    for name in ("done", "in-sent", "gone", "inflight"):
        spool.write_atomic("outgoing", name, make_outgoing(to="+4915100000009", text=name * 60))
    outbound.accept(["done", "in-sent", "gone", "inflight"])
    n_parts = journal.message("done").parts
    journal.claim("done", "gsm1")
    for seq in range(1, n_parts + 1):
        journal.mark_submitting("done", seq, "gsm1", "sim")
        journal.mark_submitted("done", seq, 40 + seq, T0, sim="sim", report=False)
    spool.finish("in-sent", "sent", spool.read("checked", "in-sent"))
    spool.remove("checked", "gone")
    journal.claim("inflight", "gsm2")
    journal.mark_submitting("inflight", 1, "gsm2", "sim2")
    with caplog.at_level(logging.INFO, logger="gsmgw.outbound"):
        outbound.recover()
    sent = read_spool_file(spool.read("sent", "done"))
    assert sent.headers.get("Message_id") == ",".join(str(40 + s) for s in range(1, n_parts + 1))
    assert journal.message("done").state == J.SENT
    assert journal.message("in-sent").state == J.SENT
    assert journal.message("gone") is None
    assert queued(journal) == ["inflight"]
    assert "possible duplicate: inflight part 1" in caplog.text
    assert "gone: in the journal but its file is gone" in caplog.text


def test_pinned_to_an_unknown_modem_and_expired_messages_go_to_failed(parts):
    spool, journal, outbound = parts
    spool.write_atomic("outgoing", "ghost", make_outgoing(to="+4915100000009", text="x", modem="gsm7"))
    spool.write_atomic("outgoing", "old", make_outgoing(to="+4915100000009", text="x", expires="10 s"))
    outbound.accept(["ghost", "old"])
    reason = read_spool_file(spool.read("failed", "ghost")).headers.get("Fail_reason")
    assert "gsm7" in reason and "gsm1, gsm2" in reason
    assert outbound.expire() == 0
    outbound.clock.now = T0 + 3600
    assert outbound.expire() == 1
    failed = read_spool_file(spool.read("failed", "old"))
    assert failed.headers.get("Fail_reason") == "expired"
    assert message_status.lookup("old", journal=journal, spool=spool).status == "expired"


def test_the_dispatcher_looks_past_messages_no_idle_modem_may_take(parts):
    from gsmgw.daemon.outbound import CANDIDATE_PAGE, Dispatcher
    from gsmgw.daemon.pool import ModemView
    from gsmgw.spool.journal import NewMessage, NewPart

    spool, journal, outbound = parts
    stuck = [NewMessage(f"p{i:04d}", "+4915100000001", [NewPart(1, "00", 1)], pinned="gsm2")
             for i in range(CANDIDATE_PAGE + 100)]
    journal.add_messages(stuck, T0 - 10)  # older: at the head of the queue
    journal.add_messages([NewMessage("free", "+4915100000002", [NewPart(1, "00", 1)])], T0)
    views = {
        "gsm1": ModemView("gsm1", "sim1", "sim1", "ready"),
        "gsm2": ModemView("gsm2", "sim2", "sim2", "absent"),
    }
    given = []
    dispatcher = Dispatcher(outbound, fleet=lambda: views, idle=lambda: ["gsm1"],
                            give=lambda modem, message: given.append((modem, message.id)), clock=outbound.clock)
    dispatcher.round()
    assert given == [("gsm1", "free")]
    assert journal.message("free").state == J.SENDING


def test_the_encoder_uses_the_configs_national_tables(tmp_path):
    """defaults.national_languages reaches encode_submit: a 204-character Hindi text goes out in 2 GSM-7
    parts with the Hindi tables (4 in UCS-2), and each part reads back as the text."""
    from gsmgw.sms import decode_pdu

    spool = Spool(tmp_path / "spool")
    spool.ensure_dirs()
    journal = SqliteJournal(tmp_path / "state" / "journal.sqlite")
    settings = SendSettings(default_country="49", defaults=Defaults(report=False, national_languages=("hi",)),
                            groups={}, modem_names=("gsm1",))
    outbound = Outbound(spool, journal, None, settings, clock=Clock())
    try:
        text = "नमस्ते, आप कैसे हैं? मैं ठीक हूँ। " * 6
        spool.submit(make_outgoing(to="+919812345678", text=text))
        assert outbound.accept(spool.list("outgoing")) == 1
        (message,) = queued(journal)
        decoded = [decode_pdu(part.pdu) for part in journal.parts(message)]
        assert [(sms.alphabet, sms.national) for sms in decoded] == [("gsm7", (6, 6))] * 2
        assert "".join(sms.text for sms in decoded) == text
    finally:
        journal.close()


def test_a_file_the_reader_fails_on_goes_to_failed_and_the_others_go_on(parts, monkeypatch):
    # Issue 11, the crash loop: an unexpected error of the file reader (an OverflowError once)
    # escaped accept() and recover(), so the watcher died and every start raised again. Whatever
    # the reader raises for one file now stops only that file.
    spool, journal, outbound = parts
    from gsmgw.daemon import outbound as outbound_module

    real_parse = outbound_module._parse

    def parse(data, *args, **kwargs):
        if b"reader bug" in data:
            raise RuntimeError("a bug of the reader")
        return real_parse(data, *args, **kwargs)

    monkeypatch.setattr(outbound_module, "_parse", parse)
    spool.write_atomic("checked", "left", make_outgoing(to="+4915100000001", text="reader bug"))
    spool.write_atomic("checked", "fine", make_outgoing(to="+4915100000001", text="fine"))
    outbound.recover()
    spool.write_atomic("outgoing", "dropped", make_outgoing(to="+4915100000001", text="reader bug"))
    spool.write_atomic("outgoing", "good", make_outgoing(to="+4915100000001", text="good"))
    outbound.accept(["dropped", "good"])
    assert queued(journal) == ["fine", "good"]
    assert spool.list("failed") == ["dropped", "left"]
    for name in ("dropped", "left"):
        reason = read_spool_file(spool.read("failed", name)).headers.get("Fail_reason")
        assert "RuntimeError: a bug of the reader" in reason and "a bug in gsmgw" in reason
