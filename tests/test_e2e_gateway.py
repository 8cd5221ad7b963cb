"""End to end, in one process: files in the spool -> the daemon -> simulated modems on real ptys
-> the simulated network, and back (inbound SMS, delivery reports).

Every wait is for an event of the daemon's bus (or the simulator's condition), with a timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import time
from pathlib import Path

import pytest

from gsmgw.at.errors import CmsError
from gsmgw.config import Limits, SendingConfig, simulation_config
from gsmgw.daemon.app import Gateway
from gsmgw.events import MessageFailed, MessageReceived, MessageSent, ModemStateChanged, ReportReceived
from gsmgw.sim import SimNetwork
from gsmgw.sms import decode_pdu, join_parts
from gsmgw.spool.format import make_outgoing

FAST_SUPERVISOR = {"backoff_initial": 0.1, "backoff_max": 1.0, "health_timeout": 2.0}
OUTSIDE = "+4915112345678"


class Run:
    """A started Gateway plus a record of its events, for one test."""

    def __init__(self, gateway: Gateway, network: SimNetwork):
        self.gateway = gateway
        self.network = network
        self.spool = Path(gateway.config.spool)
        self.events: list = []
        self._changed = asyncio.Event()
        gateway.bus.subscribe(self._record)

    def _record(self, event) -> None:
        self.events.append(event)
        self._changed.set()

    def of(self, kind) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    async def until(self, predicate, timeout: float = 20.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what}; events: {self.events[-10:]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))
            except asyncio.TimeoutError:
                pass  # re-check predicates that look at files or modem states

    async def ready(self, *names: str, timeout: float = 15.0) -> None:
        names = names or tuple(self.gateway.workers)
        await self.until(
            lambda: all(self.gateway.workers[n].state == "ready" for n in names), timeout, f"{names} ready"
        )

    def drop(self, name: str, content: str | bytes) -> None:
        """Write a file as a user would: under a temporary name, then rename into outgoing/."""
        data = content.encode() if isinstance(content, str) else content
        temporary = self.spool / "outgoing" / f".{name}.tmp"
        temporary.write_bytes(data)
        os.rename(temporary, self.spool / "outgoing" / name)

    def file(self, directory: str, name: str):
        """A spool file as the daemon reads it (trusted headers only in sealed files)."""
        return self.gateway.spool.verified((self.spool / directory / name).read_bytes())

    def names(self, directory: str) -> list[str]:
        return sorted(n for n in os.listdir(self.spool / directory) if not n.startswith("."))


def start_run(tmp_path, modems=2, *, configure=None, latency=0.0, **sim_options):
    network = SimNetwork(tmp_path / "sim", modems=modems, latency=latency, **sim_options)
    network.start()
    config = simulation_config(tmp_path / "spool", [m.path for m in network.modems])
    if configure is not None:
        config = configure(config)
    return network, config


def run_scenario(tmp_path, scenario, modems=2, *, configure=None, timeout=60.0, **sim_options):
    network, config = start_run(tmp_path, modems, configure=configure, **sim_options)

    async def main():
        gateway = Gateway(config, watch_poll_interval=0.5, supervisor_options=FAST_SUPERVISOR)
        await gateway.start()
        run = Run(gateway, network)
        try:
            await asyncio.wait_for(scenario(run), timeout)
        finally:
            await gateway.close()

    try:
        asyncio.run(main())
    finally:
        network.stop()


def sent_texts(network: SimNetwork) -> dict[str, list[str]]:
    """What the network received, joined per (recipient, reference): {recipient: [texts]}."""
    groups: dict[tuple, list] = {}
    order: list[tuple] = []
    for record in network.submissions:
        sms = decode_pdu(record["pdu"])
        concat = record["concat"]
        key = (record["to"], concat["ref"] if concat else ("single", record["seq"]))
        if key not in groups:
            order.append(key)
        groups.setdefault(key, []).append((sms.concat.seq if sms.concat else 1, sms, record["modem"]))
    result: dict[str, list[str]] = {}
    for key in order:
        parts = sorted(groups[key], key=lambda item: item[0])
        assert len({modem for _, _, modem in parts}) == 1, f"parts of {key} went through several SIMs"
        result.setdefault(key[0], []).append(join_parts([sms for _, sms, _ in parts]))
    return result


# -- outgoing --------------------------------------------------------------------------------

MIX = {
    "gsm7": "Hello @ £$¥ è é ù ì ò Ç Ø ø Å å Δ _ Φ Γ Λ Ω Π Ψ Σ Θ Ξ Æ æ ß É ! \" # ¤ % & ' ( ) * + , - . /",
    "extension": "Price: 5€ [x] {y} ~ ^ \\ | end",
    "unicode": "Привет, мир! Grüße aus Köln — 你好",
    "emoji": "Party 🎉😀👍🏽 tonight",
    "long-gsm7": "".join(f"{i:03d} line of a long message. " for i in range(20)),
    "long-ucs2": "Emoji everywhere 😀 " * 12,
    "long-escape": "€" * 200,
}


def test_a_mix_of_alphabets_reaches_the_network_exactly(tmp_path):
    numbers = {name: f"+49151000000{i:02d}" for i, name in enumerate(MIX)}

    async def scenario(run: Run):
        await run.ready()
        for name, text in MIX.items():
            run.drop(name, f"To: {numbers[name]}\nReport: no\n\n{text}\n")
        await run.until(lambda: len(run.of(MessageSent)) == len(MIX), what="all sent")
        assert run.names("failed") == []
        assert run.names("sent") == sorted(MIX)
        for name in MIX:
            sent = run.file("sent", name)
            parts = int(sent.headers.get("Parts"))
            assert len(sent.headers.get("Message_id").split(",")) == parts
            assert sent.headers.get("Modem") in ("modem0", "modem1")
            assert sent.headers.get("IMSI")

    run_scenario(tmp_path, scenario)


def test_mix_texts_are_exact_on_the_wire(tmp_path):
    """The same batch, checked against the network's own log: the text each recipient got."""
    numbers = {name: f"+49151000001{i:02d}" for i, name in enumerate(MIX)}
    network_holder = {}

    async def scenario(run: Run):
        network_holder["net"] = run.network
        await run.ready()
        for name, text in MIX.items():
            run.drop(name, f"To: {numbers[name]}\n\n{text}\n")
        await run.until(lambda: len(run.of(MessageSent)) == len(MIX), what="all sent")
        got = sent_texts(run.network)
        for name, text in MIX.items():
            assert got[numbers[name]] == [text], name

    run_scenario(tmp_path, scenario)


