"""pgx connection strings (URL or key=value) become asyncpg arguments without echoing secrets."""
from __future__ import annotations

import pytest

from pydapr.components._common.postgres_settings import connect_kwargs
from pydapr.errors import ConfigError


def test_url_passes_through():
    assert connect_kwargs("postgres://u:p@h:5433/db") == {"dsn": "postgres://u:p@h:5433/db"}


def test_key_value_pairs():
    got = connect_kwargs("host=db.local port=5433 user=me password='s3 cr\\'et' dbname=test "
                         "sslmode=disable pool_max_conns=10 connect_timeout=7")
    assert got == {"host": "db.local", "port": 5433, "user": "me", "password": "s3 cr'et",
                   "database": "test", "timeout": 7}


def test_unknown_key_is_named_but_value_is_not_echoed():
    with pytest.raises(ConfigError) as info:
        connect_kwargs("host=h secretish=hunter2")
    assert "secretish" in str(info.value) and "hunter2" not in str(info.value)


def test_empty_is_refused():
    with pytest.raises(ConfigError):
        connect_kwargs("  ")
