"""The fintune section of a tuned model's card: data, loss, hyperparameters, before vs after."""

from __future__ import annotations

from pathlib import Path

from fintune.config.schema import EmbedRunConfig
from fintune.embed.result import EmbedTrainResult

CARD_METRICS = ("ndcg@10", "mrr@10", "recall@1", "recall@10", "recall@100", "map@100")


def metrics_table(before: dict[str, float], after: dict[str, float], keys: tuple[str, ...] = CARD_METRICS) -> str:
    lines = ["| metric | base | tuned | change | relative |", "|---|---|---|---|---|"]
    for key in keys:
        if key in before and key in after:
            b, a = before[key], after[key]
            rel = f"{(a - b) / b:+.1%}" if b else "n/a"
            lines.append(f"| {key} | {b:.4f} | {a:.4f} | {a - b:+.4f} | {rel} |")
    return "\n".join(lines)


def write_card(folder: Path, config: EmbedRunConfig, source: str, result: EmbedTrainResult) -> None:
    """Append to the card sentence-transformers wrote (or start one): what fintune did and what it got."""
    card = folder / "README.md"
    existing = card.read_text(encoding="utf-8") if card.exists() else f"# {config.output}\n"
    settings = config.model_dump(exclude_none=True, exclude={"description", "search_space"})
    rows = "\n".join(f"| {k} | {v} |" for k, v in settings.items())
    parts = [
        "\n## fintune run\n",
        f"Base model `{config.model}`, trained on `{source}` with loss `{config.loss}`: "
        f"{result.examples} examples in {result.train_seconds:.0f} s ({result.pairs_per_s:.1f} examples/s)"
        + (f", resumed from step {result.resumed_from_step}" if result.resumed_from_step else "")
        + ".\n",
    ]
    if result.before and result.after:
        parts += [
            f"\n### Before vs after ({result.validation or config.eval_split + ' split'})\n\n",
            metrics_table(result.before, result.after),
            "\n",
        ]
    if result.style_before and result.style_after:
        parts += [
            "\n### Another style of text (XBRL term -> explanation, forgetting check)\n\n",
            metrics_table(result.style_before, result.style_after, ("ndcg@10", "mrr@10", "recall@10")),
            "\n",
        ]
    if result.wise_alpha is not None:
        parts.append(f"\nWiSE-FT: weights are (1 - {result.wise_alpha:g}) x base + {result.wise_alpha:g} x tuned.\n")
    if result.notes:
        parts += ["\n### Notes\n\n", *(f"- {n}\n" for n in result.notes)]
    parts += ["\n### Settings\n\n| key | value |\n|---|---|\n", rows, "\n"]
    card.write_text(existing + "".join(parts), encoding="utf-8")
