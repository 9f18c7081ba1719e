"""The API's request and response bodies."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["pending", "running", "succeeded", "failed", "canceled", "refused"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "canceled", "refused"})
ACTIVE: frozenset[str] = frozenset({"pending", "running"})
RESTARTABLE: frozenset[str] = frozenset({"failed", "canceled"})
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class Deploy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN, description="deployment the finished model is meant for")
    as_blue: bool = Field(
        False, description="when training ends: gate on the live version's score, export, then switch to the result"
    )
    tolerance: float = Field(
        0.0, ge=0, le=1, description="how far below the live version's validation score the tuned model may fall"
    )


class TaskCreate(BaseModel):
    """A fine-tuning task. `config` holds the run options (any key of the kind's run config); the reserved
    keys `run_file` and `run` name a run file (under a data root) and a run in it, options go on top."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(description="fine-tuning method: 'embedding', 'llm' or a plugin's")
    base_model: str | None = Field(None, max_length=512, description="alias, folder or hub id")
    data: str | None = Field(None, max_length=4096, description="training data path under a data root")
    config: dict[str, Any] = Field(default_factory=dict, description="run options; run_file + run")
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)
    wait_on_conflict: bool = Field(True, description="queue behind a task deploying to the same name, else refuse")
    deploy: Deploy | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    def request_hash(self) -> str:
        """SHA-256 of the request in canonical JSON (sorted keys; the idempotency key itself left out):
        the same request sent twice hashes the same whatever the client's key order."""
        body = self.model_dump(mode="json", exclude={"idempotency_key"})
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class Progress(BaseModel):
    step: int | None = None
    total: int | None = None
    loss: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict)


class Task(BaseModel):
    id: int
    kind: str
    status: Status
    attempt: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    idempotency_key: str | None = None
    request: dict[str, Any]
    config: dict[str, Any] = Field(description="the validated run config")
    deploy_name: str | None = None
    cancel_requested: bool = False
    progress: Progress | None = None
    metrics_before: dict[str, Any] | None = None
    metrics_after: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    artifact_path: str | None = None
    error: str | None = None


class TaskList(BaseModel):
    tasks: list[Task]
    total: int
    offset: int
    limit: int


class Event(BaseModel):
    id: int
    at: datetime
    kind: Literal["status", "progress", "log"]
    data: dict[str, Any]


class EventList(BaseModel):
    task_id: int
    events: list[Event]


class Problem(BaseModel):
    """One problem of a request: where (field path) and what."""

    loc: list[str | int]
    msg: str
    type: str = "value_error"


class ErrorBody(BaseModel):
    detail: str | list[Problem]
    task: Task | None = None


class Health(BaseModel):
    status: Literal["ok", "no worker", "database unavailable"]
    workers: int | None = Field(None, description="workers with a recent heartbeat")
    error: str | None = None