def test_several_recipients_get_one_file_each(tmp_path):
    async def scenario(run: Run):
        await run.ready()
        run.drop("multi", "To: +4915100000001, +49 151 0000-0002\nX-Ticket: 7\n\nhi all\n")
        await run.until(lambda: len(run.of(MessageSent)) == 2, what="both sent")
        assert run.names("sent") == ["multi.1", "multi.2"]
        assert run.names("checked") == []
        assert run.file("sent", "multi.1").headers.get("To") == "+4915100000001"
        assert run.file("sent", "multi.2").headers.get("To") == "+4915100000002"
        assert run.file("sent", "multi.2").headers.get("X-Ticket") == "7"
        assert {e.headers.get("X-Ticket") for e in run.of(MessageSent)} == {"7"}

    run_scenario(tmp_path, scenario)


def test_trusted_headers_count_only_in_files_the_doors_wrote(tmp_path, caplog):
    """Regression (issue 11): a file dropped by hand with `Client:`/`Callback:` acted for that
    network client (its reports were signed with the client's token and posted to any URL)."""
    async def scenario(run: Run):
        await run.ready()
        run.drop("forged", "To: +4915100000001\nClient: zabbix\nCallback: http://127.0.0.1:9/\n"
                           "Smpp_receipt: 1\n\nhi\n")
        door = run.gateway.spool.submit(make_outgoing(
            to=["+4915100000002", "+4915100000003"], text="hi",
            extra={"Client": "zabbix", "Callback": "https://app.example/dlr"}))
        await run.until(lambda: len(run.of(MessageSent)) == 3, what="all sent")
        headers = {event.id: event.headers for event in run.of(MessageSent)}
        assert "Client" not in headers["forged"] and "Callback" not in headers["forged"]
        assert run.gateway.journal.message("forged").client is None
        for child in (f"{door}.1", f"{door}.2"):  # expanded per recipient, sealed again
            assert headers[child].get("Client") == "zabbix" and headers[child].get("Callback") == "https://app.example/dlr"
            assert run.file("sent", child).headers.get("Client") == "zabbix"
            assert run.gateway.journal.message(child).client == "zabbix"
        assert run.file("sent", "forged").headers.get("Client") is None
        assert "forged: ignored Client:, Callback:, Smpp_receipt:" in caplog.text

    run_scenario(tmp_path, scenario)


