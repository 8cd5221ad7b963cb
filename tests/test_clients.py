"""gsmgw.clients: secrets from files, constant-time auth, allow/deny rules, sliding-window limits."""

import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsmgw.clients import (
    WINDOW_BUCKETS,
    Client,
    ClientConfigError,
    ClientRegistry,
    SlidingWindowLimiter,
    UnknownGroup,
    client_from_config,
    read_secret_file,
    secret_file_readable_by_others,
)

GROUPS = {"oncall": ["+4915112345678", "+4917612345678"], "boss": ["+4930123456"]}


def make_registry(*clients):
    return ClientRegistry(clients, GROUPS)


def test_token_is_read_from_its_file_without_the_newline(tmp_path):
    token_file = tmp_path / "zabbix.token"
    token_file.write_text("s3cret-token\n")
    client = client_from_config({"name": "zabbix", "token_file": str(token_file), "allow": ["+49*"]})
    assert client.token == "s3cret-token"
    assert "s3cret" not in repr(client)


def test_missing_token_file_says_what_to_do(tmp_path):
    with pytest.raises(ClientConfigError, match=r"clients\[z\]\.token_file: cannot read .*chmod 600"):
        client_from_config({"name": "z", "token_file": str(tmp_path / "absent")})


def test_empty_token_file_is_refused(tmp_path):
    (tmp_path / "t").write_text("\n")
    with pytest.raises(ClientConfigError, match="is empty"):
        read_secret_file(str(tmp_path / "t"), "x")


def test_world_readable_secret_is_noticed(tmp_path):
    path = tmp_path / "t"
    path.write_text("abc")
    os.chmod(path, 0o600)
    assert not secret_file_readable_by_others(str(path))
    os.chmod(path, 0o644)
    assert secret_file_readable_by_others(str(path))


def test_config_dataclass_entries_work_too():
    class Entry:
        name = "app"
        token = "tok"
        token_file = None
        smpp = None
        allow = ("+49*",)
        deny = ()
        limits = None

    client = client_from_config(Entry())
    assert client.token == "tok" and client.allow == ("+49*",)


def test_bad_limit_values_are_refused():
    with pytest.raises(ClientConfigError, match="per_minute"):
        client_from_config({"name": "a", "token": "t", "limits": {"per_minute": 0}})
    with pytest.raises(ClientConfigError, match="unknown key"):
        client_from_config({"name": "a", "token": "t", "limits": {"per_fortnight": 3}})


def test_callback_rules_and_webhook_secret_are_read(tmp_path):
    secret_file = tmp_path / "app.webhook"
    secret_file.write_text("wh-secret\n")
    client = client_from_config({"name": "app", "token": "t", "callback_hosts": ["App.Example.", "*.hooks.example"],
                                 "callback_private_addresses": True, "webhook_secret_file": str(secret_file)})
    assert client.callback_hosts == ("app.example", "*.hooks.example")
    assert client.callback_private_addresses is True and client.webhook_secret == "wh-secret"
    assert "wh-secret" not in repr(client)
    bare = client_from_config({"name": "app", "token": "t"})
    assert (bare.callback_hosts, bare.callback_private_addresses, bare.webhook_secret) == ((), False, None)
    with pytest.raises(ClientConfigError, match=r"clients\[app\]\.callback_hosts: 'https://x' is not a host name"):
        client_from_config({"name": "app", "token": "t", "callback_hosts": ["https://x"]})


def test_bearer_token_finds_its_client_and_nothing_else():
    alice = Client("alice", token="token-a", allow=("*",))
    bob = Client("bob", token="token-b", allow=("*",))
    smpp_only = Client("smpp", token=None)
    registry = make_registry(alice, bob, smpp_only)
    assert registry.authenticate_token("token-a") is alice
    assert registry.authenticate_token("token-b") is bob
    assert registry.authenticate_token("token-") is None
    assert registry.authenticate_token("") is None
    assert registry.authenticate_token(None) is None


def test_kannel_style_name_and_password():
    alice = Client("alice", token="token-a", allow=("*",))
    registry = make_registry(alice)
    assert registry.authenticate_password("alice", "token-a") is alice
    assert registry.authenticate_password("alice", "token-b") is None
    assert registry.authenticate_password("mallory", "token-a") is None
    assert registry.authenticate_password("alice", "") is None


def test_smpp_credentials():
    client = client_from_config({"name": "zabbix", "smpp": {"system_id": "zbx", "password": "pw"}})
    registry = make_registry(client)
    assert registry.authenticate_smpp("zbx", "pw") is client
    assert registry.authenticate_smpp("zbx", "wrong") is None
    assert registry.authenticate_smpp("zabbix", "pw") is None


def test_duplicate_client_names_are_refused():
    with pytest.raises(ClientConfigError, match="appear twice"):
        make_registry(Client("a", token="1"), Client("a", token="2"))


