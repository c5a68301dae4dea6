"""Dapr's cron schedule syntax and Go's time format for the cron binding."""
from __future__ import annotations

from datetime import datetime

import pytest

from pydapr.components.bindings.cron import go_time, parse_schedule
from pydapr.errors import ConfigError

BASE = datetime(2024, 3, 5, 10, 20, 30).timestamp()  # a Tuesday, local time


def _next(spec: str, after: float = BASE) -> datetime:
    return datetime.fromtimestamp(parse_schedule(spec).next_after(after))


@pytest.mark.parametrize("spec, expected", [
    ("*/15 * * * * *", datetime(2024, 3, 5, 10, 20, 45)),   # 6 fields: seconds first
    ("0 30 * * * ?", datetime(2024, 3, 5, 10, 30, 0)),      # Go's "?" wildcard
    ("*/5 * * * *", datetime(2024, 3, 5, 10, 25, 0)),        # 5 fields: minute precision
    ("@hourly", datetime(2024, 3, 5, 11, 0, 0)),
    ("@daily", datetime(2024, 3, 6, 0, 0, 0)),
    ("@midnight", datetime(2024, 3, 6, 0, 0, 0)),
    ("@weekly", datetime(2024, 3, 10, 0, 0, 0)),             # Sunday
    ("@monthly", datetime(2024, 4, 1, 0, 0, 0)),
    ("@yearly", datetime(2025, 1, 1, 0, 0, 0)),
    ("0 0 9 * * MON-FRI", datetime(2024, 3, 6, 9, 0, 0)),
])
def test_next_fire_time(spec, expected):
    assert _next(spec) == expected


def test_every_uses_go_durations():
    assert parse_schedule("@every 1s").next_after(100.0) == 101.0
    assert parse_schedule("@every 1m30s").next_after(0.0) == 90.0
    assert parse_schedule("@every 250ms").next_after(1.0) == 1.25


@pytest.mark.parametrize("spec, message", [
    ("@every", "invalid duration"),
    ("@every 0s", "at least 1ms"),
    ("@every soon", "invalid duration"),
    ("@fortnightly", "unknown descriptor"),
    ("* * *", "expected 5 fields"),
    ("0 0 0 * * * 2024", "expected 5 fields"),
    ("61 * * * * *", "not a valid cron"),
])
def test_bad_schedules_say_why(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_schedule(spec)


def test_go_time_string():
    assert go_time(1700000000.0) == "2023-11-14 22:13:20 +0000 UTC"
    assert go_time(1700000000.25) == "2023-11-14 22:13:20.25 +0000 UTC"
