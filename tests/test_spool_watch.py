"""The outgoing/ watcher: a file is reported once it is whole, with inotify and when polling."""

from __future__ import annotations

import asyncio
import os

import pytest

from gsmgw.spool.watch import IN_Q_OVERFLOW, OutgoingWatcher, _EVENT_HEADER

WAIT = 5.0  # generous upper bound for an event that should come at once
QUIET = 0.3  # how long "nothing is reported" is watched for


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 30))


async def next_batch(watcher, timeout=WAIT):
    return await asyncio.wait_for(watcher.__anext__(), timeout)


async def nothing_reported(watcher):
    try:
        batch = await asyncio.wait_for(watcher.__anext__(), QUIET)
    except asyncio.TimeoutError:
        return True
    raise AssertionError(f"reported too early: {batch}")


def test_inotify_reports_a_naive_write_only_after_close(tmp_path):
    async def scenario():
        async with OutgoingWatcher(tmp_path) as watcher:
            assert watcher.mode == "inotify"
            handle = open(tmp_path / "msg", "wb")
            handle.write(b"To: +4915112345678\n")
            handle.flush()
            await nothing_reported(watcher)
            handle.write(b"\nhello\n")
            handle.close()
            assert await next_batch(watcher) == ["msg"]
            await nothing_reported(watcher)

    run(scenario())


def test_inotify_rename_in_is_reported_and_hints_collapse(tmp_path):
    async def scenario():
        async with OutgoingWatcher(tmp_path) as watcher:
            (tmp_path / ".msg.tmp").write_bytes(b"x")  # ignored: hidden temporary name
            os.rename(tmp_path / ".msg.tmp", tmp_path / "b")
            for _ in range(3):
                (tmp_path / "a").write_bytes(b"x")
            await asyncio.sleep(0)  # let the loop read the inotify fd once
            assert await next_batch(watcher) == ["a", "b"]
            await nothing_reported(watcher)

    run(scenario())


def test_inotify_reports_a_symlink_at_once(tmp_path):
    async def scenario():
        async with OutgoingWatcher(tmp_path) as watcher:
            os.symlink("/etc/passwd", tmp_path / "evil")
            assert await next_batch(watcher) == ["evil"]

    run(scenario())


def test_files_present_at_start_and_rescan(tmp_path):
    old = tmp_path / "old"
    old.write_bytes(b"x")
    os.utime(old, (1, 1))

    async def scenario():
        async with OutgoingWatcher(tmp_path) as watcher:
            assert await next_batch(watcher) == ["old"]
            await nothing_reported(watcher)
            watcher.rescan()
            assert await next_batch(watcher) == ["old"]

    run(scenario())


def test_queue_overflow_means_a_full_rescan(tmp_path):
    old = tmp_path / "missed"
    old.write_bytes(b"x")
    os.utime(old, (1, 1))

    async def scenario():
        async with OutgoingWatcher(tmp_path) as watcher:
            assert await next_batch(watcher) == ["missed"]
            # What the kernel sends when its queue overflowed (wd -1, no name).
            watcher._handle_events(_EVENT_HEADER.pack(-1, IN_Q_OVERFLOW, 0, 0))
            assert await next_batch(watcher) == ["missed"]

    run(scenario())


def test_lock_removal_reports_the_file_again(tmp_path):
    async def scenario():
        async with OutgoingWatcher(tmp_path) as watcher:
            (tmp_path / "m.LOCK").write_bytes(b"")
            (tmp_path / "m").write_bytes(b"x")
            assert await next_batch(watcher) == ["m"]  # the store refuses it while locked
            os.unlink(tmp_path / "m.LOCK")
            assert await next_batch(watcher) == ["m"]

    run(scenario())


def test_polling_waits_for_a_stable_size(tmp_path):
    async def scenario():
        # The timer never fires here: each rescan() is one scan, so the test decides when they happen.
        async with OutgoingWatcher(tmp_path, use_inotify=False, poll_interval=600, settle=600) as watcher:
            assert watcher.mode == "polling"
            path = tmp_path / "growing"
            with open(path, "wb") as handle:
                for _ in range(3):
                    handle.write(b"x" * 10)
                    handle.flush()
                    watcher.rescan()
                    await nothing_reported(watcher)  # changed since the last scan: still being written
            watcher.rescan()
            assert await next_batch(watcher) == ["growing"]  # the same in two scans
            path.unlink()  # claimed; rescan() reports everything present again
            (tmp_path / "second").write_bytes(b"y")
            watcher.rescan()
            await nothing_reported(watcher)
            watcher.rescan()
            assert await next_batch(watcher) == ["second"]

    run(scenario())


