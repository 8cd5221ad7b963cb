"""The spool's group committer (gsmgw.spool.commit), which every door shares: how batches form,
what an fsync error does to them, what each door answers then, and a kill -9 in the middle of
many concurrent commits.

Faults come from the `fsync` the committer is given: it fails as a failing disk does (EIO) for
the files or the directory fsync the test names. Everything else is the real spool on disk.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import json
import os
import signal
import smtplib
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from gsmgw.spool.commit import CommitError, GroupCommitter
from gsmgw.spool.store import Spool
from helpers import SEAL_KEY

TO = b"To: +4915112345678\n\n"


@pytest.fixture
def spool(tmp_path):
    spool = Spool(tmp_path / "spool", seal_key=SEAL_KEY)
    spool.ensure_dirs()
    return spool


class Disk:
    """An fsync for the committer that holds the first directory fsync until `release`, so the
    test knows which submissions form the next batch, and fails (EIO) the directory fsyncs
    numbered in `failing_directory_fsyncs` (0 is the first) and the fsync of any file whose text
    contains `failing_text`."""

    def __init__(self, *, failing_directory_fsyncs: set[int] = frozenset(), failing_text: bytes | None = None):
        self.failing_directory_fsyncs = failing_directory_fsyncs
        self.failing_text = failing_text
        self.held = threading.Event()
        self.released = threading.Event()
        self.directory_fsyncs = itertools.count()

    def release(self) -> None:
        self.released.set()

    def __call__(self, fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            number = next(self.directory_fsyncs)
            if number == 0:
                self.held.set()
                assert self.released.wait(10), "the test never released the first batch"
            if number in self.failing_directory_fsyncs:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
        elif self.failing_text is not None:
            with open(f"/proc/self/fd/{fd}", "rb") as written:
                if self.failing_text in written.read():
                    raise OSError(errno.EIO, os.strerror(errno.EIO))
        os.fsync(fd)


def outcome(future) -> list[str] | CommitError:
    try:
        return future.result(10)
    except CommitError as error:
        return error


def entries(spool: Spool) -> list[str]:
    return sorted(os.listdir(spool.path("outgoing")))


def texts(spool: Spool) -> list[bytes]:
    return sorted(spool.verified(spool.read("outgoing", name)).body.strip() for name in spool.list("outgoing"))


def test_a_batch_is_everything_that_arrived_while_the_previous_commit_ran(spool):
    # Issue 12: the SMPP server's parallel writers kept every commit at about one message.
    disk = Disk()
    committer = spool.committer = GroupCommitter(spool, fsync=disk)
    first = committer.submit([TO + b"first"])
    assert disk.held.wait(10)  # the first batch is committing (idle: it went at once, alone)
    waiting = [committer.submit([TO + b"m%d" % n]) for n in range(10)]
    waiting.append(committer.submit([TO + b"group-a", TO + b"group-b"]))
    disk.release()
    names = [outcome(future) for future in [first, *waiting]]
    assert list(committer.recent) == [1, 12]  # files per directory fsync: one batch for all that waited
    assert all(isinstance(result, list) for result in names)
    assert sorted(name for result in names for name in result) == entries(spool)  # no lock or temporary left
    assert len(texts(spool)) == 13


def test_an_fsync_error_on_one_file_fails_exactly_its_batch(spool):
    disk = Disk(failing_text=b"doomed")
    committer = spool.committer = GroupCommitter(spool, fsync=disk)
    first = committer.submit([TO + b"before"])
    assert disk.held.wait(10)
    batch = [committer.submit([TO + b"ok-1"]), committer.submit([TO + b"doomed"]),
             committer.submit([TO + b"group-1", TO + b"group-2", TO + b"group-3"]), committer.submit([TO + b"ok-2"])]
    disk.release()
    assert isinstance(outcome(first), list)
    for future in batch:
        error = outcome(future)
        assert isinstance(error, CommitError), error
        assert str(error) == "the spool cannot be written (Input/output error); nothing was queued, try again later"
    after = outcome(committer.submit([TO + b"after"]))
    assert isinstance(after, list)
    # Nothing of the failed batch is left: no file, no temporary, no lock.
    assert texts(spool) == [b"after", b"before"] and len(entries(spool)) == 2


def test_a_failed_directory_fsync_takes_back_every_file_of_its_batch(spool):
    # Before the group committer, submit_each renamed the files, and when the directory fsync
    # failed every request was told "nothing was queued" while its file stayed in outgoing/.
    disk = Disk(failing_directory_fsyncs={1})
    committer = spool.committer = GroupCommitter(spool, fsync=disk)
    first = committer.submit([TO + b"before"])
    assert disk.held.wait(10)
    batch = [committer.submit([TO + b"m%d" % n]) for n in range(5)]
    batch.append(committer.submit([TO + b"group-1", TO + b"group-2"]))
    disk.release()
    assert isinstance(outcome(first), list)
    assert all(isinstance(outcome(future), CommitError) for future in batch)
    assert isinstance(outcome(committer.submit([TO + b"after"])), list)
    assert texts(spool) == [b"after", b"before"] and len(entries(spool)) == 2


def test_a_request_cancelled_before_its_batch_is_not_written(spool):
    disk = Disk()
    committer = spool.committer = GroupCommitter(spool, fsync=disk)
    first = committer.submit([TO + b"first"])
    assert disk.held.wait(10)
    gave_up = committer.submit([TO + b"gave up"])
    kept = committer.submit([TO + b"kept"])
    assert gave_up.cancel()
    disk.release()
    assert isinstance(outcome(first), list) and isinstance(outcome(kept), list)
    assert texts(spool) == [b"first", b"kept"]


def test_a_closed_committer_refuses_and_says_so(spool):
    committer = spool.committer
    assert len(outcome(committer.submit([TO + b"one"]))) == 1
    committer.close()
    error = outcome(committer.submit([TO + b"two"]))
    assert isinstance(error, CommitError) and "shutting down" in str(error)


def test_an_idle_committer_keeps_no_thread_and_the_next_submission_starts_one(spool, monkeypatch):
    from gsmgw.spool import commit

    monkeypatch.setattr(commit, "IDLE_SECONDS", 0.05)
    committer = spool.committer
    assert len(outcome(committer.submit([TO + b"one"]))) == 1
    thread = committer._thread
    assert thread is not None
    thread.join(10)
    assert not thread.is_alive() and committer._thread is None and committer._pool is None
    assert len(outcome(committer.submit([TO + b"two", TO + b"three"]))) == 2
    assert texts(spool) == [b"one", b"three", b"two"]


# --- what each door answers when its batch could not be made durable ----------------------------


def failing_disk() -> Disk:
    disk = Disk(failing_directory_fsyncs={0})
    disk.release()
    return disk


def test_http_answers_503_when_the_spool_cannot_make_the_request_durable(tmp_path):
    from test_http_api import run

    async def scenario(api):
        spool = api.ctx.spool
        spool.committer = GroupCommitter(spool, fsync=failing_disk())
        status, body, _ = await api.send({"to": ["+4915112345678", "+4915112345679"], "text": "x"})
        assert status == 503
        assert body["error"] == ("the spool cannot be written (Input/output error); nothing was queued, "
                                 "try again later")
        assert entries(spool) == []
        spool.committer = GroupCommitter(spool)
        status, body, _ = await api.send({"to": "+4915112345678", "text": "x"})
        assert status == 202 and entries(spool) == [body["messages"][0]["id"]]

    run(scenario, tmp_path)


def test_smpp_answers_rsyserr_when_the_spool_cannot_make_the_submission_durable(tmp_path):
    import smpplib.gsm

    from test_smpp_server import ServerThread, bind, read_until

    with ServerThread(tmp_path) as gateway:
        spool = gateway.spool
        spool.committer = GroupCommitter(spool, fsync=failing_disk())
        client = bind(gateway)
        client.send_message(dest_addr_ton=1, destination_addr="4915112345678", short_message=smpplib.gsm.gsm_encode("x"))
        assert read_until(client, "submit_sm_resp").status == 0x08  # ESME_RSYSERR
        assert entries(spool) == []
        spool.committer = GroupCommitter(spool)
        client.send_message(dest_addr_ton=1, destination_addr="4915112345678", short_message=smpplib.gsm.gsm_encode("y"))
        resp = read_until(client, "submit_sm_resp")
        assert resp.status == 0 and entries(spool) == [resp.message_id.decode()]
        client.disconnect()


def test_smtp_answers_451_when_the_spool_cannot_make_the_mail_durable(tmp_path):
    from test_email_listener import DOMAIN, in_thread, mail, run, send

    async def scenario(ctx, listener):
        ctx.spool.committer = GroupCommitter(ctx.spool, fsync=failing_disk())
        with pytest.raises(smtplib.SMTPDataError) as refused:
            await in_thread(send, listener.port, mail(f"+4915112345678@{DOMAIN}", "x"))
        assert refused.value.smtp_code == 451
        assert b"4.3.0 the spool cannot be written (Input/output error); nothing was queued" in refused.value.smtp_error
        assert entries(ctx.spool) == []
        ctx.spool.committer = GroupCommitter(ctx.spool)
        await in_thread(send, listener.port, mail(f"+4915112345678@{DOMAIN}", "y"))
        assert len(entries(ctx.spool)) == 1

    run(tmp_path, scenario)


# --- kill -9 while many concurrent requests are being group-committed ----------------------------

SERVER = textwrap.dedent("""\
    import asyncio, sys
    from gsmgw.clients import ClientRegistry
    from gsmgw.config import load_config
    from gsmgw.daemon.events import EventBus
    from gsmgw.daemon.metrics import Metrics
    from gsmgw.http.server import start
    from gsmgw.spool.store import Spool

    class Context:
        def __init__(self):
            self.config = load_config(sys.argv[1])
            self.spool = Spool(self.config.spool, seal_key=bytes(range(32)))
            self.spool.ensure_dirs()
            self.bus, self.metrics = EventBus(), Metrics()
            self.clients = ClientRegistry.from_config(self.config)

        def status_snapshot(self):
            return {"updated": None, "modems": [], "queue": {}}

        def message_status(self, message_id):
            return None

    async def main():
        server = await start(Context())
        print(server.url, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """)


def test_kill_9_during_group_commits_loses_no_acknowledged_message(tmp_path):
    from test_http_api import TOKEN, write_config

    config = write_config(tmp_path)
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(config)], stdout=subprocess.PIPE,
                              cwd=Path(__file__).resolve().parent.parent)
    try:
        host, port = server.stdout.readline().decode().strip().removeprefix("http://").rsplit(":", 1)
        acknowledged: list[str] = []

        async def sender(number: int) -> None:
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                for sequence in itertools.count():
                    body = json.dumps({"to": f"+4915{number:03d}{sequence:06d}", "text": f"{number}/{sequence}"}).encode()
                    writer.write(f"POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))[15:])
                    answer = await reader.readexactly(length)
                    assert head.startswith(b"HTTP/1.1 202"), head + answer
                    acknowledged.append(json.loads(answer)["messages"][0]["id"])
                    if len(acknowledged) >= 150:
                        os.kill(server.pid, signal.SIGKILL)  # mid-flood: other requests are being committed
            except (asyncio.IncompleteReadError, ConnectionError):
                return  # the server is dead
            finally:
                writer.close()

        async def flood() -> None:
            await asyncio.wait_for(asyncio.gather(*(sender(n) for n in range(24))), 60)

        asyncio.run(flood())
        assert server.wait(10) == -signal.SIGKILL
    finally:
        if server.poll() is None:
            server.kill()  # our own child, by its handle
            server.wait(10)
        server.stdout.close()

    spool = Spool(tmp_path / "spool", seal_key=SEAL_KEY)
    spool.recover()
    queued = set(spool.list("outgoing"))
    assert len(acknowledged) >= 150
    assert set(acknowledged) <= queued, f"acknowledged but lost: {sorted(set(acknowledged) - queued)[:5]}"
    for name in acknowledged:  # whole, sealed files
        message = spool.verified(spool.read("outgoing", name))
        assert message.headers.get("Client") == "zabbix" and message.body.strip()
