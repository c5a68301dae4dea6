"""The pub/sub building block (``api.pubsub``): publish, subscribe, deliver (spec section 3).

Modules: :mod:`.publish` (checks and envelope on the way out), :mod:`.scopes`
(topic scoping), :mod:`.envelope` (CloudEvents), :mod:`.subscriptions` and
:mod:`.manager` (what runs), :mod:`.delivery` and :mod:`.bulk` (to the app),
:mod:`.streaming` (``SubscribeTopicEventsAlpha1``), :mod:`.api` (the routes).
"""
from __future__ import annotations

from pydapr import hookimpl
from pydapr.registry import BuildingBlock

from .api import PubSubAPI

__all__ = ["PubSubAPI"]


@hookimpl
def pydapr_building_blocks() -> list[BuildingBlock]:
    return [BuildingBlock("api.pubsub", PubSubAPI)]
