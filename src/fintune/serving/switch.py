"""Create, switch and roll back deployments: load and warm the new version, rebuild its collections,
then move the live pointer in one statement.

Re-embedding takes the existing `fintune index --reembed` path: a new physical version of each bound
collection is filled while searches keep using the old one. The store's own alias moves when a version
is complete (what the CLI searches; that version records its model, so the CLI never mixes models), and
the deployment's pointer, which every API request reads, moves model and collections together after all
of them are built."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from fintune.errors import UsageError
from fintune.serving import deployments as dbd
from fintune.serving.runtime import NotFound, Refused, Runtime

log = logging.getLogger(__name__)

WARM_TEXTS = ["warm-up query", "a passage to warm the encoder up"]


@dataclass
class SwitchResult:
    deployment: str
    live: str
    previous: str | None
    switched: bool
    seconds: float
    rebuilt: dict[str, str] = field(default_factory=dict)  # logical collection -> new physical one

    def as_json(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "live": self.live,
            "previous": self.previous,
            "switched": self.switched,
            "seconds": round(self.seconds, 3),
            "rebuilt": self.rebuilt,
        }


def create(
    rt: Runtime,
    name: str,
    kind: dbd.Kind,
    model: str,
    version: str = "v1",
    adapter: str | None = None,
    bindings: list[dbd.Binding] | None = None,
) -> dbd.Deployment:
    """A new deployment serving `model` (and `adapter`), bound to collections already built with it."""
    bindings = bindings or []
    if kind == "llm" and bindings:
        raise UsageError("collections: only embedding deployments bind store collections")
    if len({b.collection for b in bindings}) != len(bindings):
        raise UsageError("collections: each logical collection may be bound once")
    built = _load(rt, kind, model, adapter)
    dimension = built.dimension if kind == "embedding" and built is not None else None
    collections = {b.collection: _bound_collection(rt, b, model, dimension) for b in bindings}
    first = dbd.Version(name, version, model, adapter, dimension, collections, "ready")
    with rt.connect() as conn:
        if not dbd.create(conn, name, kind, first, bindings):
            raise Refused(f"deployment {name!r} exists; switch it to a new version instead")
        created = dbd.get(conn, name)
    rt.refresh()
    assert created is not None
    return created


def _load(rt: Runtime, kind: dbd.Kind, model: str, adapter: str | None) -> Any:
    """Load and warm the version's model in this process."""
    if kind == "embedding":
        return rt.embedders.get(model)  # loads and encodes a warm-up text
    from fintune.llm.inference import head_of
    from fintune.serving.chat import Sampling, complete

    if adapter and head_of(adapter) != "generate":
        rt.llms.head(model or None, adapter)  # a head answers in one forward pass: loading is its warm-up
        return None
    with rt.llms.use(model or None, adapter) as ready:
        complete(ready, ready.tokenizer("warm-up", add_special_tokens=False)["input_ids"], Sampling(max_tokens=1))
    return None


def _bound_collection(rt: Runtime, binding: dbd.Binding, model: str, dimension: int | None) -> str:
    """The physical collection behind `binding` built with `model`: refuse one built with another model."""
    from fintune.retrieval.search import same_model

    with rt.store(binding.store) as store:
        info = store.catalog.resolve(binding.collection)
    if dimension is not None and info.dimension != dimension:
        raise Refused(
            f"collection {binding.collection!r} holds {info.dimension}-dim vectors; model {model!r} makes {dimension}"
        )
    if not same_model(model, info.model):
        raise Refused(
            f"collection {binding.collection!r} was built with {info.model!r}, not {model!r}: "
            "index it with this model first (`fintune index --reembed`)"
        )
    return info.name


def switch(
    rt: Runtime,
    name: str,
    version: str,
    model: str | None = None,
    adapter: str | None = None,
    metrics: dict[str, Any] | None = None,
) -> SwitchResult:
    """Make `version` live: a ready version at once; a new one (with `model`) after loading it and
    rebuilding the bound collections with it. One switch per deployment at a time."""
    start = time.perf_counter()
    with rt.connect() as conn, _switch_lock(conn, name):
        deployment = dbd.get(conn, name)
        if deployment is None:
            raise NotFound(f"no deployment {name!r}")
        if version == deployment.live.version and model is None:
            return SwitchResult(name, version, deployment.previous.version if deployment.previous else None,
                                False, time.perf_counter() - start)  # fmt: skip
        known = {v.version: v for v in deployment.versions}.get(version)
        rebuilt: dict[str, str] = {}
        given = model is not None or adapter is not None
        changed = given and known is not None and (model or "", adapter) != (known.model, known.adapter)
        if known is None or known.status != "ready" or changed:
            if not given:
                raise NotFound(
                    f"deployment {name!r} has no ready version {version!r}: give its model (or adapter) to build it"
                )
            known, rebuilt = _build(rt, conn, deployment, version, model or "", adapter, metrics)
        else:
            _load(rt, deployment.kind, known.model, known.adapter)
        if not dbd.move_live(conn, name, deployment.live.version, version):
            raise Refused(f"deployment {name!r} changed during the switch; read it and switch again")
        _point_store_aliases(rt, deployment, known)
    rt.refresh()
    return SwitchResult(name, version, deployment.live.version, True, time.perf_counter() - start, rebuilt)


