"""Request hashing: what makes two submits "the same request" for idempotency."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import ValidationError

from fintune.service.models import TaskCreate


def test_hash_is_sha256_of_canonical_json_without_the_key():
    body = TaskCreate(kind="embedding", data="beir", config={"b": 1, "a": 2}, idempotency_key="k1")
    canonical = (
        '{"base_model":null,"config":{"a":2,"b":1},"data":"beir","deploy":null,"kind":"embedding",'
        '"metadata":{},"wait_on_conflict":true}'
    )
    assert body.request_hash() == hashlib.sha256(canonical.encode()).hexdigest()


def test_key_order_and_idempotency_key_do_not_change_the_hash():
    one = TaskCreate(kind="embedding", data="beir", config={"epochs": 1, "max_steps": 2}, idempotency_key="k1")
    two = TaskCreate.model_validate(
        {"config": {"max_steps": 2, "epochs": 1}, "data": "beir", "kind": "embedding", "idempotency_key": "k2"}
    )
    assert one.request_hash() == two.request_hash()


@pytest.mark.parametrize(
    "change", [{"config": {"epochs": 2}}, {"data": "other"}, {"deploy": {"name": "prod"}}, {"wait_on_conflict": False}]
)
def test_any_other_difference_changes_the_hash(change):
    base = {"kind": "embedding", "data": "beir", "config": {"epochs": 1}}
    assert TaskCreate.model_validate(base).request_hash() != TaskCreate.model_validate(base | change).request_hash()


def test_deploy_names_are_plain_names():
    with pytest.raises(ValidationError, match=r"deploy\.name"):
        TaskCreate.model_validate({"kind": "embedding", "deploy": {"name": "../prod"}})
