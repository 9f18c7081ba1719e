"""Base vs tuned on the same BEIR split: every metric with its change, and example queries."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fintune.data.beir import BeirData
from fintune.embed.card import metrics_table
from fintune.embed.evaluate import RetrievalResult

REPORT_METRICS = (
    "ndcg@10",
    "mrr@10",
    "map@100",
    "recall@1",
    "recall@5",
    "recall@10",
    "recall@100",
    "precision@1",
    "precision@10",
)
SPEED_METRICS = ("corpus_docs_per_s", "query_latency_ms_p50", "query_latency_ms_p95")


@dataclass
class Comparison:
    base_name: str
    tuned_name: str
    data: str
    split: str
    base: dict[str, float]
    tuned: dict[str, float]
    improved: list[dict[str, Any]] = field(default_factory=list)
    worsened: list[dict[str, Any]] = field(default_factory=list)

    def changes(self) -> dict[str, dict[str, float | None]]:
        out = {}
        for key in (*REPORT_METRICS, *SPEED_METRICS):
            if key in self.base and key in self.tuned:
                b, t = self.base[key], self.tuned[key]
                out[key] = {"base": b, "tuned": t, "change": t - b, "relative": (t - b) / b if b else None}
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base_name,
            "tuned": self.tuned_name,
            "data": self.data,
            "split": self.split,
            "queries": self.base.get("queries"),
            "metrics": self.changes(),
            "improved_examples": self.improved,
            "worsened_examples": self.worsened,
        }

    def to_markdown(self) -> str:
        lines = [
            f"# {self.tuned_name} vs {self.base_name}\n",
            f"Data `{self.data}`, split `{self.split}`: {self.base.get('queries')} queries over "
            f"{self.base.get('corpus_size')} passages.\n",
            "## Quality\n",
            metrics_table(self.base, self.tuned, REPORT_METRICS),
            "\n## Speed (this machine)\n",
            "| metric | base | tuned |",
            "|---|---|---|",
            *(f"| {k} | {self.base[k]:.1f} | {self.tuned[k]:.1f} |" for k in SPEED_METRICS if k in self.base),
        ]
        for title, rows in (("ranks the right passage higher", self.improved), ("got worse", self.worsened)):
            lines += [f"\n## Where the tuned model {title}\n"]
            lines += [
                f"- **{r['query']}**  \n  relevant `{r['relevant']}`: rank {r['base_rank']} -> "
                f"{r['tuned_rank']}  \n  passage: {r['passage'][:200]}"
                for r in rows
            ] or ["(none)"]
        return "\n".join(lines) + "\n"


def first_relevant_rank(ranking: list[str], relevant: dict[str, float]) -> int | None:
    return next((i + 1 for i, doc in enumerate(ranking) if doc in relevant), None)


def compare_results(
    base_name: str, tuned_name: str, data: BeirData, base: RetrievalResult, tuned: RetrievalResult, examples: int = 5
) -> Comparison:
    """Example queries are those whose first relevant passage moved most (missing from the top 100 = 101)."""
    moves: list[dict[str, Any]] = []
    for qid, relevant in data.qrels.items():
        b = first_relevant_rank(base.rankings.get(qid, []), relevant) or 101
        t = first_relevant_rank(tuned.rankings.get(qid, []), relevant) or 101
        if b != t:
            doc = next(iter(relevant))
            moves.append(
                {
                    "query_id": qid,
                    "query": data.queries[qid],
                    "relevant": doc,
                    "passage": data.doc_text(doc),
                    "base_rank": b,
                    "tuned_rank": t,
                }
            )
    moves.sort(key=lambda m: m["tuned_rank"] - m["base_rank"])
    improved = [m for m in moves if m["tuned_rank"] < m["base_rank"]][:examples]
    worsened = [m for m in reversed(moves) if m["tuned_rank"] > m["base_rank"]][:examples]
    return Comparison(
        base_name, tuned_name, str(data.folder), data.split, base.metrics, tuned.metrics, improved, worsened
    )


def write_report(comparison: Comparison, report: str | Path) -> tuple[Path, Path]:
    """Markdown at `report`, JSON beside it (same name, .json)."""
    import json

    md = Path(report)
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(comparison.to_markdown(), encoding="utf-8")
    js = md.with_suffix(".json")
    js.write_text(json.dumps(comparison.to_json(), indent=2), encoding="utf-8")
    return md, js
