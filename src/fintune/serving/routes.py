"""The serving routes: OpenAI-compatible `/v1/models`, `/v1/embeddings`, `/v1/chat/completions`, fintune's
`/v1/search`, `/v1/ask`, `/v1/predict`, and `/v1/deployments` (create, switch, rollback).

Every response names the model version that served it (`X-Fintune-Model-Version`): a request resolves its
deployment once, at its start, and uses that version's model and collections throughout, so a switch
in the middle of a request cannot mix versions."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Response
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from fintune.errors import FintuneError, UsageError
from fintune.models.resolve import ModelNotFoundError
from fintune.service.models import NAME_PATTERN, ErrorBody
from fintune.serving import deployments as dbd
from fintune.serving import switch as switching
from fintune.serving.chat import Sampling, complete, prompt_ids, stream
from fintune.serving.runtime import NotFound, Refused, Runtime, Target
from fintune.serving.schemas import (
    MAX_INPUTS,
    MAX_TEXT_CHARS,
    AskRequest,
    ChatRequest,
    DeploymentCreate,
    EmbeddingsRequest,
    PredictRequest,
    SearchRequest,
    SwitchRequest,
)

VERSION_HEADER = "X-Fintune-Model-Version"
DEPLOYMENT_HEADER = "X-Fintune-Deployment"
Name = Annotated[str, PathParam(pattern=NAME_PATTERN)]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "a bad value, or a path outside the data roots"),
        (404, "no such deployment, model, collection or task"),
        (409, "refused: it would break what is served"),
        (413, "too many or too long inputs, or a body over 1 MiB"),
    )
}


def served_by(response: Response, target: Target) -> None:
    response.headers[VERSION_HEADER] = target.version
    if target.deployment is not None:
        response.headers[DEPLOYMENT_HEADER] = target.deployment.name


async def _guarded(call: Callable[[], Awaitable[Any]]) -> Any:
    """fintune's errors as HTTP: unknown names 404, refusals 409, bad values 400."""
    try:
        return await call()
    except (NotFound, ModelNotFoundError) as exc:
        raise HTTPException(404, str(exc)) from None
    except Refused as exc:
        raise HTTPException(409, str(exc)) from None
    except (FintuneError, ValueError) as exc:  # UsageError, StoreError, DataError: the request's values
        raise HTTPException(400, str(exc)) from None