def test_a_storm_of_malformed_files_costs_only_failed_entries(tmp_path):
    bad = {
        "empty": b"",
        "no-blank-line": b"To: +4915112345678\nHello",
        "no-to": b"Report: yes\n\nHello",
        "bad-number": b"To: call me maybe\n\nHello",
        "bad-alphabet": b"To: +4915112345678\nAlphabet: klingon\n\nHello",
        "binary-junk": bytes(range(256)) * 4,
        "bad-modem": b"To: +4915112345678\nModem: gsm9\n\nHello",
        "too-long": b"To: +4915112345678\nMax_parts: 1\n\n" + b"x" * 400,
    }

    async def scenario(run: Run):
        await run.ready()
        outgoing = run.spool / "outgoing"
        for round_ in range(12):
            for name, data in bad.items():
                run.drop(f"{name}-{round_}", data)
        os.symlink("/etc/passwd", outgoing / "symlink")
        os.mkdir(outgoing / "a-directory")
        os.mkfifo(outgoing / "a-fifo")
        run.drop("good", "To: +4915112345678\n\nstill working\n")
        expected_failed = 12 * len(bad) + 3
        await run.until(
            lambda: len(run.names("failed")) == expected_failed and run.of(MessageSent),
            what="all refused, the good one sent",
        )
        assert run.names("outgoing") == []
        for name in run.names("failed"):
            path = run.spool / "failed" / name
            if name in ("symlink", "a-directory", "a-fifo"):
                assert not path.is_file() or path.is_symlink()
                continue
            reason = run.file("failed", name).headers.get("Fail_reason")
            assert reason and len(reason) > 15, name
        assert "configured" in run.file("failed", "bad-modem-0").headers.get("Fail_reason")
        assert os.readlink(run.spool / "failed" / "symlink") == "/etc/passwd"
        assert [e.id for e in run.of(MessageSent)] == ["good"]
        assert all(w.state == "ready" for w in run.gateway.workers.values())
        status = run.gateway.status_snapshot()
        assert status["queue"]["failed_today"] == expected_failed

    run_scenario(tmp_path, scenario)


# -- inbound and reports -----------------------------------------------------------------------


def test_inbound_multipart_and_emoji_land_in_incoming_exactly(tmp_path):
    long_text = "Grüße 😀 " * 40  # UCS-2, several parts, surrogate pairs across part borders
    long_gsm = "ABC{}[]€ " * 60  # GSM-7 with escapes

    async def scenario(run: Run):
        await run.ready()
        run.network.inject_sms(0, sender="+4915112345678", text="Hi 👋")
        run.network.inject_sms(1, sender="+4917612345678", text=long_text)
        run.network.inject_sms(0, sender="Vodafone", text=long_gsm)
        await run.until(lambda: len(run.of(MessageReceived)) == 3, what="three received")
        by_sender = {e.sender: e for e in run.of(MessageReceived)}
        for sender, text, parts in (
            ("+4915112345678", "Hi 👋", 1),
            ("+4917612345678", long_text, None),
            ("Vodafone", long_gsm, None),
        ):
            event = by_sender[sender]
            file = run.file("incoming", event.id)
            assert file.body.decode("utf-8") == text
            assert event.text == text and not event.incomplete
            if parts:
                assert file.headers.get("Parts") == str(parts)
            else:
                assert int(file.headers.get("Parts")) > 1
        assert run.file("incoming", by_sender["+4917612345678"].id).headers.get("Modem") == "modem1"
        # The SIM copies are gone once the files are on disk.
        await run.until(
            lambda: not run.network.stored_messages(0) and not run.network.stored_messages(1),
            what="SIM storage emptied",
        )

    run_scenario(tmp_path, scenario)


def test_sms_stored_while_the_daemon_was_down_are_found_by_the_sweep(tmp_path):
    network, config = start_run(tmp_path)
    try:
        network.inject_sms(0, sender="+4915112345678", text="while you were out")

        async def main():
            gateway = Gateway(config, watch_poll_interval=0.5, supervisor_options=FAST_SUPERVISOR)
            run = Run(gateway, network)
            await gateway.start()
            try:
                await run.until(lambda: run.of(MessageReceived), what="swept message")
            finally:
                await gateway.close()
            (event,) = run.of(MessageReceived)
            assert run.file("incoming", event.id).body.decode() == "while you were out"

        asyncio.run(main())
    finally:
        network.stop()


def test_reports_match_their_sent_files_and_multipart_waits_for_every_part(tmp_path):
    async def scenario(run: Run):
        await run.ready()
        run.network.set_report_outcome("+4915100000077", [0x20, 0x00], interval=0.2)
        run.drop("short", "To: +4915100000055\nReport: yes\n\nshort one\n")
        run.drop("long", "To: +4915100000066\nReport: yes\n\n" + "y" * 400 + "\n")
        run.drop("later", "To: +4915100000077\nReport: yes\n\npending first\n")
        run.drop("quiet", "To: +4915100000088\nReport: no\n\nno report wanted\n")
        await run.until(
            lambda: {e.id for e in run.of(ReportReceived) if e.delivered} == {"short", "long", "later"},
            what="three delivered",
        )
        long_reports = [e for e in run.of(ReportReceived) if e.id == "long"]
        assert len(long_reports) == 3
        assert [e.delivered for e in long_reports] == [False, False, True]
        later = [e.status for e in run.of(ReportReceived) if e.id == "later"]
        assert later == ["pending", "delivered"]
        for name in ("short", "long", "later"):
            sent = run.file("sent", name)
            assert sent.headers.get("Status").startswith("delivered 0"), name
            assert sent.headers.get("Delivered")
        assert run.file("sent", "quiet").headers.get("Status") is None
        report_files = [run.file("report", n) for n in run.names("report")]
        assert {r.headers.get("Sent_file") for r in report_files} == {"short", "long", "later"}
        for report in report_files:
            sent = run.file("sent", report.headers.get("Sent_file"))
            assert report.headers.get("Message_id") in sent.headers.get("Message_id").split(",")
            assert report.headers.get("Modem") == sent.headers.get("Modem")
        assert run.gateway.ctx.message_status("long").status == "delivered"
        assert run.gateway.ctx.message_status("quiet").status == "sent"

    run_scenario(tmp_path, scenario)


