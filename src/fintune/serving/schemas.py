"""Request bodies of the serving API: OpenAI's shapes where a client already speaks them, fintune's own
for search, ask, predict and deployments."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fintune.service.models import NAME_PATTERN

MAX_INPUTS = 2048  # texts per embeddings request (OpenAI's limit); more is a 413
MAX_TEXT_CHARS = 100_000  # one text; the encoder truncates to its max_seq_length tokens anyway


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients send fields such as `user`
    model: str = Field(max_length=4096, description="a deployment, an alias (minilm) or a model folder")
    input: str | list[str] | list[int] | list[list[int]] = Field(description="a text or a list of texts")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    input_type: Literal["query", "document", "plain"] = Field(
        "plain", description="fintune: the model's query or document prompt, if it has one"
    )

    def texts(self) -> list[str]:
        if isinstance(self.input, str):
            return [self.input]
        if any(not isinstance(t, str) for t in self.input):
            raise ValueError(
                "input: send text, not token ids (LangChain's OpenAIEmbeddings: check_embedding_ctx_length=False)"
            )
        return [t for t in self.input if isinstance(t, str)]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = [p.get("text", "") for p in self.content if p.get("type") == "text"]
        if len(parts) != len(self.content):
            raise ValueError("messages: only text content parts are supported")
        return "".join(parts)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(max_length=4096, description="a deployment, an alias (smollm2), a model or adapter folder")
    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)
    temperature: float | None = Field(None, ge=0, le=2, description="absent or 0: greedy (fintune's default)")
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    stream: bool = False
    seed: int | None = None
    n: int = Field(1, ge=1, le=1, description="one choice per request")

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop strings")
        return value

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def new_tokens(self) -> int:
        return self.max_completion_tokens or self.max_tokens or 256


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deployment: str | None = Field(None, pattern=NAME_PATTERN, description="an embedding deployment")
    store: str | None = Field(None, max_length=4096, description="without a deployment: folder or server URL")
    collection: str = Field(max_length=64, description="logical collection name")
    query: str | list[str] = Field(description="one query or several")
    k: int = Field(10, ge=1, le=100)
    hybrid: bool = Field(False, description="fuse keyword search with the vector search (RRF)")
    filter: dict[str, str] | None = None

    def queries(self) -> list[str]:
        return [self.query] if isinstance(self.query, str) else self.query


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deployment: str | None = Field(None, pattern=NAME_PATTERN, description="an embedding deployment")
    store: str | None = Field(None, max_length=4096)
    collection: str = Field(max_length=64)
    question: str = Field(min_length=1, max_length=4000)
    llm: str | None = Field(None, max_length=4096, description="an LLM deployment, alias, model or adapter folder")
    k: int = Field(4, ge=1, le=20)
    hybrid: bool = False
    max_tokens: int = Field(96, ge=1, le=1024)


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deployment: str = Field(max_length=4096, description="an LLM deployment, or an alias / adapter folder")
    task: str = Field(max_length=64, description="a fintune task (fpb, tfns, headline, ...)")
    inputs: list[str] = Field(min_length=1, max_length=64)


class BindingBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    store: str = Field(max_length=4096)
    collection: str = Field(max_length=64)
    corpus: str | None = Field(None, max_length=4096, description="what a switch re-embeds for a new model")
    prefix: bool = False


class DeploymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    kind: Literal["embedding", "llm"]
    model: str | None = Field(None, max_length=4096, description="embedding model or LLM base")
    adapter: str | None = Field(None, max_length=4096, description="LLM: a LoRA adapter folder")
    version: str = Field("v1", pattern=NAME_PATTERN)
    collections: list[BindingBody] = Field(default_factory=list, max_length=32)


class SwitchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(pattern=NAME_PATTERN)
    model: str | None = Field(None, max_length=4096, description="needed for a version not built yet")
    adapter: str | None = Field(None, max_length=4096)
