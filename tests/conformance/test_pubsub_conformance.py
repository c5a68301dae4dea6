"""The pub/sub conformance suite against every built-in broker, each on its real server."""
from __future__ import annotations

import pytest

from pydapr.testing.conformance.pubsub import PubSubConformance


class TestInMemory(PubSubConformance):
    component_type = "pubsub.in-memory"
    metadata = {"redeliverInterval": "20ms"}
    durable = False


class TestSQLite(PubSubConformance):
    component_type = "pubsub.sqlite"
    redelivery_timeout = 5.0

    @pytest.fixture(autouse=True)
    def _db(self, tmp_path):
        self.metadata = {"path": str(tmp_path / "pubsub.db"), "leaseDuration": "1s",
                         "redeliverInterval": "50ms", "pollInterval": "20ms"}


class TestRedisStreams(PubSubConformance):
    component_type = "pubsub.redis"
    server = "redis"
    metadata = {"redisHost": "127.0.0.1:6379", "processingTimeout": "500ms",
                "redeliverInterval": "200ms", "consumerID": "conformance"}


class TestRabbitMQ(PubSubConformance):
    component_type = "pubsub.rabbitmq"
    server = "rabbitmq"
    metadata = {"connectionString": "amqp://guest:guest@127.0.0.1:5672/", "consumerID": "conformance",
                "redeliverInterval": "50ms", "autoDelete": "false"}


class TestNATSJetStream(PubSubConformance):
    component_type = "pubsub.nats"
    server = "nats"
    metadata = {"natsURL": "nats://127.0.0.1:4222", "consumerID": "conformance", "ackWait": "1s",
                "redeliverInterval": "50ms"}


class TestMQTT(PubSubConformance):
    component_type = "pubsub.mqtt3"
    server = "mqtt"
    metadata = {"url": "tcp://127.0.0.1:1883", "consumerID": "conformance", "redeliverInterval": "50ms"}
    carries_metadata = False
