"""Fuzzing the start of the daemon: a spool with arbitrary entries in checked/ and outgoing/
(files of any bytes, near-valid messages, directories, symlinks, FIFOs, files too large to be
messages, leftovers of a writer that died) goes through `Outbound.recover()` and a claim of
everything in outgoing/, as `gsmgw run` does at every start.

Nothing may escape (an exception there stops the daemon at every start, and systemd gives up),
and every entry ends in exactly one place: queued in checked/ (known to the journal, one file
per recipient) or in failed/; none is left in outgoing/ and none is lost.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gsmgw.config import Defaults
from gsmgw.daemon.outbound import Outbound, SendSettings
from gsmgw.spool import journal as J
from gsmgw.spool.journal import SqliteJournal
from gsmgw.spool.store import MAX_FILE_SIZE, Spool
from spoolfiles import GROUPS, spool_files

SETTINGS = SendSettings(default_country="49", defaults=Defaults(report=False), groups=GROUPS, modem_names=("gsm1",))
names = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,15}\Z").filter(
    lambda name: not name.lower().endswith((".tmp", ".lock"))
)
# What an entry is: the bytes of a regular file, or another kind of entry.
contents = st.one_of(
    spool_files(),
    st.binary(max_size=200),
    st.sampled_from(["directory", "symlink", "dangling symlink", "fifo", "too large", "dead batch", "dead batch dir",
                     "stale temporary directory"]),
)
# The lock `Spool.submit_many` writes before a file; this one's writer is long gone.
DEAD_BATCH_LOCK = b"gsmgw submit_many pid=999999999 start=1\n"
entries = st.lists(st.tuples(st.sampled_from(["checked", "outgoing"]), names, contents), max_size=6,
                   unique_by=lambda entry: (entry[0], entry[1]))


def place(spool: Spool, dirname: str, name: str, content) -> None:
    path = spool.path(dirname, name)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "directory":
        path.mkdir()
        (path / "inside").write_bytes(b"To: +4915112345678\n\nhi")
    elif content == "symlink":
        target = spool.root / f"target-{dirname}-{name}"
        target.write_bytes(b"To: +4915112345678\n\nhi")
        path.symlink_to(target)
    elif content == "dangling symlink":
        path.symlink_to(spool.root / "nowhere")
    elif content == "fifo":
        os.mkfifo(path)
    elif content == "too large":
        with open(path, "wb") as handle:
            handle.truncate(MAX_FILE_SIZE + 1)
    elif content == "stale temporary directory":
        # Named like our temporary files, old enough to be removed at start, but not a file.
        path.write_bytes(b"To: +4915112345678\n\nhi")
        stale = spool.path(dirname, f".gsmgw-{name}.tmp")
        stale.mkdir()
        os.utime(stale, (time.time() - 3600, time.time() - 3600))
    elif content.startswith("dead batch"):
        # A batch whose writer died before it returned was never acknowledged: recovery
        # removes its file. A directory under such a lock is none of its files.
        if content.endswith("dir"):
            path.mkdir()
        else:
            path.write_bytes(b"To: +4915112345678\n\nhi")
        Path(f"{path}.LOCK").write_bytes(DEAD_BATCH_LOCK)


def kind(path: Path) -> str:
    mode = os.lstat(path).st_mode
    return "file" if stat.S_ISREG(mode) else "other"


def run_start(root: Path, layout) -> None:
    spool = Spool(root / "spool")
    spool.ensure_dirs()
    for dirname, name, content in layout:
        place(spool, dirname, name, content)
    journal = SqliteJournal(root / "journal.sqlite")
    try:
        outbound = Outbound(spool, journal, None, SETTINGS, clock=time.time)
        outbound.recover()
        outbound.accept(spool.list("outgoing"))

        assert spool.list("outgoing") == [], "everything in outgoing/ is claimed or set aside"
        queued = set(journal.messages_in_state(J.QUEUED))
        checked = spool.list("checked")
        for name in checked:
            assert kind(spool.path("checked", name)) == "file" and name in queued, name
        assert queued == set(checked), "every queued message has its file"
        failed = spool.list("failed")
        # One place each: a message in checked/ is not also set aside in failed/ under its name.
        assert not set(checked) & set(failed)
        # Nothing lost: every entry is in failed/ or was queued (itself, or one file per
        # recipient: NAME.1, NAME.2 ...). A claim may rename NAME to NAME-2 when taken.
        for dirname, name, content in layout:
            if content == "dead batch" and dirname == "outgoing":
                assert not any(f == name for f in failed + checked)
                continue

            def here(found: list[str]) -> bool:
                return any(f == name or f.startswith((name + "-", name + ".")) for f in found)

            assert here(failed) or here(checked), (dirname, name, content, failed, checked)
    finally:
        journal.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries)
@example([("checked", "A", b"To: +4915112345678\nExpires: 1000000 weeks\n\nhi")])
@example([("outgoing", "A", b"To: +4915112345678\nExpires: 1000000 weeks\n\nhi")])
@example([("checked", "A", "directory"), ("checked", "B", "fifo"), ("checked", "C", "too large")])
@example([("outgoing", "A", "dead batch dir"), ("outgoing", "B", "dead batch")])
@example([("checked", "A", "stale temporary directory")])
def test_recovery_and_claim_never_raise_and_keep_every_file(layout):
    root = Path(tempfile.mkdtemp(prefix="gsmgw-fuzz-"))
    try:
        run_start(root, layout)
    finally:
        shutil.rmtree(root)