def router(rt: Runtime, auth: Callable[..., Any]) -> APIRouter:
    api = APIRouter(prefix="/v1", dependencies=[Depends(auth)])

    @api.get("/models", tags=["openai"], responses=ERRORS)
    async def models() -> dict[str, Any]:
        """Deployments, aliases and the models this process has loaded."""
        from fintune.models.registry import ALIASES

        now = int(time.time())
        names = [d.name for d in rt.deployments()] + list(ALIASES) + rt.embedders.loaded() + rt.llms.loaded()
        unique = list(dict.fromkeys(names))
        return {"object": "list", "data": [{"id": n, "object": "model", "created": now, "owned_by": "fintune"}
                                           for n in unique]}  # fmt: skip

    @api.post("/embeddings", tags=["openai"], responses=ERRORS)
    async def embeddings(body: EmbeddingsRequest, response: Response) -> dict[str, Any]:
        try:
            texts = body.texts()
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        _check_size(texts)
        target = await _guarded(lambda: asyncio.to_thread(rt.embedding_target, body.model))
        embedder = await _guarded(lambda: asyncio.to_thread(rt.embedder, target))
        if body.dimensions is not None and body.dimensions != embedder.dimension:
            raise HTTPException(400, f"dimensions: {target.model} makes {embedder.dimension}-dim vectors")
        vectors = await embedder.encode(texts, body.input_type)
        served_by(response, target)
        tokens = await asyncio.to_thread(embedder.count_tokens, texts)
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": _encoded(v, body.encoding_format)}
                for i, v in enumerate(vectors)
            ],
            "model": body.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    @api.post(
        "/chat/completions",
        tags=["openai"],
        response_model=None,
        responses={**ERRORS, 200: {"content": {"text/event-stream": {}}, "description": "a completion, or its SSE"}},
    )
    async def chat(body: ChatRequest, response: Response) -> Any:
        target = await _guarded(lambda: asyncio.to_thread(rt.chat_target, body.model))
        try:
            messages = [{"role": _role(m.role), "content": m.text()} for m in body.messages]
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        sampling = Sampling(body.new_tokens(), body.temperature, body.top_p, body.stops(), body.seed)
        if body.stream:
            return await _guarded(lambda: _chat_stream(rt, target, body.model, messages, sampling))

        def run() -> Any:
            with rt.llms.use(target.model or None, target.adapter) as ready:
                return complete(ready, prompt_ids(ready, messages, sampling.max_tokens), sampling)

        done = await _guarded(lambda: asyncio.to_thread(run))
        served_by(response, target)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": done.text},
                    "finish_reason": done.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": done.prompt_tokens,
                "completion_tokens": done.completion_tokens,
                "total_tokens": done.prompt_tokens + done.completion_tokens,
            },
        }

    @api.post("/search", tags=["fintune"], responses=ERRORS)
    async def search(body: SearchRequest, response: Response) -> dict[str, Any]:
        queries = body.queries()
        _check_size(queries)
        target, store_url, info = await _guarded(lambda: asyncio.to_thread(_collection, rt, body))
        embedder = await _guarded(lambda: asyncio.to_thread(rt.embedder, target))
        vectors = await _query_vectors(embedder, info, queries)
        hits = await _guarded(lambda: asyncio.to_thread(_search, rt, store_url, info, queries, vectors, body))
        served_by(response, target)
        return {
            "collection": info.name,
            "results": [{"query": q, "hits": [_hit(h) for h in found]} for q, found in zip(queries, hits, strict=True)],
        }

    @api.post("/ask", tags=["fintune"], responses=ERRORS)
    async def ask(body: AskRequest, response: Response) -> dict[str, Any]:
        search = SearchRequest(
            deployment=body.deployment, store=body.store, collection=body.collection, query=body.question,
            k=body.k, hybrid=body.hybrid,
        )  # fmt: skip
        target, store_url, info = await _guarded(lambda: asyncio.to_thread(_collection, rt, search))
        llm = await _guarded(lambda: asyncio.to_thread(rt.chat_target, body.llm or "smollm2"))
        embedder = await _guarded(lambda: asyncio.to_thread(rt.embedder, target))
        vector = await _query_vectors(embedder, info, [body.question])
        hits = await _guarded(lambda: asyncio.to_thread(_search, rt, store_url, info, [body.question], vector, search))
        answer = await _guarded(lambda: asyncio.to_thread(_answer, rt, llm, body, hits[0]))
        served_by(response, target)
        response.headers["X-Fintune-LLM-Version"] = llm.version
        return answer

    @api.post("/predict", tags=["fintune"], responses=ERRORS)
    async def predict(body: PredictRequest, response: Response) -> dict[str, Any]:
        from fintune.data.tasks import get_task

        try:
            get_task(body.task)
        except Exception as exc:
            raise HTTPException(404, f"task: {exc}") from None
        target = await _guarded(lambda: asyncio.to_thread(rt.chat_target, body.deployment))

        def run() -> list[dict[str, Any]]:
            from fintune.llm.inference import head_of
            from fintune.llm.predict import predict as predict_task
            from fintune.llm.predict import predict_with_head

            if target.adapter and head_of(target.adapter) != "generate":  # the path the adapter was trained for
                head = rt.llms.head(target.model or None, target.adapter)
                with head.lock:
                    return predict_with_head(
                        head.model, head.tokenizer, head.spec, head.settings, body.task, body.inputs
                    )
            with rt.llms.use(target.model or None, target.adapter) as ready:
                return predict_task(ready.model, ready.tokenizer, ready.settings, body.task, body.inputs)

        results = await _guarded(lambda: asyncio.to_thread(run))
        served_by(response, target)
        return {"task": body.task, "model_version": target.version, "predictions": results}

    @api.get("/deployments", tags=["deployments"], responses=ERRORS)
    async def list_deployments() -> dict[str, Any]:
        """As the database has them now (what this process serves follows within a poll)."""
        found = await asyncio.to_thread(rt.read_all)
        return {"deployments": [d.as_json() for d in found]}

    @api.get("/deployments/{name}", tags=["deployments"], responses=ERRORS)
    async def get_deployment(name: Name) -> dict[str, Any]:
        found = await asyncio.to_thread(rt.read, name)
        if found is None:
            raise HTTPException(404, f"no deployment {name!r}")
        return found.as_json()

    @api.post("/deployments", tags=["deployments"], status_code=201, responses=ERRORS)
    async def create_deployment(body: DeploymentCreate) -> dict[str, Any]:
        def run() -> dbd.Deployment:
            model = rt.model_name(body.model, "model") if body.model else None
            adapter = str(rt.confined(body.adapter, "adapter")) if body.adapter else None
            if model is None and (body.kind == "embedding" or adapter is None):
                raise UsageError("model: give the deployment's model (or, for an LLM, an adapter)")
            bindings = [
                dbd.Binding(rt.store_url(b.store, f"collections[{i}].store"), b.collection,
                            str(rt.confined(b.corpus, f"collections[{i}].corpus")) if b.corpus else None, b.prefix)
                for i, b in enumerate(body.collections)
            ]  # fmt: skip
            return switching.create(rt, body.name, body.kind, model or "", body.version, adapter, bindings)

        created = await _guarded(lambda: asyncio.to_thread(run))
        return created.as_json()

    @api.post("/deployments/{name}/switch", tags=["deployments"], responses=ERRORS)
    async def switch(name: Name, body: SwitchRequest) -> dict[str, Any]:
        def run() -> switching.SwitchResult:
            model = rt.model_name(body.model, "model") if body.model else None
            adapter = str(rt.confined(body.adapter, "adapter")) if body.adapter else None
            return switching.switch(rt, name, body.version, model, adapter)

        result = await _guarded(lambda: asyncio.to_thread(run))
        return result.as_json()

    @api.post("/deployments/{name}/rollback", tags=["deployments"], responses=ERRORS)
    async def rollback(name: Name) -> dict[str, Any]:
        result = await _guarded(lambda: asyncio.to_thread(switching.rollback, rt, name))
        return result.as_json()

    return api