def test_polling_reports_each_file_once(tmp_path):
    old = tmp_path / "old"
    old.write_bytes(b"x")
    os.utime(old, (1, 1))

    async def scenario():
        async with OutgoingWatcher(tmp_path, use_inotify=False, poll_interval=0.05) as watcher:
            assert await next_batch(watcher) == ["old"]
            await nothing_reported(watcher)  # several polls happen meanwhile
            (tmp_path / "new").write_bytes(b"y")
            assert await next_batch(watcher) == ["new"]

    run(scenario())


def test_directory_removed_falls_back_to_polling(tmp_path):
    directory = tmp_path / "outgoing"
    directory.mkdir()

    async def scenario():
        async with OutgoingWatcher(directory, poll_interval=0.05, settle=0) as watcher:
            directory.rename(tmp_path / "elsewhere")
            for _ in range(100):
                if watcher.mode == "polling":
                    break
                await asyncio.sleep(0.02)
            assert watcher.mode == "polling"
            directory.mkdir()
            (directory / "after").write_bytes(b"x")
            assert await next_batch(watcher) == ["after"]

    run(scenario())


@pytest.mark.parametrize("use_inotify", [True, False])
def test_close_ends_the_iteration(tmp_path, use_inotify):
    async def scenario():
        watcher = OutgoingWatcher(tmp_path, use_inotify=use_inotify, poll_interval=0.05)
        await watcher.start()
        consumer = asyncio.create_task(watcher.__anext__())
        await asyncio.sleep(0)
        await watcher.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(consumer, WAIT)

    run(scenario())


def test_inotify_reports_a_hard_link_at_once(tmp_path):
    outgoing = tmp_path / "outgoing"
    outgoing.mkdir()
    (tmp_path / "prepared").write_bytes(b"To: +4915112345678\n\nhi")

    async def scenario():
        async with OutgoingWatcher(outgoing, settle=600) as watcher:
            os.link(tmp_path / "prepared", outgoing / "linked")  # no close-write ever comes for it
            assert await next_batch(watcher) == ["linked"]

    run(scenario())


def test_inotify_comes_back_with_the_directory(tmp_path):
    directory = tmp_path / "outgoing"
    directory.mkdir()

    async def scenario():
        async with OutgoingWatcher(directory, poll_interval=0.05, settle=600) as watcher:
            directory.rename(tmp_path / "elsewhere")
            for _ in range(250):
                if watcher.mode == "polling":
                    break
                await asyncio.sleep(0.02)
            directory.mkdir()
            for _ in range(250):
                if watcher.mode == "inotify" and watcher._fd >= 0 and not watcher._retry_inotify:
                    break
                await asyncio.sleep(0.02)
            assert watcher.mode == "inotify"
            handle = open(directory / "naive", "wb")
            handle.write(b"To: +4915112345678\n")
            await nothing_reported(watcher)  # still open: inotify waits for the close
            handle.close()
            assert await next_batch(watcher) == ["naive"]

    run(scenario())


def test_inotify_touch_then_append_is_reported_with_its_content(tmp_path):
    async def scenario():
        async with OutgoingWatcher(tmp_path, settle=1.0) as watcher:
            (tmp_path / "msg").touch()  # closed empty: not yet a message
            await nothing_reported(watcher)
            with open(tmp_path / "msg", "ab") as handle:
                handle.write(b"To: +4915112345678\n\nhello\n")
            assert await next_batch(watcher) == ["msg"]
            await nothing_reported(watcher)

    run(scenario())


def test_an_empty_file_that_stays_empty_is_reported_after_settle(tmp_path):
    async def scenario():
        async with OutgoingWatcher(tmp_path, settle=0.5) as watcher:
            (tmp_path / "4913").touch()  # vim's probe: gone before anyone reads it
            (tmp_path / "4913").unlink()
            (tmp_path / "empty").touch()
            await nothing_reported(watcher)
            assert await next_batch(watcher) == ["empty"]  # the store fails it as empty

    run(scenario())


def test_polling_waits_for_an_empty_file_to_get_content(tmp_path):
    async def scenario():
        async with OutgoingWatcher(tmp_path, use_inotify=False, poll_interval=600, settle=600) as watcher:
            (tmp_path / "msg").touch()
            watcher.rescan()
            await nothing_reported(watcher)
            watcher.rescan()
            await nothing_reported(watcher)  # the same twice, but empty and young: not yet
            (tmp_path / "msg").write_bytes(b"To: +4915112345678\n\nhello\n")
            watcher.rescan()
            await nothing_reported(watcher)
            watcher.rescan()
            assert await next_batch(watcher) == ["msg"]

    run(scenario())