def test_a_multipart_message_with_a_part_failed_for_good_stays_failed_when_the_others_arrive(tmp_path):
    """Issue 11: part 2 fails permanently (TP-ST 0x41), parts 1 and 3 are delivered later; the
    last report must not win."""
    number = "+4915100000099"

    async def scenario(run: Run):
        await run.ready()
        run.network.set_report_outcome(number, [0x20, 0x00], interval=0.3)
        run.network.set_report_outcome(number, [0x41], part=2)
        run.drop("long", f"To: {number}\nReport: yes\n\n" + "z" * 400 + "\n")
        await run.until(lambda: len([e for e in run.of(ReportReceived) if e.id == "long"]) == 5,
                        what="five reports for the three parts")
        reports = [e for e in run.of(ReportReceived) if e.id == "long"]
        assert [e.tp_status for e in reports][-2:] == [0x00, 0x00]  # the good news came last
        assert reports[-1].status == "failed" and not any(e.delivered for e in reports)
        sent = run.file("sent", "long")
        assert sent.headers.get("Status").startswith("failed 65 ("), sent.headers.get("Status")
        assert "1 of 3 parts failed, 2 delivered" in sent.headers.get("Status")
        assert sent.headers.get("Delivered") is None
        status = run.gateway.ctx.message_status("long")
        assert status.status == "failed" and status.delivered is None
        assert (status.report.delivered, status.report.failed, status.report.pending) == (2, 1, 0)
        assert "failed 65" in status.fail_reason

    run_scenario(tmp_path, scenario)


@pytest.mark.parametrize("octet", ["A0", "E1"])
def test_a_report_with_a_time_zone_that_is_not_bcd_is_matched(tmp_path, octet):
    # Such reports (oFono's and python-gsmmodem's test suites carry them) were refused by the
    # decoder, never matched, and the message stayed pending for ever.
    async def scenario(run: Run):
        await run.ready("modem0")
        run.network.set_fault(0, "report_time_zone", octet=octet)
        run.drop("odd-zone", "To: +4915100000055\nModem: modem0\nReport: yes\n\nhello\n")
        await run.until(lambda: any(e.id == "odd-zone" and e.delivered for e in run.of(ReportReceived)),
                        what="the report matched")
        sent = run.file("sent", "odd-zone")
        assert sent.headers.get("Status").startswith("delivered 0")
        # The network's time without its zone: the digits that were readable, no offset.
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", sent.headers.get("Delivered"))
        assert run.gateway.ctx.message_status("odd-zone").status == "delivered"

    run_scenario(tmp_path, scenario, modems=1)


# -- scheduling rules --------------------------------------------------------------------------


def with_modems(transform):
    def configure(config):
        modems = tuple(transform(i, m) for i, m in enumerate(config.modems))
        return dataclasses.replace(config, modems=modems)

    return configure


def test_pins_limits_send_after_and_expiry(tmp_path):
    def limit_modem0(i, modem):
        return dataclasses.replace(modem, limits=Limits(per_minute=2)) if i == 0 else modem

    def configure(config):
        config = with_modems(limit_modem0)(config)
        ghost = dataclasses.replace(config.modems[0], name="ghost", port=str(tmp_path / "no-such-port"),
                                    limits=Limits())
        return dataclasses.replace(config, modems=config.modems + (ghost,))

    async def scenario(run: Run):
        await run.ready("modem0", "modem1")
        for i in range(4):
            run.drop(f"pin0-{i}", f"To: +491510000010{i}\nModem: modem0\n\nvia modem0 only\n")
        run.drop("pin1", "To: +4915100000200\nQueue: modem1\n\nvia modem1\n")
        run.drop("ghost", "To: +4915100000300\nModem: ghost\nExpires: 2 s\n\nnever\n")
        run.drop("later", "To: +4915100000400\nSend_after: 3 s\n\nnot before\n")
        dropped = time.time()
        await run.until(lambda: {"ghost"} <= {e.id for e in run.of(MessageFailed)}, what="ghost expired")
        ghost = run.file("failed", "ghost")
        assert ghost.headers.get("Fail_reason") == "expired"
        assert run.gateway.ctx.message_status("ghost").status == "expired"
        await run.until(lambda: "later" in {e.id for e in run.of(MessageSent)}, what="send_after")
        later = run.file("sent", "later")
        assert later.headers.get("Sent") is not None and time.time() - dropped >= 3
        await run.until(lambda: "pin1" in {e.id for e in run.of(MessageSent)}, what="pin1 sent")
        assert run.file("sent", "pin1").headers.get("Modem") == "modem1"
        # modem0 may submit 2 parts per minute: 2 of the 4 pinned ones go, 2 wait (never fail).
        await run.until(lambda: len([e for e in run.of(MessageSent) if e.id.startswith("pin0")]) == 2)
        await asyncio.sleep(1.0)  # give a wrong scheduler the chance to send a third
        pinned_sent = sorted(e.id for e in run.of(MessageSent) if e.id.startswith("pin0"))
        assert pinned_sent == ["pin0-0", "pin0-1"]
        assert sorted(run.names("checked")) == ["pin0-2", "pin0-3"]
        assert all(run.file("sent", n).headers.get("Modem") == "modem0" for n in pinned_sent)
        assert not [e for e in run.of(MessageFailed) if e.id.startswith("pin0")]
        assert run.gateway.workers["ghost"].state == "absent"

    run_scenario(tmp_path, scenario, configure=configure)