def _role(role: str) -> str:
    return "system" if role == "developer" else role  # OpenAI's newer name for the system turn


def _check_size(texts: list[str]) -> None:
    if len(texts) > MAX_INPUTS:
        raise HTTPException(413, f"input: {len(texts)} texts; at most {MAX_INPUTS} per request")
    long = next((i for i, t in enumerate(texts) if len(t) > MAX_TEXT_CHARS), None)
    if long is not None:
        raise HTTPException(413, f"input[{long}]: over {MAX_TEXT_CHARS} characters")
    empty = next((i for i, t in enumerate(texts) if not t.strip()), None)
    if empty is not None:
        raise HTTPException(400, f"input[{empty}]: empty text")


def _encoded(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":  # what the openai client asks for by default: little-endian float32
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]


def _collection(rt: Runtime, body: SearchRequest) -> tuple[Target, str, Any]:
    """The embedding model, store and physical collection a search reads, resolved together."""
    if body.deployment:
        deployment = rt.deployment(body.deployment)
        if deployment is None:
            raise NotFound(f"no deployment {body.deployment!r}")
        if deployment.kind != "embedding":
            raise UsageError(f"deployment: {body.deployment!r} serves an LLM; search needs an embedding deployment")
        live = deployment.live
        binding = next((b for b in deployment.bindings if b.collection == body.collection), None)
        if binding is None or body.collection not in live.collections:
            bound = ", ".join(b.collection for b in deployment.bindings) or "none"
            raise NotFound(f"collection: {body.collection!r} is not bound to {body.deployment!r} (bound: {bound})")
        with rt.store(binding.store) as store:
            info = store.catalog.get(live.collections[body.collection])
        if info is None:
            raise NotFound(f"collection {live.collections[body.collection]!r} is gone from {binding.store}")
        return Target(live.model, None, live.version, deployment), binding.store, info
    if not body.store:
        raise UsageError("store: give a store (folder or server URL) or a deployment")
    url = rt.store_url(body.store)
    with rt.store(url) as store:
        try:
            info = store.catalog.resolve(body.collection)
        except Exception as exc:
            raise NotFound(str(exc)) from None
    return Target(info.model, None, info.model), url, info


