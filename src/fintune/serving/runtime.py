"""What one API process serves: loaded models, open stores, and its view of the deployments.

The view is refreshed by polling each deployment's change counter (`generation`) every `poll_s`: a switch
made by any process (or a worker finishing a task) reaches every API process within about that time.
A process loads a new version's models *before* it swaps its view, so it never serves a version it has
not warmed up; versions still being built (staging) are preloaded as soon as they are announced."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from fintune.errors import FintuneError, UsageError
from fintune.models.registry import ALIASES
from fintune.models.resolve import is_adapter
from fintune.service.paths import PathMissing, PathRefused, confine
from fintune.serving import deployments as dbd
from fintune.serving.embedders import Embedder, EmbedderPool
from fintune.serving.llms import LLMPool

log = logging.getLogger(__name__)

POLL_S = 0.5


class NotFound(FintuneError, LookupError):
    """No such deployment, model or collection (HTTP 404)."""


class Refused(FintuneError, RuntimeError):
    """A switch or deployment that would break what is served (HTTP 409): the message says why."""


@dataclass(frozen=True)
class Target:
    """What a request's `model` names, resolved once at the start of the request."""

    model: str  # embedding model or LLM base (resolved name)
    adapter: str | None
    version: str  # what the X-Fintune-Model-Version header says
    deployment: dbd.Deployment | None = None


class Runtime:
    def __init__(
        self, database_url: str, roots: Sequence[Path], poll_s: float = POLL_S, store_urls: Sequence[str] = ()
    ):
        self.url = database_url
        self.roots = list(roots)  # where client-named model folders, corpora and stores may lie
        self.store_urls = set(store_urls)  # store servers clients may name (`fintune serve --store URL`)
        self.poll_s = poll_s
        self.embedders = EmbedderPool()
        self.llms = LLMPool()
        self._view: dict[str, dbd.Deployment] = {}
        self._view_lock = threading.Lock()
        self._local = threading.local()
        self._stores: list[Any] = []  # every store opened, by any thread: closed with the runtime
        self._stores_lock = threading.Lock()

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection[Any]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            yield conn

    def setup(self) -> None:
        with self.connect() as conn:
            dbd.ensure_schema(conn)
        self.refresh()

    # ---- the view ----------------------------------------------------------------------------------

    def refresh(self) -> list[str]:
        """Reload changed deployments (models first, then the view); the names that changed."""
        with self.connect() as conn:
            seen = dbd.generations(conn)
            changed = [n for n, g in seen.items() if n not in self._view or self._view[n].generation != g]
            loaded = [d for d in (dbd.get(conn, n) for n in changed) if d is not None]
        for deployment in loaded:
            try:
                self.preload(deployment)
            except Exception as exc:  # a version this process cannot load: keep serving what it has
                log.warning("deployment %s: cannot load %s here: %s", deployment.name, deployment.live.version, exc)
                continue
            with self._view_lock:
                self._view[deployment.name] = deployment
        with self._view_lock:
            for gone in set(self._view) - set(seen):
                del self._view[gone]
        return [d.name for d in loaded]

    def preload(self, deployment: dbd.Deployment) -> None:
        """Load the live, previous and staging versions' models, so a switch finds them warm."""
        wanted = [deployment.live, deployment.previous, *[v for v in deployment.versions if v.status == "staging"]]
        for version in [v for v in wanted if v is not None]:
            if deployment.kind == "embedding":
                self.embedders.get(version.model)
            else:
                self.llms.load(version.model, version.adapter)

    def deployment(self, name: str) -> dbd.Deployment | None:
        with self._view_lock:
            found = self._view.get(name)
        if found is None and name not in ALIASES and "/" not in name:
            self.refresh()  # created by another process since the last poll
            with self._view_lock:
                found = self._view.get(name)
        return found

    def read(self, name: str) -> dbd.Deployment | None:
        """The deployment as the database has it now (versions being built included)."""
        with self.connect() as conn:
            return dbd.get(conn, name)

    def read_all(self) -> list[dbd.Deployment]:
        with self.connect() as conn:
            return dbd.all_deployments(conn)

    def deployments(self) -> list[dbd.Deployment]:
        with self._view_lock:
            return sorted(self._view.values(), key=lambda d: d.name)

    # ---- what a request names ----------------------------------------------------------------------

    def confined(self, value: str, field: str) -> Path:
        return confine(value, self.roots, field)

    def model_name(self, value: str, field: str) -> str:
        """An alias as is; anything else is a folder that must lie under the data roots."""
        if value in ALIASES:
            return value
        try:
            return str(self.confined(value, field))
        except PathMissing:
            raise NotFound(f"{field}: no deployment, alias or model folder named {value!r}") from None

    def embedding_target(self, name: str) -> Target:
        deployment = self.deployment(name)
        if deployment is not None:
            if deployment.kind != "embedding":
                raise UsageError(f"model: deployment {name!r} serves an LLM, not embeddings")
            return Target(deployment.live.model, None, deployment.live.version, deployment)
        model = self.model_name(name, "model")
        return Target(model, None, _model_version(model))

    def chat_target(self, name: str) -> Target:
        deployment = self.deployment(name)
        if deployment is not None:
            if deployment.kind != "llm":
                raise UsageError(f"model: deployment {name!r} serves embeddings, not chat")
            live = deployment.live
            return Target(live.model, live.adapter, live.version, deployment)
        model = self.model_name(name, "model")
        if is_adapter(model):
            return Target("", model, _model_version(model))  # "": the adapter's own base
        return Target(model, None, _model_version(model))

    def embedder(self, target: Target) -> Embedder:
        return self.embedders.get(target.model)

    def store_url(self, value: str, field: str = "store") -> str:
        """A client-named store: an embedded store's folder under the data roots, or a server the service
        was started with (a client naming any URL could make the server connect anywhere)."""
        if "://" in value or value == "hana":
            if value not in self.store_urls:
                raise PathRefused(f"{field}: store servers must be named at start (`fintune serve --store URL`)")
            return value
        return str(self.confined(value, field))

    @contextmanager
    def store(self, url: str) -> Iterator[Any]:
        """An open store (a vetted URL: see `store_url`), one per thread: store connections (SQLite
        beside the embedded store, psycopg, hdbcli) are not shared across threads."""
        from fintune.retrieval.stores import open_store

        opened: dict[str, Any] = self._local.__dict__.setdefault("stores", {})
        if url not in opened:
            opened[url] = open_store(url)
            with self._stores_lock:
                self._stores.append(opened[url])
        yield opened[url]

    def close(self) -> None:
        with self._stores_lock:
            for store in self._stores:
                try:
                    store.close()
                except Exception as exc:  # closing from another thread than the opener's: best effort
                    log.debug("closing %s: %s", store, exc)
            self._stores.clear()


def _model_version(model: str) -> str:
    """The version header of a model named directly: its resolved name (alias or folder)."""
    from fintune.models.resolve import model_key

    return model_key(model)
