"""Python API for embedding fine-tuning, for code that holds its data in memory."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fintune.config.schema import EmbedRunConfig
from fintune.embed.result import EmbedTrainResult
from fintune.embed.train import train_embedder
from fintune.errors import UsageError


class ModelFineTuner:
    """Fine-tunes embedding models into `models_dir`; every call writes a complete model folder."""

    def __init__(self, models_dir: str | Path = "models", use_gpu: bool | None = None):
        self.models_dir = Path(models_dir)
        self.use_gpu = use_gpu
        self.last_result: EmbedTrainResult | None = None

    def fine_tune(
        self,
        base_model: str,
        train_texts: Sequence[str] | None = None,
        train_pairs: Sequence[Any] | None = None,
        epochs: float = 1,
        batch_size: int = 32,
        learning_rate: float = 2e-5,
        output_path: str | Path | None = None,
        domain_texts: Sequence[str] | None = None,
        domain_adaptation_weight: float = 0.0,
        **settings: Any,
    ) -> str:
        """Train on `train_pairs` ((query, passage) or (text1, text2, score) tuples, or dicts in any pairs
        format) or, unsupervised, on `train_texts`; `domain_texts` add a weighted domain objective."""
        if train_texts is not None and train_pairs is None:
            rows = [{"text": t} for t in train_texts]
        elif train_pairs is not None and train_texts is None:
            rows = [_pair(p) for p in train_pairs]
        else:
            raise UsageError("give exactly one of train_texts or train_pairs")
        loss = settings.pop("loss", "cosent" if rows and "score" in rows[0] else "mnrl")
        return self._run(
            base_model,
            rows,
            output_path,
            domain_texts,
            loss=loss,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            domain_adaptation_weight=domain_adaptation_weight if domain_texts else 0.0,
            **settings,
        )

    def fine_tune_triplet(
        self,
        base_model: str,
        triplets: Sequence[Any],
        margin: float = 0.5,
        epochs: float = 1,
        batch_size: int = 32,
        learning_rate: float = 2e-5,
        output_path: str | Path | None = None,
        **settings: Any,
    ) -> str:
        rows = [
            t if isinstance(t, dict) else dict(zip(("anchor", "positive", "negative"), t, strict=True))
            for t in triplets
        ]
        return self._run(
            base_model,
            rows,
            output_path,
            None,
            loss=settings.pop("loss", "triplet"),
            margin=margin,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            **settings,
        )

    def _run(
        self,
        base_model: str,
        rows: list[dict],
        output_path: str | Path | None,
        domain_texts: Sequence[str] | None,
        **settings: Any,
    ) -> str:
        output = (
            Path(output_path)
            if output_path
            else self.models_dir / f"{Path(base_model).name}-{time.strftime('%Y%m%d-%H%M%S')}"
        )
        with tempfile.TemporaryDirectory() as tmp:
            data = _write_jsonl(Path(tmp) / "train.jsonl", rows)
            domain = (
                _write_jsonl(Path(tmp) / "domain.jsonl", [{"text": t} for t in domain_texts]) if domain_texts else None
            )
            config = EmbedRunConfig(
                model=base_model,
                data=str(data),
                output=str(output),
                domain_data=str(domain) if domain else None,
                **settings,
            )
            self.last_result = train_embedder(config, evaluate=False, use_gpu=self.use_gpu, resume=False)
        return str(output)


def create_model_fine_tuner(models_dir: str | Path = "models", use_gpu: bool | None = None) -> ModelFineTuner:
    return ModelFineTuner(models_dir=models_dir, use_gpu=use_gpu)


def _pair(item: Any) -> dict[str, Any]:
    if isinstance(item, dict):
        return item
    if len(item) == 3:
        return {"text1": item[0], "text2": item[1], "score": float(item[2])}
    if len(item) == 2:
        return {"text1": item[0], "text2": item[1]}
    raise UsageError(f"a pair is (text1, text2) or (text1, text2, score), got {len(item)} items")


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path
