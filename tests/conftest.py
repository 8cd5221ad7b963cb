"""The fixtures several test files share; pytest finds them here by name (no import needed).

- `postgres`: a throwaway PostgreSQL server for the session (tests/pgserver.py);
- `sim_network`: a factory of running simulated networks (gsmgw.sim), stopped after the test;
- `smpp_gateway`: the SMPP server on loopback in a thread of its own (tests/smppharness.py).
"""

from __future__ import annotations

from typing import Iterator

import pytest

from gsmgw.sim import SimNetwork
from pgserver import PgServer
from smppharness import ServerThread


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL server for the test session (tests/pgserver.py); each test takes a
    database of its own with `postgres.new_database()`. CI installs PostgreSQL (.ci/run)."""
    try:
        server = PgServer.start()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    yield server
    server.destroy()


@pytest.fixture
def sim_network(tmp_path) -> Iterator:
    """Factory: sim_network(modems=2, **SimNetwork options) -> a running SimNetwork in tmp_path."""
    started: list[SimNetwork] = []

    def start(modems: int = 2, **options) -> SimNetwork:
        network = SimNetwork(tmp_path / f"sim{len(started)}", modems=modems, **options)
        network.start()
        started.append(network)
        return network

    yield start
    for network in started:
        network.stop()


@pytest.fixture
def smpp_gateway(tmp_path) -> Iterator[ServerThread]:
    """The SMPP server with the test clients of smppharness.CLIENTS, on a free loopback port."""
    with ServerThread(tmp_path) as server:
        yield server
