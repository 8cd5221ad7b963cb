"""Faults of a cluster (CLUSTER.md, issue 16), over real processes and a real PostgreSQL: members
are separate `gsmgw run` processes with their own spool, state and simulated modems, sharing one
database. The simulated network's submission log says what reached the network; each member's
log says what it announced (possible duplicates, reaping). Leases are 3 s, so a dead member is
noticed within seconds."""

from __future__ import annotations

import collections
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import psycopg
import pytest

from clusterharness import Cluster
from gsmgw.spool.format import read_spool_file
from helpers import free_port
from pgserver import PgServer
from tcpproxy import TcpProxy

LEASE = 3.0


def number(i: int) -> str:
    return f"+4915190{i:06d}"


@pytest.fixture
def clusters():
    made = []

    def make(*args, **kwargs) -> Cluster:
        cluster = Cluster(*args, **kwargs)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop()


def per_number(submissions) -> dict[str, list[dict]]:
    found = collections.defaultdict(list)
    for record in submissions:
        found[record["to"]].append(record)
    return found


def named_duplicates(text: str) -> set[str]:
    """Spool names the logs announced as possible duplicates."""
    return set(re.findall(r"possible duplicate: gw-a/(\S+) part \d+", text))


def name_of(record: dict) -> str:
    return f"m{int(record['to'][-6:]):03d}"


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


@pytest.mark.slow
def test_600_files_dropped_on_one_member_are_sent_once_across_every_modem(tmp_path, postgres, sim_network, clusters):
    net = sim_network(modems=6, latency=0.02, outside_reports=False)
    cluster = clusters(tmp_path, postgres.new_database(), net, {"gw-a": 2, "gw-b": 2, "gw-c": 2}, lease=LEASE)
    cluster.start()
    a = cluster["gw-a"]
    for i in range(600):
        a.drop(f"m{i:03d}", number(i), f"alert {i}")
    sent = a.wait_files("sent", 600, timeout=120)

    submissions = cluster.submissions()
    by_number = per_number(submissions)
    assert len(submissions) == 600 and all(len(records) == 1 for records in by_number.values())
    assert set(by_number) == {number(i) for i in range(600)}
    assert {record["modem"] for record in submissions} == set(range(6))  # every modem of every member
    # The origin wrote every result, whichever member's SIM sent it.
    assert cluster["gw-b"].files("sent") == [] and cluster["gw-c"].files("sent") == []
    assert a.files("failed") == [] and a.files("checked") == [] and a.files("outgoing") == []
    names = {info.index: name for member in cluster.members.values()
             for info, name in zip(member.modems, member.modem_names)}
    for name in sent:
        headers = read_spool_file((a.spool / "sent" / name).read_bytes()).headers
        (record,) = by_number[headers.get("To")]
        assert headers.get("Modem") == names[record["modem"]], name
    assert "Traceback" not in cluster.logs()


@pytest.mark.slow
def test_a_member_killed_mid_batch_loses_nothing(tmp_path, postgres, sim_network, clusters):
    net = sim_network(modems=6, latency=0.3, outside_reports=False)
    dsn = postgres.new_database()
    cluster = clusters(tmp_path, dsn, net, {"gw-a": 2, "gw-b": 2, "gw-c": 2}, lease=LEASE)
    cluster.start()
    a, b = cluster["gw-a"], cluster["gw-b"]
    for info in b.modems:  # gw-b's submits take long: the kill finds them in flight
        net.set_latency(info.index, 1.0)
    for i in range(60):
        a.drop(f"m{i:03d}", number(i), f"alert {i}")
    wait_for(lambda: len([s for s in cluster.submissions() if s["member"] == "gw-b"]) >= 3, 30, "gw-b sending")
    with psycopg.connect(dsn, autocommit=True) as connection:  # both its modems hold a claim
        wait_for(lambda: connection.execute("SELECT COUNT(*) FROM message WHERE state = 'sending' AND member = "
                                            "'gw-b'").fetchone()[0] == 2, 30, "gw-b holding two claims")
        b.kill()
    killed = time.time()
    sent = a.wait_files("sent", 60, timeout=60)
    assert len(sent) == 60 and a.files("failed") == []

    # Its unsubmitted messages went back at once and were sent by the others within lease + 5 s.
    survivors = cluster["gw-a"].text() + cluster["gw-c"].text()
    released = re.search(r"member gw-b: its lease ran out; \d+ message\(s\) it had claimed are back in the "
                         r"queue: (.*)", survivors)
    assert released, survivors[-3000:]
    by_number = per_number(cluster.submissions())
    for key in released.group(1).split(", "):
        i = int(key.rsplit("/m", 1)[1])
        last = max(record["at"] for record in by_number[number(i)])
        assert last <= killed + LEASE + 5, (key, last - killed)
        assert {record["member"] for record in by_number[number(i)]} - {"gw-b"}  # another member sent it
    # Duplicates: at most the parts in flight on its two modems, each named in the log.
    duplicates = {f"m{int(n[-6:]):03d}" for n, records in by_number.items() if len(records) > 1}
    assert len(duplicates) <= 2 and duplicates <= named_duplicates(survivors)
    # What it sent before it died is in the origin's sent/.
    sent_by_b = {name_of(r) for r in cluster.submissions() if r["member"] == "gw-b"}
    assert sent_by_b and sent_by_b <= set(sent)
    # Its modems show absent under its name.
    status = a.wait_status(lambda s: any(m["name"] == "gw-b" and m["state"] == "down" for m in s["members"]), 10)
    (dead,) = [m for m in status["members"] if m["name"] == "gw-b"]
    assert [m["state"] for m in dead["modems"]] == ["absent", "absent"]


