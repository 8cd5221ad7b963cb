"""The spool directories: atomic writes, claims by rename, untrusted entries, recovery."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from gsmgw.spool.store import (
    DIRECTORIES,
    MAX_FILE_SIZE,
    SEAL_KEY_FILE,
    Claimed,
    Rejected,
    Spool,
    SpoolError,
    load_seal_key,
    rename_noreplace,
)


@pytest.fixture
def spool(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.ensure_dirs()
    return spool


def test_ensure_dirs_creates_all(spool):
    assert all(spool.path(d).is_dir() for d in DIRECTORIES)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_ensure_dirs_refuses_an_unwritable_spool(tmp_path):
    root = tmp_path / "ro"
    Spool(root).ensure_dirs()
    os.chmod(root / "sent", 0o500)
    try:
        with pytest.raises(SpoolError, match="cannot write to the spool directory .*sent"):
            Spool(root).ensure_dirs()
    finally:
        os.chmod(root / "sent", 0o700)


def test_write_atomic_leaves_no_temporary_and_replaces(spool):
    spool.write_atomic("sent", "m1", b"one")
    spool.write_atomic("sent", "m1", b"two")
    assert os.listdir(spool.path("sent")) == ["m1"]
    assert spool.read("sent", "m1") == b"two"


def test_submit_never_overwrites_and_names_sort_in_order(spool):
    names = spool.submit_many([b"To: 1\n\na", b"To: 2\n\nb", b"To: 3\n\nc"])
    assert names == sorted(names) and len(set(names)) == 3
    assert [spool.read("outgoing", n)[-1:] for n in names] == [b"a", b"b", b"c"]
    single = spool.submit(b"x")
    assert spool.list("outgoing") == sorted(names + [single])
    assert not [n for n in os.listdir(spool.path("outgoing")) if n.startswith(".")]


def test_large_batch_is_flushed_once_and_complete(spool):
    files = [f"To: +4915112345678\n\nmessage {i}".encode() for i in range(50)]  # one batch: one directory fsync
    names = spool.submit_many(files)
    assert [spool.read("outgoing", name) for name in names] == files
    assert sorted(os.listdir(spool.path("outgoing"))) == names


def test_write_new_with_a_taken_name_gets_a_suffix(spool):
    assert spool.write_new("incoming", b"a", name="gsm1-x") == "gsm1-x"
    assert spool.write_new("incoming", b"b", name="gsm1-x") == "gsm1-x-2"
    assert spool.read("incoming", "gsm1-x") == b"a"


def test_rename_noreplace_refuses_to_replace(tmp_path):
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "b").write_bytes(b"b")
    with pytest.raises(FileExistsError):
        rename_noreplace(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "b").read_bytes() == b"b"


def test_claim_moves_to_checked_and_reads(spool):
    spool.path("outgoing", "msg").write_bytes(b"To: +4915112345678\n\nhi")
    claimed = spool.claim("msg")
    assert isinstance(claimed, Claimed)
    assert (claimed.name, claimed.data) == ("msg", b"To: +4915112345678\n\nhi")
    assert spool.list("outgoing") == [] and spool.list("checked") == ["msg"]
    assert spool.claim("msg") is None  # gone: a lost race is not an error


def test_claim_does_not_reuse_a_name_of_another_message(spool):
    spool.write_atomic("sent", "alert", b"old")
    spool.write_atomic("failed", "alert-2", b"older")
    spool.path("outgoing", "alert").write_bytes(b"new")
    claimed = spool.claim("alert")
    assert claimed.name == "alert-3" and claimed.original_name == "alert"
    assert spool.read("sent", "alert") == b"old"


def test_claim_race_has_exactly_one_winner(spool):
    for i in range(20):
        spool.path("outgoing", f"m{i}").write_bytes(b"To: 1\n\nx")
    results: list = []
    lock = threading.Lock()

    def claimer():
        for i in range(20):
            result = spool.claim(f"m{i}")
            with lock:
                results.append(result)

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    won = [r for r in results if isinstance(r, Claimed)]
    assert len(won) == 20 and sorted(r.name for r in won) == sorted(f"m{i}" for i in range(20))
    assert spool.list("checked") == sorted(f"m{i}" for i in range(20))


def test_symlink_is_never_followed_but_moved_to_failed_as_it_is(spool, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"To: +4915112345678\n\nsecret")
    os.symlink(secret, spool.path("outgoing", "link"))
    result = spool.claim("link")
    assert isinstance(result, Rejected) and "symbolic link" in result.reason
    moved = spool.path("failed", result.name)
    assert moved.is_symlink() and os.readlink(moved) == str(secret)
    assert secret.read_bytes() == b"To: +4915112345678\n\nsecret"
    assert spool.list("checked") == []


def test_fifo_and_directory_are_moved_without_opening(spool):
    os.mkfifo(spool.path("outgoing", "fifo"))
    os.mkdir(spool.path("outgoing", "dir"))
    fifo, directory = spool.claim("fifo"), spool.claim("dir")  # opening the FIFO would block here
    assert isinstance(fifo, Rejected) and "FIFO" in fifo.reason
    assert isinstance(directory, Rejected) and "directory" in directory.reason
    assert stat.S_ISFIFO(os.lstat(spool.path("failed", "fifo")).st_mode)
    assert spool.path("failed", "dir").is_dir()


def test_too_large_file_is_set_aside_unread(spool):
    with open(spool.path("outgoing", "big"), "wb") as handle:
        handle.truncate(MAX_FILE_SIZE + 1)
    result = spool.claim("big")
    assert isinstance(result, Rejected) and "bytes" in result.reason
    assert spool.exists("failed", "big")


def test_locked_file_is_not_claimed(spool):
    spool.path("outgoing", "m").write_bytes(b"x")
    spool.path("outgoing", "m.LOCK").write_bytes(b"")
    assert spool.claim("m") is None
    os.unlink(spool.path("outgoing", "m.LOCK"))
    assert isinstance(spool.claim("m"), Claimed)


def test_list_ignores_hidden_temporary_and_lock_files(spool):
    for name in ("a", ".hidden", "b.tmp", "c.LOCK", "d"):
        spool.path("outgoing", name).write_bytes(b"x")
    assert spool.list("outgoing") == ["a", "d"]
    assert spool.depths()["outgoing"] == 2


def test_finish_and_recovery_target_wins(spool):
    spool.write_atomic("checked", "done", b"original")
    spool.write_atomic("checked", "half", b"original")
    spool.write_atomic("checked", "todo", b"original")
    assert spool.finish("done", "sent", b"sent version") == "done"
    assert not spool.exists("checked", "done")
    # A crash after the target was written but before the source was removed:
    spool.write_atomic("failed", "half", b"failed version")
    stale = spool.path("checked", ".gsmgw-deadbeef.tmp")
    stale.write_bytes(b"partial")
    os.utime(stale, (0, 0))
    assert spool.recover() == ["todo"]
    assert not spool.exists("checked", "half") and spool.read("failed", "half") == b"failed version"
    assert not stale.exists()


def test_read_refuses_symlinks(spool, tmp_path):
    (tmp_path / "target").write_bytes(b"x")
    os.symlink(tmp_path / "target", spool.path("incoming", "l"))
    with pytest.raises(OSError):
        spool.read("incoming", "l")


# --- submit_many: every file of a batch or none -------------------------------------------------


def _entries(spool):
    return sorted(os.listdir(spool.path("outgoing")))


def test_submit_many_queues_none_when_a_rename_fails_midway(spool, monkeypatch):
    import errno

    from gsmgw.spool import store

    real = store.rename_noreplace
    calls = []

    def failing_third(source, target):
        calls.append(target)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        real(source, target)

    monkeypatch.setattr(store, "rename_noreplace", failing_third)
    with pytest.raises(OSError):
        spool.submit_many([f"To: +4915112345678\n\nm{i}\n".encode() for i in range(4)])
    assert len(calls) == 3
    assert _entries(spool) == []  # no message, no lock, no temporary


def test_submit_many_files_cannot_be_claimed_before_the_whole_batch_is_in(spool, monkeypatch):
    from gsmgw.spool import store

    real = store.rename_noreplace
    claims = []

    def rename_then_try_to_claim(source, target):
        real(source, target)
        claims.append(spool.claim(os.path.basename(target)))

    monkeypatch.setattr(store, "rename_noreplace", rename_then_try_to_claim)
    names = spool.submit_many([b"To: 1\n\na\n", b"To: 2\n\nb\n", b"To: 3\n\nc\n"])
    assert claims == [None, None, None]
    monkeypatch.setattr(store, "rename_noreplace", real)
    assert _entries(spool) == names  # the locks are gone once it returned
    assert all(isinstance(spool.claim(name), Claimed) for name in names)


def test_recover_removes_a_batch_whose_writer_was_killed(spool, tmp_path):
    import signal
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import os, signal
        from gsmgw.spool import store
        real = store.rename_noreplace
        done = []
        def rename_then_die(source, target):
            real(source, target)
            done.append(target)
            if len(done) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        store.rename_noreplace = rename_then_die
        store.Spool({str(spool.root)!r}).submit_many([b"To: 1\\n\\na\\n", b"To: 2\\n\\nb\\n", b"To: 3\\n\\nc\\n"])
    """)
    result = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert result.returncode == -signal.SIGKILL
    left = [name for name in _entries(spool) if not name.startswith(".")]
    assert len([name for name in left if name.endswith(".LOCK")]) == 3  # every name reserved first
    assert len([name for name in left if not name.endswith(".LOCK")]) == 2
    assert all(spool.claim(name) is None for name in left if not name.endswith(".LOCK"))

    spool.recover()
    assert [name for name in _entries(spool) if not name.startswith(".")] == []