def test_the_journal_keeps_limits_across_a_restart(tmp_path):
    def configure(config):
        return with_modems(lambda i, m: dataclasses.replace(m, limits=Limits(per_minute=1)))(config)

    network, config = start_run(tmp_path, modems=1, configure=configure)
    try:
        async def once(files):
            gateway = Gateway(config, watch_poll_interval=0.5, supervisor_options=FAST_SUPERVISOR)
            await gateway.start()
            run = Run(gateway, network)
            try:
                await run.ready()
                for name in files:
                    run.drop(name, f"To: +4915100000500\n\n{name}\n")
                await run.until(lambda: run.of(MessageSent), what="one sent")
                await asyncio.sleep(1.0)  # a negative check: time for a wrong limit to let "second" out
                return [e.id for e in run.of(MessageSent)]
            finally:
                await gateway.close()

        assert asyncio.run(once(["first", "second"])) == ["first"]
        assert len(network.submissions) == 1
        # Restarted at once: the window still holds the first submit, so nothing more goes.
        async def after_restart():
            gateway = Gateway(config, watch_poll_interval=0.5, supervisor_options=FAST_SUPERVISOR)
            await gateway.start()
            try:
                await Run(gateway, network).ready()
                await asyncio.sleep(1.5)  # a negative check: time for a forgotten window to send "second"
            finally:
                await gateway.close()

        asyncio.run(after_restart())
        assert len(network.submissions) == 1
        assert os.listdir(Path(config.spool) / "checked") == ["second"]
    finally:
        network.stop()


# -- errors ------------------------------------------------------------------------------------


def test_temporary_errors_move_to_the_other_modem_and_rest_the_failing_one(tmp_path):
    async def scenario(run: Run):
        await run.ready()
        run.network.set_fault(0, "cms_error", codes=[38])
        for i in range(8):
            run.drop(f"m{i}", f"To: +491510000060{i}\n\nbatch {i}\n")
        await run.until(lambda: len(run.of(MessageSent)) == 8, what="all 8 sent", timeout=30)
        assert {run.file("sent", f"m{i}").headers.get("Modem") for i in range(8)} == {"modem1"}
        assert run.names("failed") == []
        assert run.gateway.workers["modem0"].state == "resting"
        status = run.gateway.status_snapshot()
        modem0 = next(m for m in status["modems"] if m["name"] == "modem0")
        assert modem0["state"] == "resting" and "38" in modem0["last_error"]

    run_scenario(tmp_path, scenario)


def test_a_rest_earned_after_the_port_went_does_not_make_the_modem_ready(tmp_path):
    """A send can end (+CMS ERROR) after the supervisor has already seen the port go: the rest it
    earns must not carry the worker from absent to resting, whose end reads "ready" with no
    modem and takes messages. It stays absent until the port is back, then sends again.

    Two submits fail for real on the simulator; the third one's failure arriving after the
    unplug is the interleaving the daemon meets when the port closes right behind the answer
    (the test hands that answer to the worker itself, since the loop's order cannot be forced)."""

    def configure(config):
        # No retries within the test (retry_first), a rest on the 3rd failure, and a short one.
        sending = SendingConfig(retry_first=600.0, retry_max=600.0, attempts=10, rest_after=3, rest_for=0.5)
        return dataclasses.replace(config, sending=sending)

    async def scenario(run: Run):
        await run.ready()
        worker = run.gateway.workers["modem0"]
        journal = run.gateway.journal
        run.network.set_fault(0, "cms_error", codes=[38])
        for name in ("fail1", "fail2"):
            run.drop(name, f"To: +4915100000720\nModem: modem0\n\n{name}\n")

        def failed_once(name):
            row = journal.message(name)
            return row is not None and row.state == "queued" and "38" in (row.last_error or "")

        await run.until(lambda: failed_once("fail1") and failed_once("fail2"), what="two failed submits")
        assert worker.state == "ready" and worker.consecutive_failures == 2
        run.network.unplug(0)
        await run.until(lambda: worker.state == "absent", what="modem0 absent")
        gone = len(run.events)
        # The third submit: claimed for modem0 before the unplug, its +CMS ERROR handled after.
        run.drop("fail3", "To: +4915100000720\nModem: modem0\n\nfail3\n")
        await run.until(lambda: journal.message("fail3") is not None, what="fail3 queued")
        third = next(m for m in journal.queued_candidates(time.time()) if m.id == "fail3")
        assert journal.claim("fail3", "modem0")
        worker._after_error(third, CmsError(38, command="AT+CMGS=22"), temporary=True, sim_fault=False)
        run.drop("later", "To: +4915100000721\nModem: modem0\n\nafter the port is back\n")
        await asyncio.sleep(1.0)  # a negative check: sending.rest_for (0.5 s) has run out meanwhile
        moves = [e.state for e in run.events[gone:] if isinstance(e, ModemStateChanged) and e.modem == "modem0"]
        assert moves == [] and worker.state == "absent", moves
        assert journal.message("later").state == "queued"  # not handed to a modem without a port
        run.network.clear_fault(0)
        run.network.replug(0)
        await run.until(lambda: "later" in [e.id for e in run.of(MessageSent)], what="later sent", timeout=20)
        assert run.file("sent", "later").headers.get("Modem") == "modem0"

    run_scenario(tmp_path, scenario, modems=1, configure=configure)