@pytest.mark.slow
def test_postgresql_stopped_for_20_s_loses_nothing_and_sending_resumes_by_itself(tmp_path, sim_network, clusters):
    server = PgServer.start()
    try:
        net = sim_network(modems=4, latency=0.2, outside_reports=False)
        port = free_port()
        http = (f"http: {{listen: 127.0.0.1:{port}}}\n"
                "clients: [{name: ops, token: t0ps3cret, allow: ['+49*']}]\n")
        cluster = clusters(tmp_path, server.new_database(), net, {"gw-a": 2, "gw-b": 2}, lease=LEASE,
                           extras={"gw-a": http})
        a, b = cluster["gw-a"], cluster["gw-b"]
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # systemd's end of sd_notify
        notify.bind(str(tmp_path / "notify"))
        notify.settimeout(0.2)
        a.env["NOTIFY_SOCKET"] = str(tmp_path / "notify")
        cluster.start()
        pids = [member.process.pid for member in cluster.members.values()]
        for i in range(40):
            a.drop(f"m{i:03d}", number(i), f"alert {i}")
        wait_for(lambda: len(net.submissions) >= 8, 30, "sending")
        server.stop()
        stopped = time.time()

        # While it is away: the doors accept, nothing new is sent, SMS stay on the SIM, status says so.
        a.wait_status(lambda s: s["journal"]["state"] == "journal unreachable", 15)

        def said_unreachable():
            try:
                return "STATUS=journal unreachable; " in notify.recv(4096).decode()
            except socket.timeout:
                return False
        wait_for(said_unreachable, 10, "sd_notify STATUS= saying so")
        with pytest.raises(urllib.error.HTTPError) as health:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert health.value.code == 503 and "journal unreachable" in health.value.read().decode()
        for i in range(40, 50):
            a.drop(f"m{i:03d}", number(i), f"alert {i}")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/messages", method="POST",
            data=json.dumps({"to": number(50), "text": "alert 50"}).encode(),
            headers={"Authorization": "Bearer t0ps3cret", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 202
            (accepted,) = json.loads(answer.read())["messages"]
        asked = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/messages/{accepted['id']}",
                                       headers={"Authorization": "Bearer t0ps3cret"})
        with urllib.request.urlopen(asked, timeout=10) as answer:  # the spool answers for the journal
            assert json.loads(answer.read())["status"] == "queued"
        b_modem = b.modems[0].index
        net.inject_sms(b_modem, "+4915100000777", "hello during the outage")
        wait_for(lambda: net.stored_messages(b_modem, "SM"), 10, "the SMS on the SIM")
        time.sleep(max(0.0, stopped + 20 - time.time()))
        assert net.stored_messages(b_modem, "SM") and b.files("incoming") == []
        # What was in flight at the stop was marked `submitting` before it; nothing new after.
        quiet = [r for r in cluster.submissions() if r["at"] - 0.2 > stopped + LEASE]
        assert quiet == []

        server.start_again()
        restarted = time.time()
        a.wait_files("sent", 51, timeout=60)
        b.wait_files("incoming", 1, timeout=30)
        wait_for(lambda: not net.stored_messages(b_modem, "SM"), 10, "the SIM copy deleted")
        assert [member.process.pid for member in cluster.members.values()] == pids  # no restart
        assert all(member.process.poll() is None for member in cluster.members.values())
        assert a.files("outgoing") == [] and a.files("checked") == [] and a.files("failed") == []
        by_number = per_number(cluster.submissions())
        assert set(by_number) == {number(i) for i in range(51)}
        duplicates = {f"m{int(n[-6:]):03d}" for n, records in by_number.items() if len(records) > 1}
        assert duplicates <= named_duplicates(cluster.logs())
        assert min(r["at"] for r in cluster.submissions() if r["at"] - 0.2 > stopped + LEASE) < restarted + 15
        a.wait_status(lambda s: s["journal"]["state"] == "ok", 10)
        # Its /metrics name the member: one Prometheus scrapes every member.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            scraped = answer.read().decode()
        assert re.search(r'^gsmgw_messages_sent_total\{member="gw-a",modem="a\d"\} [1-9]', scraped, re.M), scraped[:3000]
        notify.close()
    finally:
        server.destroy()