def rollback(rt: Runtime, name: str) -> SwitchResult:
    """The previous version live again (the current one becomes previous: a second rollback undoes it)."""
    with rt.connect() as conn:
        deployment = dbd.get(conn, name)
    if deployment is None:
        raise NotFound(f"no deployment {name!r}")
    if deployment.previous is None:
        raise Refused(f"deployment {name!r} has no previous version to roll back to")
    return switch(rt, name, deployment.previous.version)


class _Locked:
    def __init__(self, conn: Any, key: str):
        self.conn, self.key = conn, key

    def __enter__(self) -> None:
        row = self.conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (self.key,)).fetchone()
        if not row or not row[0]:
            raise Refused(f"another switch of {self.key.removeprefix(SWITCH_PREFIX)!r} is running; try again later")

    def __exit__(self, *exc: object) -> None:
        self.conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (self.key,))


SWITCH_PREFIX = "fintune-switch:"


def _switch_lock(conn: Any, name: str) -> _Locked:
    return _Locked(conn, SWITCH_PREFIX + name)


def _build(
    rt: Runtime,
    conn: Any,
    deployment: dbd.Deployment,
    version: str,
    model: str,
    adapter: str | None,
    metrics: dict[str, Any] | None,
) -> tuple[dbd.Version, dict[str, str]]:
    """Stage, load, check and (embeddings) re-embed every bound collection; the version ends ready or failed."""
    staged = dbd.Version(deployment.name, version, model, adapter, None, {}, "staging", metrics=metrics)
    dbd.put_version(conn, staged)  # peers start loading it now
    try:
        loaded = _load(rt, deployment.kind, model, adapter)
        dimension = loaded.dimension if loaded is not None else None
        live_dim = deployment.live.dimension
        if deployment.bindings and dimension != live_dim:
            raise Refused(
                f"model {model!r} makes {dimension}-dim vectors; deployment {deployment.name!r} serves "
                f"{live_dim}-dim collections ({', '.join(b.collection for b in deployment.bindings)}). "
                "Make a new deployment for a model of another size"
            )
        rebuilt = {b.collection: _reembed(rt, b, loaded) for b in deployment.bindings}
    except Exception as exc:
        dbd.put_version(conn, _with(staged, status="failed", error=str(exc)[:2000]))
        raise
    ready = _with(staged, status="ready", dimension=dimension, collections=rebuilt)
    dbd.put_version(conn, ready)
    return ready, rebuilt


def _with(version: dbd.Version, **changes: Any) -> dbd.Version:
    from dataclasses import replace

    return replace(version, **changes)


def _reembed(rt: Runtime, binding: dbd.Binding, embedder: Any) -> str:
    """A new physical version of the bound collection, embedded with the new model."""
    from fintune.retrieval.corpus import read_corpus
    from fintune.retrieval.embeddings import FinancialEmbeddings
    from fintune.retrieval.index import index_corpus

    if not binding.corpus:
        raise Refused(
            f"collection {binding.collection!r} was bound without a corpus: it cannot be re-embedded for a new model"
        )
    embeddings = FinancialEmbeddings(embedder.key, add_financial_prefix=binding.prefix)
    embeddings._model = embedder.model  # the model already loaded and warm
    corpus = read_corpus(binding.corpus, skip_invalid=True)  # bad records are logged with file and line
    with rt.store(binding.store) as store:
        result = index_corpus(
            store, binding.collection, corpus, model=embedder.key, add_financial_prefix=binding.prefix,
            reembed=True, embeddings=embeddings, progress=False,
        )  # fmt: skip
    log.info("re-embedded %s into %s with %s", binding.collection, result.physical, embedder.key)
    return result.physical


def _point_store_aliases(rt: Runtime, deployment: dbd.Deployment, version: dbd.Version) -> None:
    """The store's aliases follow the deployment (what CLI searches of the store see)."""
    for binding in deployment.bindings:
        physical = version.collections.get(binding.collection)
        if not physical:
            continue
        with rt.store(binding.store) as store:
            store.catalog.mark(physical, "ready")
            store.catalog.point(binding.collection, physical)