def test_permanent_error_fails_a_pinned_message_at_once_but_not_an_unpinned_one(tmp_path):
    async def scenario(run: Run):
        await run.ready()
        run.network.set_fault(0, "cms_error", codes=[21])
        run.drop("pinned", "To: +4915100000700\nModem: modem0\n\npinned\n")
        await run.until(lambda: run.of(MessageFailed), what="pinned failed")
        reason = run.file("failed", "pinned").headers.get("Fail_reason")
        assert "21" in reason and "rejected" in reason
        assert run.file("failed", "pinned").headers.get("Attempts") == "1"
        run.drop("free", "To: +4915100000701\n\nfree\n")
        run.drop("free2", "To: +4915100000702\n\nfree\n")
        await run.until(lambda: len(run.of(MessageSent)) == 2, what="unpinned sent")
        assert {run.file("sent", n).headers.get("Modem") for n in ("free", "free2")} == {"modem1"}

    run_scenario(tmp_path, scenario)


@pytest.mark.slow
def test_unplugging_a_modem_mid_batch_hands_its_work_to_the_other(tmp_path):
    """The rest carry on. A message that already had a part accepted on the unplugged SIM is the
    exception: its other parts must come from the same sender, and a part with an MR is never
    sent again, so it waits for that SIM (here: until the replug) rather than going elsewhere."""

    async def scenario(run: Run):
        await run.ready()
        run.network.set_latency(0, 0.05)
        run.network.set_latency(1, 0.05)
        for i in range(16):
            run.drop(f"b{i:02d}", f"To: +49151000008{i:02d}\n\n" + "z" * 200 + "\n")
        await run.until(lambda: len(run.of(MessageSent)) >= 2, what="batch under way")
        run.network.unplug(0)
        await run.until(lambda: run.gateway.workers["modem0"].state == "absent", what="modem0 absent")
        journal = run.gateway.journal

        def waiting_for_modem0():
            return [n for n in run.names("checked") if (journal.message(n).bound_modem == "modem0")]

        await run.until(
            lambda: len(run.of(MessageSent)) + len(waiting_for_modem0()) == 16,
            what="all sent but those bound to modem0", timeout=45,
        )
        assert len(waiting_for_modem0()) <= 1  # only the message in flight at the unplug
        assert run.names("failed") == []
        run.network.replug(0)
        await run.until(lambda: len(run.of(MessageSent)) == 16, what="all 16 sent", timeout=30)
        assert run.names("checked") == []
        got = sent_texts(run.network)  # also checks: every message's parts came from one SIM
        assert sorted(got) == sorted(f"+49151000008{i:02d}" for i in range(16))
        assert all(texts[-1] == "z" * 200 for texts in got.values())

    run_scenario(tmp_path, scenario, timeout=90)


def test_modems_bound_by_imsi_and_iccid_are_found_by_probing(tmp_path):
    network = SimNetwork(tmp_path / "sim", modems=2)
    network.start()
    sim0, sim1 = network.modems
    config = simulation_config(tmp_path / "spool", [sim0.path, sim1.path])
    config = dataclasses.replace(
        config,
        # Swapped on purpose: the names follow the SIMs, not the sockets.
        modems=(
            dataclasses.replace(config.modems[0], name="by-imsi", port=None, imsi=sim1.imsi),
            dataclasses.replace(config.modems[1], name="by-iccid", port=None, iccid=sim0.iccid),
        ),
        probe_ports=(str(tmp_path / "sim" / "modem*"),),
    )

    async def main():
        gateway = Gateway(config, watch_poll_interval=0.5, supervisor_options=FAST_SUPERVISOR)
        run = Run(gateway, network)
        await gateway.start()
        try:
            await run.ready(timeout=30)
            ports = {m["name"]: m["port"] for m in gateway.status_snapshot()["modems"]}
            assert ports == {"by-imsi": sim1.path, "by-iccid": sim0.path}
            run.drop("pinned", "To: +4915100000900\nModem: by-imsi\n\nthrough the SIM, wherever it is\n")
            await run.until(lambda: run.of(MessageSent), what="sent")
            assert network.submissions[-1]["modem"] == 1
        finally:
            await gateway.close()

    try:
        asyncio.run(main())
    finally:
        network.stop()