@pytest.mark.parametrize(
    "number, allowed",
    [
        ("+4915112345678", True),
        ("+4990012345", False),       # premium rate, denied first
        ("+49137123", False),
        ("+4930123456", True),
        ("+33612345678", False),      # outside allow
        ("+4917612345678", True),
    ],
)
def test_deny_first_then_allow(number, allowed):
    client = Client("zabbix", token="t", allow=("+49*",), deny=("+49900*", "+49137*"))
    assert make_registry(client).check_destination(client, number).allowed is allowed


def test_group_rule_allows_exactly_its_members():
    client = Client("oncall-only", token="t", allow=("group:oncall",))
    registry = make_registry(client)
    assert registry.check_destination(client, "+4915112345678").allowed
    assert not registry.check_destination(client, "+4930123456").allowed


def test_rule_without_plus_matches_the_number_without_plus():
    client = Client("c", token="t", allow=("49*",), deny=("4990?5*",))
    registry = make_registry(client)
    assert registry.check_destination(client, "+4915112345678").allowed
    assert not registry.check_destination(client, "+49901555").allowed
    assert not registry.check_destination(client, "+33612345678").allowed


def test_no_allow_rules_means_nobody_and_says_so():
    client = Client("c", token="t")
    verdict = make_registry(client).check_destination(client, "+4915112345678")
    assert not verdict.allowed and "allow" in verdict.reason


def test_glob_characters_of_regex_are_literal():
    client = Client("c", token="t", allow=("+49.5*",))
    registry = make_registry(client)
    assert not registry.check_destination(client, "+4915112345678").allowed


def test_expand_groups_and_unknown_groups():
    registry = make_registry()
    assert registry.expand("group:oncall") == ("+4915112345678", "+4917612345678")
    assert registry.expand("+491234") == ("+491234",)
    with pytest.raises(UnknownGroup, match="unknown group 'nope'; known groups: boss, oncall"):
        registry.expand("group:nope")


def test_rule_naming_an_unknown_group_is_a_config_error():
    with pytest.raises(ClientConfigError, match="unknown group"):
        make_registry(Client("c", token="t", allow=("group:ghosts",)))


def test_group_members_are_read_with_default_country():
    registry = ClientRegistry([], {"g": ["0151 12345678"]}, default_country="49")
    assert registry.expand("group:g") == ("+4915112345678",)


# A part counts for its window and at most one bucket longer (1/WINDOW_BUCKETS of the window).
MINUTE_BUCKET = 60 / WINDOW_BUCKETS


def test_sliding_window_counts_the_last_minute():
    client = Client("c", token="t", limits={"per_minute": 3})
    limiter = SlidingWindowLimiter()
    assert limiter.acquire(client, 2, now=100.0) == 0.0
    assert limiter.acquire(client, 1, now=110.0) == 0.0
    # Full: one more has to wait until the first two leave the window at 160 (+ a bucket).
    assert 40.0 <= limiter.acquire(client, 1, now=120.0) <= 40.0 + MINUTE_BUCKET
    # The refused request took nothing.
    assert limiter.acquire(client, 1, now=160.0 + MINUTE_BUCKET) == 0.0
    assert 9.0 - MINUTE_BUCKET <= limiter.acquire(client, 2, now=161.0) <= 9.0 + MINUTE_BUCKET
    assert limiter.acquire(client, 2, now=170.0 + MINUTE_BUCKET) == 0.0


def test_request_larger_than_the_limit_can_never_fit():
    client = Client("c", token="t", limits={"per_minute": 3})
    assert SlidingWindowLimiter().acquire(client, 4, now=0.0) == math.inf


def test_several_windows_and_release():
    client = Client("c", token="t", limits={"per_second": 2, "per_hour": 3})
    limiter = SlidingWindowLimiter()
    assert limiter.acquire(client, 2, now=0.0) == 0.0
    assert 0.5 <= limiter.acquire(client, 1, now=0.5) <= 0.5 + 1 / WINDOW_BUCKETS  # per_second full
    assert limiter.acquire(client, 1, now=1.5) == 0.0
    # per_hour full until the first two age out
    assert 3597.0 <= limiter.acquire(client, 1, now=3.0) <= 3597.0 + 3600 / WINDOW_BUCKETS
    limiter.release(client, 1, now=1.5)
    assert limiter.acquire(client, 1, now=3.0) == 0.0