@pytest.mark.slow
def test_a_member_cut_off_from_the_database_stops_sending_and_another_takes_its_work(
    tmp_path, postgres, sim_network, clusters
):
    with TcpProxy(postgres.port) as proxy:
        dsn = postgres.new_database()
        cut = dsn.replace(f":{postgres.port}/", f":{proxy.port}/")
        net = sim_network(modems=4, latency=0.3, outside_reports=False)
        cluster = clusters(tmp_path, dsn, net, {"gw-a": 2, "gw-b": 2}, lease=LEASE, dsns={"gw-b": cut})
        cluster.start()
        a, b = cluster["gw-a"], cluster["gw-b"]
        for i in range(40):
            a.drop(f"m{i:03d}", number(i), f"alert {i}")
        wait_for(lambda: len([s for s in cluster.submissions() if s["member"] == "gw-b"]) >= 3, 30, "gw-b sending")
        with psycopg.connect(dsn, autocommit=True) as connection:  # it has work when it is cut off
            wait_for(lambda: connection.execute("SELECT COUNT(*) FROM message WHERE state = 'sending' AND member = "
                                                "'gw-b'").fetchone()[0] >= 1, 30, "gw-b holding a claim")
            proxy.freeze()
        frozen = time.time()
        a.wait_files("sent", 40, timeout=60)
        submissions = cluster.submissions()
        # gw-b sends nothing new once its lease is gone: its last renewal came before the cut, and
        # every part it handed to a modem (the network logs it a latency later) came before that.
        assert max(r["at"] - 0.3 for r in submissions if r["member"] == "gw-b") <= frozen + LEASE
        assert a.wait_log(r"member gw-b: its lease ran out; \d+ message\(s\) it had (claimed|submitted completely)", 10)
        # gw-a took its work. A part reached the network from both only if gw-b's submit of it was
        # in flight at the cut: gw-b had marked it `submitting` (it cannot write to the database
        # after the cut), and gw-a's reaping names exactly those. At most one per modem.
        by_number = per_number(submissions)
        both = {f"m{int(n[-6:]):03d}" for n, records in by_number.items()
                if {r["member"] for r in records} == {"gw-a", "gw-b"}}
        assert len(both) <= 2 and both <= named_duplicates(a.text())
        assert set(by_number) == {number(i) for i in range(40)}
        proxy.thaw()
        b.wait_log(r"journal reachable again", 30)
        b.wait_status(lambda s: s["journal"]["state"] == "ok", 10)
        assert b.process.poll() is None


def test_reports_land_in_the_origins_report_directory_also_when_it_was_down(tmp_path, postgres, sim_network, clusters):
    net = sim_network(modems=2, latency=0.0, outside_reports=True, report_delay=0.5)
    cluster = clusters(tmp_path, postgres.new_database(), net, {"gw-a": 1, "gw-b": 1}, lease=LEASE)
    cluster.start()
    a, b = cluster["gw-a"], cluster["gw-b"]
    # Sent by gw-b (pinned to its modem b1), origin gw-a: the report goes to gw-a's report/.
    a.drop("first", number(1), "first", Modem="b1", Report="yes")
    (report,) = a.wait_files("report", 1, timeout=20)
    headers = read_spool_file((a.spool / "report" / report).read_bytes()).headers
    assert headers.get("Sent_file") == "first" and headers.get("Modem") == "b1"
    assert b.files("report") == [] and b.files("sent") == []
    a.wait_log(r"report for part 1/1 of first: delivered", 10)
    sent = read_spool_file((a.spool / "sent" / "first").read_bytes()).headers
    assert sent.get("Modem") == "b1" and sent.get("Status", "").startswith("delivered")
    # Refused by the network on gw-b's SIM (a permanent error), origin gw-a: the failed/ file is gw-a's.
    net.set_fault(b.modems[0].index, "cms_error", codes=[21], count=1)
    a.drop("refused", number(3), "refused", Modem="b1")
    assert a.wait_files("failed", 1, timeout=20) == ["refused"] and b.files("failed") == []
    failed = read_spool_file((a.spool / "failed" / "refused").read_bytes()).headers
    assert "short message transfer rejected" in failed.get("Fail_reason", ""), failed

    # gw-a is down while gw-b sends its message and the report comes: both land when it returns.
    # gw-b is away while gw-a queues it (pinned to b1, it waits), so nothing is sent before gw-a
    # has stopped.
    b.stop()
    net.set_report_outcome(number(2), [0x20, 0x00], interval=0.5)  # pending, then delivered
    a.drop("second", number(2), "second", Modem="b1", Report="yes")
    a.wait_log(r"second: queued", 10)
    a.stop()
    b.start()
    b.wait_log(r"report for part 1 of gw-a/second: delivered .*kept for its origin gw-a", 20)
    assert not (a.spool / "sent" / "second").exists()
    a.start()
    a.wait_files("report", 3, timeout=20)
    a.wait_log(r"report for part 1/1 of second: delivered", 10)
    sent = read_spool_file((a.spool / "sent" / "second").read_bytes()).headers
    assert sent.get("Modem") == "b1" and sent.get("Status", "").startswith("delivered")
    assert b.files("report") == []
    # Its file waited in checked/ for gw-a, finished: gw-a's start did not take it for a new message.
    assert len([r for r in net.submissions if r["to"] == number(2)]) == 1


