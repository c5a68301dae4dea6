"""The state conformance suite against the four built-in stores (real Redis and PostgreSQL)."""
from __future__ import annotations

import tempfile

from pydapr.testing.conformance.state import StateConformance

PG = "host=127.0.0.1 user=postgres dbname=test"


class TestInMemory(StateConformance):
    component_type = "state.in-memory"


class TestSQLite(StateConformance):
    component_type = "state.sqlite"
    metadata = {"connectionString": f"{tempfile.mkdtemp(prefix='pydapr-conf-')}/state.db"}


class TestRedis(StateConformance):
    component_type = "state.redis"
    metadata = {"redisHost": "127.0.0.1:6379"}
    servers = ("redis",)


class TestPostgreSQL(StateConformance):
    component_type = "state.postgresql"
    metadata = {"connectionString": PG, "tableName": "pydapr_conformance_state"}
    servers = ("postgres",)