async def _query_vectors(embedder: Any, info: Any, queries: list[str]) -> list[list[float]]:
    """The queries' vectors through the batcher, prefixed as the offline search prefixes them when the
    collection was built with prefixes (`fintune index --add-financial-prefix`)."""
    from fintune.retrieval.embeddings import QUERY_PREFIX, with_prefix

    texts = with_prefix(queries, QUERY_PREFIX if info.prefix else "")
    return (await embedder.encode(texts, "query")).tolist()


def _search(
    rt: Runtime, url: str, info: Any, queries: list[str], vectors: list[list[float]], body: SearchRequest
) -> list[list[Any]]:
    from fintune.retrieval.embeddings import FinancialEmbeddings
    from fintune.retrieval.hybrid import HybridSettings
    from fintune.retrieval.search import Searcher

    with rt.store(url) as store:
        # The vectors are made: these embeddings never load their model (search_vectors encodes nothing).
        searcher = Searcher(store, info, FinancialEmbeddings(info.model, add_financial_prefix=info.prefix))
        hybrid = HybridSettings() if body.hybrid else None
        return searcher.search_vectors(queries, vectors, body.k, body.filter, hybrid=hybrid)


def _hit(hit: Any) -> dict[str, Any]:
    out = {"id": hit.id, "score": round(float(hit.score), 6), "text": hit.text, "metadata": hit.metadata}
    for name in ("vector_score", "keyword_score"):
        value = getattr(hit, name)
        if value is not None:
            out[name] = round(float(value), 6)
    return out


def _answer(rt: Runtime, llm: Target, body: AskRequest, hits: list[Any]) -> dict[str, Any]:
    from fintune.retrieval.ask import Answerer

    with rt.llms.use(llm.model or None, llm.adapter) as ready:
        # the passages are retrieved already: no searcher needed
        answerer = Answerer(None, k=body.k, max_new_tokens=body.max_tokens)
        answerer._model = (ready.model, ready.tokenizer, ready.settings)
        return answerer.answer_hits(body.question, hits).as_dict()


async def _chat_stream(
    rt: Runtime, target: Target, model_name: str, messages: list[dict[str, str]], sampling: Sampling
) -> StreamingResponse:
    """Server-sent events in OpenAI's chunk format; the base's lock is held until generation ends."""
    ready, lock = await asyncio.to_thread(rt.llms.acquire, target.model or None, target.adapter)
    try:
        ids = prompt_ids(ready, messages, sampling.max_tokens)
    except BaseException:
        lock.release()
        raise
    pieces = stream(ready, ids, sampling, lock)  # the generating thread releases the lock
    chunk_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: dict[str, str], finish: str | None) -> str:
        body = {
            "id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": model_name,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }  # fmt: skip
        return f"data: {json.dumps(body)}\n\n"

    async def events() -> AsyncIterator[str]:
        yield chunk({"role": "assistant", "content": ""}, None)
        done = object()
        while True:
            piece = await asyncio.to_thread(next, pieces, done)
            if piece is done:
                break
            yield chunk({"content": str(piece)}, None)
        yield chunk({}, "stop")
        yield "data: [DONE]\n\n"

    headers = {VERSION_HEADER: target.version}
    if target.deployment is not None:
        headers[DEPLOYMENT_HEADER] = target.deployment.name
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
