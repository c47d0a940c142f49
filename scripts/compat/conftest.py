"""Adds the tail of hookd's log to the report of a failed SDK compatibility test."""

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        server = getattr(item.module, "RUNNING_SERVER", None)
        if server is not None:
            report.sections.append(("hookd log (tail)", server.log()))