def test_recover_keeps_user_locks_and_batches_of_a_living_writer(spool):
    from gsmgw.spool import store

    (spool.path("outgoing") / "mine").write_bytes(b"To: 1\n\nx\n")
    (spool.path("outgoing") / "mine.LOCK").write_bytes(b"")
    (spool.path("outgoing") / "batch").write_bytes(b"To: 2\n\ny\n")
    (spool.path("outgoing") / "batch.LOCK").write_bytes(store._batch_owner())  # this process: alive
    spool.recover()
    assert _entries(spool) == ["batch", "batch.LOCK", "mine", "mine.LOCK"]


def test_recover_trusts_no_batch_lock_a_user_wrote(spool, monkeypatch):
    # Found with issue 11's trusted headers: a group member who wrote the batch marker with a
    # dead pid into `victim.LOCK` made the next start remove another user's message.
    (spool.path("outgoing") / "victim").write_bytes(b"To: 1\n\nx\n")
    (spool.path("outgoing") / "victim.LOCK").write_bytes(b"gsmgw submit_many pid=999999999 start=1\n")
    real_uid = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: real_uid + 1)  # the daemon is another user than the writer
    spool.recover()
    assert _entries(spool) == ["victim", "victim.LOCK"]
    monkeypatch.setattr(os, "geteuid", lambda: real_uid)  # a lock the daemon's own user wrote
    spool.recover()
    assert _entries(spool) == []


