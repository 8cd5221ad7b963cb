"""A throwaway PostgreSQL server for tests: `initdb` and `pg_ctl` in a temporary directory, run as
an unprivileged user (PostgreSQL refuses to run as root; under root the server runs as the
`postgres` account Debian's package creates, else as `nobody`). Loopback TCP on a free port, trust
authentication, no fsync (the tests stop it only cleanly, which writes everything out).

    server = PgServer.start()          # a few hundred ms
    dsn = server.new_database()        # an empty schema of its own for each test
    server.stop(); server.start_again()   # the fault tests
    server.destroy()
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from helpers import free_port

SUPERUSER = "gsmgw"


def find_binaries() -> Path | None:
    """The directory holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/N/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda path: int(path.split("/")[4]) if path.split("/")[4].isdigit() else 0)
    return Path(candidates[-1]).parent if candidates else None


def _account() -> tuple[int, int] | None:
    """(uid, gid) to run the server as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    raise RuntimeError("running as root, and neither a postgres nor a nobody account exists to run PostgreSQL as")


class PgServer:
    def __init__(self, binaries: Path, directory: Path, port: int, account: tuple[int, int] | None):
        self.binaries = binaries
        self.directory = directory
        self.data = directory / "data"
        self.log = directory / "server.log"
        self.port = port
        self.account = account

    @classmethod
    def start(cls, *, settings: dict[str, str] | None = None) -> "PgServer":
        binaries = find_binaries()
        if binaries is None:
            raise FileNotFoundError("PostgreSQL's initdb/pg_ctl are not installed (apt-get install postgresql)")
        account = _account()
        directory = Path(tempfile.mkdtemp(prefix="gsmgw-pg-"))
        if account is not None:
            os.chown(directory, *account)
        server = cls(binaries, directory, free_port(), account)
        server._run("initdb", "-D", str(server.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                    "--no-instructions", "--no-sync")
        lines = [
            "listen_addresses = '127.0.0.1'",
            f"port = {server.port}",
            f"unix_socket_directories = '{directory}'",
            "max_connections = 100",
            "shared_buffers = 16MB",
            "log_min_messages = warning",
            # The tests stop the server only cleanly (pg_ctl -m fast writes everything out) and
            # never crash it, so flushing every commit to disk would only slow them down.
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
        ]
        lines += [f"{key} = {value}" for key, value in (settings or {}).items()]
        with open(server.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n".join(lines) + "\n")
        server.start_again()
        return server

    def _run(self, program: str, *args: str, timeout: float = 60) -> None:
        kwargs = {}
        if self.account is not None:
            kwargs = {"user": self.account[0], "group": self.account[1], "extra_groups": []}
        result = subprocess.run([str(self.binaries / program), *args], cwd=self.directory, capture_output=True,
                                text=True, timeout=timeout, **kwargs)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{program} {' '.join(args)} failed ({result.returncode}): "
                               f"{result.stdout}{result.stderr}\n{log}")

    def start_again(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def dsn(self, database: str = "postgres", **params: str) -> str:
        query = "&".join(f"{key}={value}" for key, value in params.items())
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}" + (f"?{query}" if query else "")

    def new_database(self) -> str:
        """A DSN to an empty place of its own: a schema in the server's database, first on the
        search path (a schema costs a millisecond, a CREATE DATABASE half a second)."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=5) as connection:
                    connection.execute(f'CREATE SCHEMA "{name}"')
                return self.dsn("postgres", options=f"-csearch_path%3D{name}")
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def destroy(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
