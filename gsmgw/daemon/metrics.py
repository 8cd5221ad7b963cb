"""Prometheus metrics of the daemon, in a registry of its own (the HTTP server serves it on
/metrics with `prometheus_client.generate_latest(metrics.registry)`).

Names as docs/api.md lists them, plus a few that the status file also shows. Modem gauges are set by
the workers when their state changes and after each health poll; counters by the dispatcher as
messages finish; queue depths from the status writer's periodic scan.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

MODEM_STATES = ("starting", "ready", "busy", "resting", "absent", "locked", "failed")


class _MemberLabel:
    """Every sample of `inner` with `member="<name>"` added: in a cluster, one Prometheus scrapes
    several hosts whose modems and queues must not be summed by accident."""

    def __init__(self, inner: CollectorRegistry, member: str):
        self.inner = inner
        self.member = member

    def collect(self):
        for family in self.inner.collect():
            labelled = Metric(family.name, family.documentation, family.type, family.unit)
            for sample in family.samples:
                labelled.add_sample(sample.name, {**sample.labels, "member": self.member}, sample.value,
                                    sample.timestamp, sample.exemplar)
            yield labelled


class Metrics:
    def __init__(self, member: str | None = None) -> None:
        """`member`: a cluster member's name, added as a label to every series (CLUSTER.md)."""
        r = CollectorRegistry(auto_describe=True)
        if member is None:
            self.registry = r
        else:
            self.registry = CollectorRegistry(auto_describe=False)
            self.registry.register(_MemberLabel(r, member))
        self.modem_up = Gauge("gsmgw_modem_up", "1 when the modem is ready or busy", ["modem"], registry=r)
        self.modem_signal = Gauge(
            "gsmgw_modem_signal_dbm", "Received signal strength (dBm; NaN when unknown)", ["modem"], registry=r
        )
        self.modem_registered = Gauge(
            "gsmgw_modem_registered", "1 when registered to a network (home or roaming)", ["modem"], registry=r
        )
        self.modem_state = Gauge(
            "gsmgw_modem_state", "1 for the modem's current state", ["modem", "state"], registry=r
        )
        self.sent = Counter("gsmgw_messages_sent", "Messages sent (all parts accepted)", ["modem"], registry=r)
        self.parts_sent = Counter("gsmgw_parts_sent", "Parts accepted with +CMGS", ["modem"], registry=r)
        self.received = Counter("gsmgw_messages_received", "Messages written to incoming/", ["modem"], registry=r)
        self.failed = Counter("gsmgw_messages_failed", "Messages moved to failed/", registry=r)
        self.send_errors = Counter(
            "gsmgw_send_errors", "Submit attempts that ended in an error", ["modem", "kind"], registry=r
        )
        self.reports = Counter("gsmgw_reports", "Delivery reports matched", ["status"], registry=r)
        self.report_latency = Histogram(
            "gsmgw_report_latency_seconds",
            "Time from the submit of a part to its delivery report",
            buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
            registry=r,
        )
        self.calls = Counter("gsmgw_calls", "Incoming calls recorded in calls/", ["modem"], registry=r)
        self.balance = Gauge(
            "gsmgw_modem_balance", "The amount in the last answer to the modem's balance: code", ["modem"], registry=r
        )
        self.balance_checked = Gauge(
            "gsmgw_modem_balance_checked_timestamp_seconds", "When the balance was last asked", ["modem"], registry=r
        )
        self.queue_depth = Gauge("gsmgw_queue_depth", "Files in a spool directory", ["dir"], registry=r)
        self.queue_retrying = Gauge(
            "gsmgw_queue_retrying", "Queued messages waiting for a retry after an error", registry=r
        )
        self.smpp_parked = Gauge(
            "gsmgw_smpp_parked_deliveries",
            "SMPP deliveries set aside for good (address not encodable, refused or unanswered too often)",
            registry=r,
        )

    def add_modem(self, name: str) -> None:
        """Make a modem's series exist (at 0) from the start, so dashboards see it while down."""
        self.modem_up.labels(name).set(0)
        self.modem_signal.labels(name).set(float("nan"))
        self.modem_registered.labels(name).set(0)
        self.sent.labels(name)
        self.parts_sent.labels(name)
        self.received.labels(name)
        self.calls.labels(name)
        self.set_state(name, "starting")

    def set_state(self, name: str, state: str) -> None:
        for known in MODEM_STATES:
            self.modem_state.labels(name, known).set(1 if known == state else 0)
        self.modem_up.labels(name).set(1 if state in ("ready", "busy") else 0)

    def set_radio(self, name: str, signal_dbm: float | None, registered: bool | None) -> None:
        self.modem_signal.labels(name).set(float("nan") if signal_dbm is None else signal_dbm)
        self.modem_registered.labels(name).set(1 if registered else 0)

    def set_balance(self, name: str, amount: float | None, checked: float) -> None:
        self.balance.labels(name).set(float("nan") if amount is None else amount)
        self.balance_checked.labels(name).set(checked)

    def set_queue(self, depths: dict[str, int], retrying: int) -> None:
        for directory, depth in depths.items():
            self.queue_depth.labels(directory).set(depth)
        self.queue_retrying.set(retrying)