def test_a_late_cmgs_answer_is_recorded_and_the_part_not_sent_again(tmp_path):
    options = dict(FAST_SUPERVISOR, modem_options={"send_timeout": 1.0})
    network, config = start_run(tmp_path, modems=2)

    async def main():
        gateway = Gateway(config, watch_poll_interval=0.5, supervisor_options=options)
        run = Run(gateway, network)
        await gateway.start()
        try:
            await run.ready()
            network.set_fault(0, "late_cmgs", seconds=2.0)
            run.drop("slow", "To: +4915100001100\nModem: modem0\n\nanswered late\n")
            await run.until(lambda: run.of(MessageSent), what="sent after the late answer", timeout=30)
            assert len(network.submissions) == 1
            sent = run.file("sent", "slow")
            assert sent.headers.get("Message_id") == str(network.submissions[0]["mr"])
        finally:
            await gateway.close()

    try:
        asyncio.run(main())
    finally:
        network.stop()


@pytest.mark.slow
def test_a_hung_modem_loses_nothing_and_the_other_carries_on(tmp_path, monkeypatch):
    import gsmgw.daemon.worker as worker_module

    monkeypatch.setattr(worker_module, "UNCERTAIN_GRACE", 1.0)  # the late answer never comes here
    options = dict(FAST_SUPERVISOR, modem_options={"send_timeout": 1.0, "command_timeout": 1.0, "prompt_timeout": 1.0})
    network, config = start_run(tmp_path, modems=2)
    config = dataclasses.replace(config, status_interval=1.0)

    async def main():
        gateway = Gateway(config, watch_poll_interval=0.5, supervisor_options=options)
        run = Run(gateway, network)
        await gateway.start()
        try:
            await run.ready()
            network.set_fault(0, "hang", seconds=4)
            for i in range(6):
                run.drop(f"h{i}", f"To: +491510000120{i}\n\nduring a hang {i}\n")
            await run.until(lambda: len(run.of(MessageSent)) == 6, what="all 6 sent", timeout=40)
            assert run.names("failed") == []
            got = sent_texts(network)
            assert sorted(t for texts in got.values() for t in texts) == sorted(f"during a hang {i}" for i in range(6))
            await run.ready("modem0", timeout=30)  # and the hung one comes back
        finally:
            await gateway.close()

    try:
        asyncio.run(main())
    finally:
        network.stop()


# -- a modem that restarts ---------------------------------------------------------------------


def test_a_modem_that_reboots_is_set_up_again_and_a_new_sim_is_taken(tmp_path):
    """Issue 11: a SIMCom stick reboots behind its port (RDY ... SMS Ready) with its power-up
    settings: echo on, +CMEE=0 (a permanent +CMS ERROR 21 read as a bare ERROR, retried as
    temporary), factory +CNMI (status reports not routed), the SIM asking for its PIN. gsmgw must
    set it up again; a different SIM after the reboot is a SIM change."""
    from gsmgw.events import ModemStateChanged

    def with_pin(config):
        return with_modems(lambda i, m: dataclasses.replace(m, pin="1234"))(config)

    async def scenario(run: Run):
        await run.ready()
        worker = run.gateway.workers["modem0"]
        mark = len(run.events)
        await asyncio.to_thread(run.network.reboot, 0)
        await run.until(lambda: any(isinstance(e, ModemStateChanged) and e.state == "starting"
                                    and "restarted" in (e.reason or "") for e in run.events[mark:]),
                        timeout=10, what="the worker noticing the restart")
        await run.ready(timeout=10)
        sim = run.network.call(lambda: (run.network.modem(0).echo, run.network.modem(0).cmee,
                                        run.network.modem(0).cnmi, run.network.modem(0).pin_state))
        assert sim == (False, 1, [2, 1, 0, 2, 0], "READY")

        run.network.set_fault(0, "cms_error", codes=[21], count=1)
        run.drop("refused", "To: +4915100000501\nModem: modem0\n\nshort message rejected\n")
        await run.until(lambda: "refused" in {e.id for e in run.of(MessageFailed)}, timeout=10,
                        what="the permanent error failing the pinned message at once")
        assert "21" in run.file("failed", "refused").headers.get("Fail_reason")

        run.drop("reported", f"To: {OUTSIDE}\nReport: yes\n\nreport me\n")
        await run.until(lambda: any(e.id == "reported" and e.delivered for e in run.of(ReportReceived)),
                        timeout=10, what="the status report, routed again")

        # Let the worker delete the report's copy first: the SR storage belongs to the modem, so
        # a copy left behind would be read again with the new SIM.
        await run.until(lambda: worker.idle and not run.network.stored_messages(0, "SR"), timeout=10,
                        what="the worker idle")
        await asyncio.to_thread(run.network.reboot, 0, 7)  # the stick comes back with another SIM
        new_imsi = run.network.modems[0].imsi
        await run.until(lambda: worker.status.imsi == new_imsi and worker.state == "ready", timeout=20,
                        what="the new SIM identified")
        run.drop("new-sim", f"To: {OUTSIDE}\nReport: no\n\nvia the new SIM\n")
        await run.until(lambda: "new-sim" in {e.id for e in run.of(MessageSent)}, timeout=10, what="sent")
        assert run.file("sent", "new-sim").headers.get("IMSI") == new_imsi
        assert run.network.submissions[-1]["from"] == run.network.modems[0].number == "+4917000000007"

    run_scenario(tmp_path, scenario, modems=1, configure=with_pin, profile="simcom", pin="1234")