@pytest.mark.parametrize("count", [3, 12])
def test_submit_each_queues_every_file_but_the_one_that_failed(spool, monkeypatch, count):
    import errno

    from gsmgw.spool import store

    real = store.rename_noreplace
    calls = []

    def failing_second(source, target):
        calls.append(target)
        if len(calls) == 2:
            raise OSError(errno.EIO, "Input/output error", str(target))
        real(source, target)

    monkeypatch.setattr(store, "rename_noreplace", failing_second)
    files = [f"To: +4915112345678\n\nm{i}\n".encode() for i in range(count)]
    results = spool.submit_each(files)
    assert isinstance(results[1], OSError)
    names = [r for r in results if isinstance(r, str)]
    assert len(names) == count - 1 and names == sorted(names)
    # Each queued file is whole, in order, with no lock beside it; the failed one left nothing.
    assert _entries(spool) == sorted(names)
    assert [spool.read("outgoing", name) for name in names] == files[:1] + files[2:]


# --- the seal key and the doors' sealed writes --------------------------------------------------


def test_the_seal_key_is_made_once_private_and_whole(tmp_path):
    key = load_seal_key(tmp_path)
    path = tmp_path / SEAL_KEY_FILE
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_seal_key(tmp_path) == key
    assert [name for name in os.listdir(tmp_path)] == [SEAL_KEY_FILE]  # no temporary left


def test_two_daemons_starting_at_once_agree_on_one_key(tmp_path):
    keys = []
    threads = [threading.Thread(target=lambda: keys.append(load_seal_key(tmp_path))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1


@pytest.mark.parametrize("content, mode, words", [
    (b"not hex\n", 0o600, "not a gsmgw seal key; remove it"),
    (b"abcd\n", 0o600, "not a gsmgw seal key"),
    (b"00" * 32 + b"\n", 0o640, "chmod 600"),
])
def test_a_bad_seal_key_stops_the_daemon_with_what_to_do(tmp_path, content, mode, words):
    path = tmp_path / SEAL_KEY_FILE
    path.write_bytes(content)
    os.chmod(path, mode)
    with pytest.raises(SpoolError, match=words):
        load_seal_key(tmp_path)


def test_every_write_into_outgoing_is_sealed_with_the_key(tmp_path):
    spool = Spool(tmp_path / "spool", seal_key=load_seal_key(tmp_path))
    spool.ensure_dirs()
    door_file = b"To: +4915112345678\nClient: app\n\nhi\n"
    names = [spool.submit(door_file), *spool.submit_many([door_file, door_file]), *spool.submit_each([door_file]),
             spool.write_new("outgoing", door_file, name="given")]
    for name in names:
        assert spool.verified(spool.read("outgoing", name)).headers.get("Client") == "app"
    spool.write_new("incoming", door_file, name="not-a-door")  # only outgoing/ is the doors' way in
    assert spool.verified(spool.read("incoming", "not-a-door")).headers.get("Client") is None
    plain = Spool(tmp_path / "spool")  # `gsmgw send` and other programs have no key
    assert spool.verified(spool.read("outgoing", plain.submit(door_file))).headers.get("Client") is None