@settings(max_examples=200, deadline=None)
@given(events=st.lists(st.tuples(st.floats(0, 5), st.integers(1, 4)), max_size=60), limit=st.integers(1, 12))
def test_the_buckets_never_allow_more_than_an_exact_window_would(events, limit):
    """Against an exact sliding window (every part with its time): whatever the buckets accept
    fits in the last minute, and they wait at most one bucket longer than exactness needs."""
    client = Client("c", token="t", limits={"per_minute": limit})
    limiter = SlidingWindowLimiter()
    accepted: list[tuple[float, int]] = []
    now = 0.0
    for step, parts in events:
        now += step * 10
        in_window = sum(n for t, n in accepted if t > now - 60)
        wait = limiter.acquire(client, parts, now)
        if wait == 0.0:
            assert in_window + parts <= limit
            accepted.append((now, parts))
        elif parts <= limit:
            # The exact window has room once enough of its oldest parts are out.
            exact, freed = 0.0, 0
            for t, n in accepted if in_window + parts > limit else ():
                if t > now - 60:
                    freed += n
                    if in_window + parts - freed <= limit:
                        exact = t + 60 - now
                        break
            assert exact <= wait <= exact + MINUTE_BUCKET + 1e-9


def test_a_check_costs_the_same_whatever_the_window_holds():
    """A day's window holding 100,000 parts keeps at most WINDOW_BUCKETS + 1 counts."""
    client = Client("c", token="t", limits={"per_day": 10**9})
    limiter = SlidingWindowLimiter()
    for n in range(100_000):
        assert limiter.acquire(client, 1, now=n * 0.5) == 0.0
    window = limiter._windows[("c", "per_day")]
    assert len(window.buckets) <= WINDOW_BUCKETS + 1 and window.total == 100_000


def test_limits_follow_the_client_after_a_reload_and_count_parts():
    old = ClientRegistry([Client("c", token="t", allow=("*",), limits={"per_minute": 10})])
    new = ClientRegistry([Client("c", token="t2", allow=("*",), limits={"per_minute": 4})])
    new.limiter = old.limiter  # what SIGHUP does
    assert old.acquire(old.by_name("c"), 3, now=0.0) == 0.0  # e.g. one 3-part message
    # A session still holding the old Client gets the new limit, and the old count.
    assert new.acquire(old.by_name("c"), 2, now=1.0) > 0
    assert new.acquire(old.by_name("c"), 1, now=1.0) == 0.0


def test_max_parts_is_the_clients_own_else_the_default():
    registry = ClientRegistry([Client("a", token="t"), Client("b", token="u", max_parts=10)], default_max_parts=4)
    assert registry.max_parts_for(registry.by_name("a")) == 4
    assert registry.max_parts_for(Client("b")) == 10
    with pytest.raises(ClientConfigError, match="max_parts"):
        client_from_config({"name": "x", "token": "t", "max_parts": 0})


def test_clients_without_limits_are_never_limited():
    client = Client("c", token="t")
    limiter = SlidingWindowLimiter()
    assert all(limiter.acquire(client, 1000, now=float(i)) == 0.0 for i in range(100))


def test_a_long_smpp_password_is_accepted_as_clients_cut_it_to_8_octets():
    # smpplib (and other SMPP 3.4 clients) send only the first 8 characters of a longer password.
    client = client_from_config({"name": "zabbix", "smpp": {"system_id": "zbx", "password": "tok-abcdefghijkl"}})
    registry = make_registry(client)
    assert registry.authenticate_smpp("zbx", "tok-abcdefghijkl") is client
    assert registry.authenticate_smpp("zbx", "tok-abcd") is client
    assert registry.authenticate_smpp("zbx", "tok-abc") is None
    assert registry.authenticate_smpp("zbx", "tok-abcX") is None
    assert registry.authenticate_smpp("zbx", "tok-abcdXXXX") is None


def test_a_login_costs_the_same_comparisons_whether_or_not_the_name_exists(monkeypatch):
    """No timed assertion: the work is the same, counted in constant-time comparisons."""
    import gsmgw.clients as module

    registry = make_registry(
        client_from_config({"name": "a", "smpp": {"system_id": "a", "password": "pw-a"}}),
        client_from_config({"name": "b", "smpp": {"system_id": "b", "password": "pw-b-long-password"}}),
        Client("http-only", token="t"),
    )
    calls = []
    real = module.hmac.compare_digest
    monkeypatch.setattr(module.hmac, "compare_digest", lambda x, y: calls.append(1) or real(x, y))
    counts = {}
    for case, login in {"right": ("a", "pw-a"), "wrong password": ("a", "nope"), "unknown id": ("zz", "pw-a"),
                        "cut password": ("b", "pw-b-lon")}.items():
        calls.clear()
        registry.authenticate_smpp(*login)
        counts[case] = len(calls)
    assert len(set(counts.values())) == 1, counts
    smtp = make_registry(Client("m", smtp_user="nagios", smtp_password="pw-m"), Client("n", token="t"))
    counts = {}
    for case, login in {"right": ("nagios", "pw-m"), "wrong password": ("nagios", "x"), "unknown user": ("who", "pw-m")}.items():
        calls.clear()
        found = smtp.authenticate_smtp(*login)
        counts[case] = len(calls)
        assert (found is not None) is (case == "right")
    assert len(set(counts.values())) == 1, counts
