"""Shared pytest fixtures for gsmgw."""

import pytest

from pgserver import PgServer


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
