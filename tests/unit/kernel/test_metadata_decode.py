"""Typed component metadata: names, conversions, defaults, errors and redaction."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from pydapr.durations import parse_duration
from pydapr.errors import ConfigError
from pydapr.metadata import Duration, decode, meta, redact


@dataclass(frozen=True)
class Md:
    redis_host: str = meta(doc="host:port")
    redis_password: str = meta("", sensitive=True)
    max_retries: int = 3
    enable_tls: bool = False
    timeout: Duration = Duration(5)
    hosts: list[str] = meta(default_factory=list)
    key_prefix: str = meta("appid", name=("keyPrefix", "prefix"))


def test_camel_case_names_matched_case_insensitively():
    md = decode(Md, {"REDISHOST": "h:1", "maxRetries": "7", "enableTLS": "true",
                     "timeout": "1m30s", "hosts": "a, b,", "prefix": "none"})
    assert md == Md(redis_host="h:1", max_retries=7, enable_tls=True, timeout=90.0,
                    hosts=["a", "b"], key_prefix="none")


@pytest.mark.parametrize("items,needle", [
    ({}, "required field 'redisHost' is missing"),
    ({"redisHost": "h", "maxRetries": "many"}, "field 'maxRetries'"),
    ({"redisHost": "h", "enableTLS": "maybe"}, "field 'enableTLS': expected true or false"),
    ({"redisHost": "h", "timeout": "soon"}, "field 'timeout'"),
])
def test_bad_values_name_the_field(items, needle):
    with pytest.raises(ConfigError) as ei:
        decode(Md, items, "f.yaml#1: component s")
    assert needle in str(ei.value) and "f.yaml#1" in str(ei.value)


def test_redaction_hides_declared_and_obvious_secrets():
    out = redact(Md, {"redisHost": "h", "redisPassword": "p4ss", "accessKey": "k", "x": "y"})
    assert out == {"redisHost": "h", "redisPassword": "***", "accessKey": "***", "x": "y"}


@pytest.mark.parametrize("text,seconds", [
    ("300ms", 0.3), ("1h30m", 5400), ("1h0m0s0ms0\u03bcs", 3600), ("2\u00b5s", 2e-6), ("1.5s", 1.5),
    ("0", 0), ("-1s", -1), ("25h", 90000), (10, 10.0),
])
def test_go_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "5x", "1h junk"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_conversion_errors_never_quote_the_value():
    """A value may come from a secret store: an error names the field, never the value."""
    for items in ({"redisHost": "h", "maxRetries": "s3cr3t"}, {"redisHost": "h", "enableTLS": "s3cr3t"},
                  {"redisHost": "h", "timeout": "s3cr3t"}):
        with pytest.raises(ConfigError) as ei:
            decode(Md, items)
        assert "s3cr3t" not in str(ei.value)