def test_pins_and_prefixes_see_every_members_modems(tmp_path, postgres, sim_network, clusters):
    net = sim_network(modems=2, latency=0.0, outside_reports=False)
    cluster = clusters(tmp_path, postgres.new_database(), net, {"gw-a": 1, "gw-b": 1}, lease=LEASE)
    config = cluster["gw-b"].config  # b1 prefers +4917 numbers, and sends at most 5 parts a minute
    config.write_text(config.read_text().replace(
        "    port:", "    prefixes: ['+4917']\n    limits: {per_minute: 5}\n    port:", 1))
    cluster.start()
    a, b = cluster["gw-a"], cluster["gw-b"]

    def b1_ready(status):
        return any(m["name"] == "gw-b" and [x["state"] for x in m["modems"]] == ["ready"] for m in status["members"])

    # The rule holds once gw-a has seen b1 up (gw-b tells when it comes up): wait for that.
    a.wait_status(b1_ready, 10)
    # gw-a's a1 is idle, but +4917... is b1's prefix and b1 is up: gw-b sends them.
    for i in range(3):
        a.drop(f"prefixed{i}", f"+491700000{i:04d}", "prefixed")
    for name in a.wait_files("sent", 3, timeout=20):
        assert read_spool_file((a.spool / "sent" / name).read_bytes()).headers.get("Modem") == "b1", name
    # Pinned to gw-b's b1 while gw-b is down: it waits for b1 (a1 is idle all along).
    b.stop()
    a.wait_status(lambda s: any(m["name"] == "gw-b" and m["state"] == "down" for m in s["members"]), 10)
    a.drop("pinned", number(1), "for b1", Modem="b1")
    a.wait_log(r"pinned: queued for .* pinned to b1", 10)
    # A younger message that a1 may send: when it is out, a1 has passed over the older pinned one.
    a.drop("after", number(2), "for anyone")
    a.wait_files("sent", 4, timeout=20)
    assert "pinned" not in a.files("sent")
    assert read_spool_file((a.spool / "sent" / "after").read_bytes()).headers.get("Modem") == "a1"
    b.start()
    a.wait_files("sent", 5, timeout=30)
    assert read_spool_file((a.spool / "sent" / "pinned").read_bytes()).headers.get("Modem") == "b1"
    assert a.files("failed") == []
    # b1 has sent 4 parts this minute: of two more +4917 messages it takes one, and a1 the other,
    # because gw-a counts b1's limit window in the shared database.
    a.wait_status(b1_ready, 10)
    for i in range(3, 5):
        a.drop(f"prefixed{i}", f"+491700000{i:04d}", "prefixed")
    a.wait_files("sent", 7, timeout=20)
    assert sorted(read_spool_file((a.spool / "sent" / f"prefixed{i}").read_bytes()).headers.get("Modem")
                  for i in range(3, 5)) == ["a1", "b1"]
    # gw-a's console index lives in the shared database, under gw-a: `gsmgw thread` reads it there.
    def thread():
        shown = subprocess.run([sys.executable, "-m", "gsmgw", "thread", number(1), "-c", str(a.config), "--json"],
                               capture_output=True, text=True, timeout=30)
        return [json.loads(line) for line in shown.stdout.splitlines()] if shown.returncode == 0 else []
    (row,) = wait_for(thread, 10, "the pinned message in gw-a's index")
    assert (row["id"], row["modem"], row["state"]) == ("pinned", "b1", "sent")
