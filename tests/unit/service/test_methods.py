"""Fine-tuning methods come from the `fintune.methods` entry points; the built-ins are always there."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest
from pydantic import BaseModel

from fintune.service import methods as m


class EchoConfig(BaseModel):
    data: str | None = None
    rounds: int = 1


ECHO = m.FineTuningMethod(kind="echo", config_class=EchoConfig, train=lambda call: m.MethodResult())


def make_echo() -> m.FineTuningMethod:
    return ECHO


@pytest.fixture
def entry_points(monkeypatch):
    found: list[EntryPoint] = []
    monkeypatch.setattr(m, "entry_points", lambda group: [e for e in found if e.group == group])
    m.methods.cache_clear()
    yield found
    m.methods.cache_clear()


def point(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=m.GROUP)


def test_builtins_without_any_entry_point(entry_points):
    assert set(m.methods()) == {"embedding", "llm"}
    assert m.methods()["embedding"].config_class.__name__ == "EmbedRunConfig"


def test_plugins_load_as_objects_or_factories_and_cannot_replace_builtins(entry_points, caplog):
    entry_points += [
        point("echo", f"{__name__}:make_echo"),
        point("embedding", "fintune.service.methods:builtin_embedding"),  # fintune's own registration
        point("broken", "no_such_module:thing"),
        point("notamethod", f"{__name__}:EchoConfig"),
    ]
    found = m.methods()
    assert found["echo"] is ECHO
    assert found["embedding"] is m.EMBEDDING
    assert set(found) == {"embedding", "llm", "echo"}
    assert "'broken' (no_such_module:thing) cannot load" in caplog.text
    assert "is not a FineTuningMethod" in caplog.text