def test_the_report_hook_gets_the_report_files_name_and_the_sent_messages_id(tmp_path):
    """Issue 11: GSMGW_ID of the `report` hook was the sent message's id; the README says it is
    the file's name (the report/ file). The sent message's id is GSMGW_SENT_ID."""
    log_file = tmp_path / "hook.log"
    hook = tmp_path / "on-report"
    hook.write_text(f'#!/bin/sh\necho "$1|$2|$GSMGW_FILE|$GSMGW_ID|$GSMGW_SENT_ID" >> {log_file}\n')
    hook.chmod(0o755)

    def configure(config):
        return dataclasses.replace(config, hooks=dataclasses.replace(config.hooks, report=str(hook)))

    async def scenario(run: Run):
        await run.ready()
        run.drop("hooked", f"To: {OUTSIDE}\nReport: yes\n\nreport to the hook\n")
        await run.until(lambda: log_file.exists() and log_file.read_text().count("\n") == 1, what="the hook ran")
        (report_name,) = run.names("report")
        path = str(run.spool / "report" / report_name)
        assert log_file.read_text() == f"report|{path}|{path}|{report_name}|hooked\n"

    run_scenario(tmp_path, scenario, modems=1, configure=configure)


def test_status_with_only_the_state_directory_reads_no_config(tmp_path):
    """Issue 11: `gsmgw status --state DIR` without -c looked for /etc/gsmgw/gsmgw.yaml."""
    import json
    import subprocess
    import sys

    state = tmp_path / "spool" / ".state"  # where simulation_config puts it
    env = {key: value for key, value in os.environ.items() if key != "GSMGW_CONFIG"}

    def status(*options):
        return subprocess.run([sys.executable, "-m", "gsmgw", "status", "--state", str(state), *options],
                              capture_output=True, text=True, timeout=30, env=env)

    async def scenario(run: Run):
        await run.ready()
        await run.until(lambda: (state / "status.json").exists() and '"ready"' in (state / "status.json").read_text(),
                        what="the status file")
        as_json = await asyncio.to_thread(status, "--json")
        assert as_json.returncode == 0, as_json.stderr
        assert [m["name"] for m in json.loads(as_json.stdout)["modems"]] == ["modem0"]
        table = await asyncio.to_thread(status)
        assert table.returncode == 0 and "modem0" in table.stdout and "gsmgw.yaml" not in table.stderr

    run_scenario(tmp_path, scenario, modems=1)


def test_a_modem_that_restarts_silently_is_set_up_again_after_the_next_command(tmp_path):
    """The generic dialect prints nothing when it restarts. The first command after it comes back
    echoed; the worker then has the modem set up again at once, not at the next health check
    (30 s away here)."""
    from gsmgw.events import ModemStateChanged

    async def scenario(run: Run):
        await run.ready()
        # A command in flight when a modem restarts silently is lost to its timeout (10 s): let
        # the first sweep and radio poll finish before the restart.
        worker = run.gateway.workers["modem0"]
        await run.until(lambda: worker.status.signal_dbm is not None and worker.idle, what="the first poll")
        mark = len(run.events)
        await asyncio.to_thread(run.network.reboot, 0)
        run.drop("first", f"To: {OUTSIDE}\nReport: no\n\nthe first after the restart\n")
        await run.until(lambda: any(isinstance(e, ModemStateChanged) and "echoed" in (e.reason or "")
                                    for e in run.events[mark:]), timeout=10, what="the silent restart noticed")
        await run.ready(timeout=10)
        assert run.network.call(lambda: run.network.modem(0).cnmi) == [2, 1, 0, 2, 0]
        run.drop("second", f"To: {OUTSIDE}\nReport: yes\n\nreport me\n")
        await run.until(lambda: any(e.id == "second" and e.delivered for e in run.of(ReportReceived)),
                        timeout=10, what="the report, routed again")

    run_scenario(tmp_path, scenario, modems=1)
