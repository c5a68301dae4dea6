"""Topic scoping, rules S1 to S4 of the security spec (1.5), and the scopes syntax."""
from __future__ import annotations

import pytest

from pydapr.plugins.pubsub.scopes import TopicScopes, parse_scopes


def test_parse_keeps_only_this_app_and_removes_duplicates_and_spaces() -> None:
    value = " app1 = t1, t2 ,t1 ; app2=t3;junk;app1=t4"
    assert parse_scopes(value, "app1") == ["t1", "t2", "t4"]
    assert parse_scopes(value, "app2") == ["t3"]
    assert parse_scopes(value, "app9") == []


def test_app_listed_with_nothing_gets_a_list_that_matches_nothing() -> None:
    assert parse_scopes("app3=", "app3") == [""]
    sc = TopicScopes.from_metadata({"publishingScopes": "app3="}, "app3")
    assert not sc.may_publish("anything")
    assert not sc.may_publish("")


@pytest.mark.parametrize("md, app, topic, publish, subscribe", [
    # S1: allowedTopics is checked first and cannot be widened by scopes
    ({"allowedTopics": "a,b"}, "x", "c", False, False),
    ({"allowedTopics": "a,b", "publishingScopes": "x=c"}, "x", "c", False, False),
    ({"allowedTopics": "a,b"}, "x", "a", True, True),
    # S2: protected topics need an explicit grant in the matching list
    ({"protectedTopics": "p"}, "x", "p", False, False),
    ({"protectedTopics": "p", "publishingScopes": "x=p"}, "x", "p", True, False),
    ({"protectedTopics": "p", "subscriptionScopes": "x=p"}, "x", "p", False, True),
    # S3: an app not listed is unrestricted for unprotected topics
    ({"publishingScopes": "other=t"}, "x", "t2", True, True),
    # S4: a listed app may use only its topics
    ({"publishingScopes": "x=t1", "subscriptionScopes": "x=t2"}, "x", "t2", False, True),
    ({"publishingScopes": "x=t1", "subscriptionScopes": "x=t2"}, "x", "t1", True, False),
])
def test_rules(md: dict, app: str, topic: str, publish: bool, subscribe: bool) -> None:
    sc = TopicScopes.from_metadata(md, app)
    assert (sc.may_publish(topic), sc.may_subscribe(topic)) == (publish, subscribe)


def test_metadata_names_are_case_insensitive_and_topics_case_sensitive() -> None:
    sc = TopicScopes.from_metadata({"PUBLISHINGSCOPES": "x=Orders", "allowedtopics": "Orders"}, "x")
    assert sc.may_publish("Orders")
    assert not sc.may_publish("orders")
