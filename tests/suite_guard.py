"""A pytest plugin that fails the run when pytest's own exit status would hide a lost test.

pytest-xdist reports an INTERNALERROR on a worker (e.g. a failure report it cannot ship because
the failing value holds a lone surrogate: "strings must be utf-8 encodable") but lets the other
worker finish, and the run can then exit 0 with "3 passed" for 4 collected tests. This plugin
counts the tests that finished against the tests collected (after deselection) and turns such a
run into a failure, with a message that says what happened. On the workers it escapes lone
surrogates in failure reports, so that such a failure reaches the terminal as the test's own.

`./dev test` (and so `.ci/run`) loads it with `-p tests.suite_guard`.
"""

from __future__ import annotations

import pytest


class SuiteGuard:
    def __init__(self, config: pytest.Config):
        self.config = config
        self.collected: int | None = None
        self.finished: set[str] = set()
        self.internal_errors = 0
        self.verdict: str | None = None

    # Collection: without xdist the session's items, with xdist what each worker collected
    # (every worker collects the whole run; xdist itself refuses workers that disagree).
    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if not self._distributed():
            self.collected = len(session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        self.collected = max(self.collected or 0, len(ids))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Every test that ran, passed, failed or skipped, ends with its teardown report.
        if report.when == "teardown":
            self.finished.add(report.nodeid)

    def pytest_internalerror(self, excrepr, excinfo) -> None:
        self.internal_errors += 1

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.config.option.collectonly:
            return
        problems = []
        if self.internal_errors:
            problems.append(f"pytest reported {self.internal_errors} INTERNALERROR(s)")
        if self.collected is not None and len(self.finished) < self.collected and exitstatus == pytest.ExitCode.OK:
            # A run stopped on purpose (-x, --maxfail, Ctrl-C) already has a failing status.
            problems.append(f"only {len(self.finished)} of {self.collected} collected tests finished")
        if not problems:
            return
        self.verdict = (
            "; ".join(problems)
            + ": a test's result was lost, so this run FAILS. Read the INTERNALERROR above, or run the "
            "file alone without workers (-p no:xdist) to see the test's own failure."
        )
        if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # Last, after pytest's "N passed" line, so that line cannot be read as the outcome.
        if self.verdict:
            reporter = config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_sep("!", "suite guard", red=True, bold=True)
                reporter.write_line(f"suite guard: {self.verdict}", red=True, bold=True)
            else:
                import sys

                print(f"suite guard: {self.verdict}", file=sys.stderr)

    def _distributed(self) -> bool:
        return self.config.pluginmanager.has_plugin("dsession")


class ShippableReports:
    """On an xdist worker: a report must be UTF-8 to travel to the controller."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        if report.longrepr is not None and not _encodable(str(report.longrepr)):
            report.longrepr = _escaped(str(report.longrepr))
        report.sections = [(_escaped(title), _escaped(content)) for title, content in report.sections]
        return report


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _escaped(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        # A worker runs part of the tests; the controller judges the whole run.
        config.pluginmanager.register(ShippableReports(), "gsmgw-shippable-reports")
        return
    config.pluginmanager.register(SuiteGuard(config), "gsmgw-suite-guard")
