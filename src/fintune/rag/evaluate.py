"""`fintune rag eval`: retrieve once per question, let every answerer answer from the same passages, score.

Answerers: the extractive baseline, the base LLM, and the tuned adapter when given. Each question is
retrieved once (k plus its judged passages, see `refusal`), so answerers differ only in how they answer;
a question's latency is its retrieval time plus the answerer's own time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tqdm.auto import tqdm

from fintune.data.beir import is_beir_folder, load_beir, splits_of
from fintune.data.errors import DataError, RecordError
from fintune.data.readers import read_jsonl
from fintune.errors import InputNotFoundError, UsageError
from fintune.rag.extractive import extractive_answer
from fintune.rag.refusal import REFUSAL_SHARE, SEED, retrieval_depth, shown_passages, withheld
from fintune.rag.scoring import QuestionScore, aggregate, score_question
from fintune.retrieval.ask import MIN_SCORE, Answer, Answerer, refusal_cut
from fintune.retrieval.catalog import StoreError
from fintune.retrieval.hybrid import HybridSettings
from fintune.retrieval.prompt import NOT_FOUND
from fintune.retrieval.rerank import DEPTH as RERANK_DEPTH
from fintune.retrieval.rerank import Reranker
from fintune.retrieval.search import Searcher
from fintune.retrieval.stores.base import Hit

log = logging.getLogger(__name__)

AnswerFn = Callable[[str, list[Hit]], Answer]
PRIMARY_ORDER = ("adapter", "base", "extractive")  # the top-level metrics are the first answerer present


@dataclass(frozen=True)
class EvalQuestion:
    qid: str
    text: str
    answer: str | None  # the gold answer, if any
    judged: tuple[str, ...]  # ids of the passages that answer it (empty: scored on answers only)


@dataclass
class RagSettings:
    k: int = 4  # passages shown to each answerer (`fintune ask`'s default)
    refusal_share: float = REFUSAL_SHARE
    seed: int = SEED
    min_score: float = MIN_SCORE  # the LLM answerers' guard, as in `fintune ask`
    # the LLM answerers refuse when refusing is this likely; None: never; "auto": None behind `reranker`'s
    # gate, else REFUSAL_PROBABILITY (see ask.llm_refusal_probability)
    refusal_probability: float | Literal["auto"] | None = "auto"
    max_new_tokens: int = 96
    bertscore_encoder: str | None = "minilm"  # None: no BERTScore
    hybrid: HybridSettings | None = None  # fuse keyword search with the vector search (as `ask` can)
    reranker: Reranker | None = None  # reorders `rerank_depth` candidates; below its threshold every answerer refuses
    rerank_depth: int = RERANK_DEPTH
    check_citations: bool = True  # the LLM answerers cite the passage holding most of the answer's words


@dataclass
class RagRun:
    scores: dict[str, list[QuestionScore]] = field(default_factory=dict)  # answerer -> one per question
    predictions: list[dict[str, Any]] = field(default_factory=list)  # one row per question per answerer


def read_questions(path: str | Path, split: str | None = None) -> tuple[list[EvalQuestion], str]:
    """Questions from a BEIR folder (the judged queries of `split`, default dev) or a JSONL file of
    `{_id, text, answer?, relevant?}` (`relevant`: a passage id or a list of them)."""
    path = Path(path)
    if is_beir_folder(path):
        splits = splits_of(path)
        chosen = split or ("dev" if "dev" in splits else None)
        if chosen is None:
            raise UsageError(f"{path}: give --split (have: {', '.join(splits)})")
        data = load_beir(path, chosen)
        questions = [
            EvalQuestion(q, data.queries[q], _gold(data.query_fields[q].get("answer")), tuple(data.qrels[q]))
            for q in data.qrels
        ]
        return questions, f"{path} ({chosen})"
    if not path.is_file():
        raise InputNotFoundError(f"{path}: no such query file or BEIR folder")
    if split:
        raise UsageError(f"--split needs a BEIR folder; {path} is a file")
    return _jsonl_questions(path), str(path)


def _gold(value: Any) -> str | None:
    return str(value).strip() or None if value is not None else None


def _jsonl_questions(path: Path) -> list[EvalQuestion]:
    questions: list[EvalQuestion] = []
    errors: list[RecordError] = []
    for item in read_jsonl(path):
        if isinstance(item, RecordError):
            errors.append(item)
            continue
        rec = item.value
        qid = rec.get("_id", rec.get("id")) if isinstance(rec, dict) else None
        text = rec.get("text") if isinstance(rec, dict) else None
        relevant = rec.get("relevant", []) if isinstance(rec, dict) else []
        relevant = [relevant] if isinstance(relevant, str) else relevant
        if not isinstance(rec, dict):
            errors.append(RecordError(path, item.line, None, "expected an object"))
        elif qid is None or str(qid) == "":
            errors.append(RecordError(path, item.line, "_id", "missing field"))
        elif not isinstance(text, str) or not text.strip():
            errors.append(RecordError(path, item.line, "text", "missing or empty question"))
        elif not isinstance(relevant, list) or not all(isinstance(r, str) for r in relevant):
            errors.append(RecordError(path, item.line, "relevant", "expected a passage id or a list of them"))
        else:
            questions.append(EvalQuestion(str(qid), text, _gold(rec.get("answer")), tuple(relevant)))
    if errors:
        raise DataError(errors)
    if not questions:
        raise DataError([RecordError(path, 1, None, "no questions")])
    return questions


def check_collection(searcher: Searcher, questions: list[EvalQuestion], source: str) -> None:
    """Refuse an empty collection, and one that holds none of the judged passages (another corpus)."""
    store, name = searcher.store, searcher.info.name
    if store.count(name) == 0:
        raise StoreError(f"collection {searcher.info.logical!r} in {store.display} is empty: index a corpus first")
    judged = sorted({j for q in questions for j in q.judged})
    if not judged:
        return
    present = store.hashes(name, judged)
    if not present:
        raise StoreError(
            f"collection {searcher.info.logical!r} holds none of the {len(judged)} passages judged in {source}: "
            "the questions belong to another corpus"
        )
    if len(present) < len(judged):
        log.warning("%d of %d judged passages are not in the collection", len(judged) - len(present), len(judged))


def check_adapter_base(adapter: str, llm: str | None) -> None:
    """An adapter only fits the base it was trained on; one of the same shape would load and talk nonsense."""
    from fintune.llm.model import adapter_base
    from fintune.models.resolve import model_key

    trained_on = adapter_base(adapter)
    if llm and trained_on and model_key(trained_on) != model_key(llm):
        raise UsageError(f"adapter {adapter} was trained on base model {trained_on!r}, not {llm!r}: drop --llm")


def llm_answerers(
    searcher: Searcher, llm: str | None, adapter: str | None, settings: RagSettings
) -> dict[str, AnswerFn]:
    """The base LLM (the adapter's base when one is given) and the adapter, as `fintune ask` builds them."""
    base_name = llm
    if adapter:
        from fintune.llm.model import adapter_base

        check_adapter_base(adapter, llm)
        base_name = llm or adapter_base(adapter)
    out: dict[str, AnswerFn] = {}
    for name, folder in (("base", None), ("adapter", adapter)):
        if name == "base" or folder:
            answerer = Answerer(
                searcher,
                base_name,
                folder,
                settings.k,
                settings.min_score,
                settings.max_new_tokens,
                hybrid=settings.hybrid,
                # the answerers stand behind the evaluation's gate, not their own (see evaluate_rag)
                refusal_probability=refusal_cut(settings.refusal_probability, settings.reranker),
                check_citations=settings.check_citations,
            )
            answerer._load()  # now, not inside the first question's latency
            out[name] = answerer.answer_hits
    return out


def evaluate_rag(
    searcher: Searcher,
    questions: list[EvalQuestion],
    answerers: dict[str, AnswerFn],
    settings: RagSettings,
    progress: bool = True,
) -> RagRun:
    k = settings.k
    removed = withheld([q.qid for q in questions if q.judged], settings.refusal_share, settings.seed)
    run = RagRun({name: [] for name in answerers})
    if questions:  # warm the query encoder: the first question's latency should not include loading it
        searcher.search([questions[0].text], 1, hybrid=settings.hybrid)
    for q in tqdm(questions, desc="rag eval", unit="q", disable=not progress):
        start = time.perf_counter()
        hits = _retrieve(searcher, q, settings)
        shown = shown_passages(hits, q.judged, k, q.qid in removed)
        gate = settings.reranker.unanswerable_note(shown) if settings.reranker else None
        retrieval_ms = 1000 * (time.perf_counter() - start)
        for name, answer_fn in answerers.items():
            start = time.perf_counter()
            # the reranker's gate is part of retrieval: every answerer refuses on the same questions
            answer = Answer(q.text, NOT_FOUND, False, [], False, shown, [gate]) if gate else answer_fn(q.text, shown)
            latency = retrieval_ms + 1000 * (time.perf_counter() - start)
            written = [] if answer.attributed else answer.citations  # only citations the answerer wrote count
            score = score_question(
                q.qid,
                answer.answer,
                not answer.found,
                written,
                q.judged,
                [h.id for h in shown],
                [h.id for h in hits[:k]],
                q.answer,
                latency,
            )
            run.scores[name].append(score)
            run.predictions.append(_prediction_row(name, q, q.qid in removed, answer, score))
    return run


def _retrieve(searcher: Searcher, q: EvalQuestion, settings: RagSettings) -> list[Hit]:
    """The ranked candidates: k plus the judged passages (see `refusal`), or with a reranker its depth
    (plus the judged ones) reordered by it."""
    depth = retrieval_depth(settings.k, q.judged)
    if settings.reranker:
        depth = max(depth, retrieval_depth(settings.rerank_depth, q.judged))
    hits = searcher.search([q.text], depth, hybrid=settings.hybrid)[0]
    return settings.reranker.rerank(q.text, hits) if settings.reranker else hits


def _prediction_row(name: str, q: EvalQuestion, removed: bool, answer: Answer, score: QuestionScore) -> dict[str, Any]:
    return {
        "answerer": name,
        "query_id": q.qid,
        "question": q.text,
        "withheld": removed,
        "judged": list(q.judged),
        "passages": [h.id for h in answer.passages],
        "answer": answer.answer,
        "citations": answer.citations,
        "citations_attributed": answer.attributed,
        "citations_recited": answer.recited,
        "notes": answer.notes,
        **{key: value for key, value in score.as_dict().items() if key != "qid"},
    }


def report(run: RagRun, settings: RagSettings, source: str) -> dict[str, Any]:
    """Top level: the adapter's metrics (else the base's); `baselines`: extractive and base; a verdict."""
    per = {name: aggregate(scores, settings.bertscore_encoder) for name, scores in run.scores.items()}
    for name, metrics in per.items():  # answers whose citation the answerer replaced (ask.check_citation)
        metrics["citations_recited"] = sum(r["citations_recited"] for r in run.predictions if r["answerer"] == name)
    primary = next(name for name in PRIMARY_ORDER if name in per)
    return {
        "answerer": primary,
        "queries": source,
        "k": settings.k,
        "refusal_share": settings.refusal_share,
        "seed": settings.seed,
        **_reranker_fields(settings),
        **per[primary],
        "baselines": {name: metrics for name, metrics in per.items() if name in ("extractive", "base")},
        **verdict(primary, per),
    }


def _reranker_fields(settings: RagSettings) -> dict[str, Any]:
    if settings.reranker is None:
        return {}
    return {"reranker": str(settings.reranker.path), "answerable_threshold": settings.reranker.threshold,
            "rerank_depth": settings.rerank_depth}  # fmt: skip


def verdict(primary: str, per: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Does the LLM answer beat the extractive baseline on token F1? If not, it is not worth the wait."""
    if primary == "extractive" or "extractive" not in per:
        return {}
    mine, theirs = per[primary]["token_f1"], per["extractive"]["token_f1"]
    if mine is None or theirs is None:
        return {"beats_extractive": None, "verdict": "no answerable question with a gold answer to compare on"}
    beats = mine > theirs
    slower = per[primary]["latency_ms_p50"] / max(per["extractive"]["latency_ms_p50"], 1e-9)
    text = (
        f"{primary} beats the extractive baseline on token F1 ({mine:.3f} vs {theirs:.3f}) at {slower:.0f}x its latency"
        if beats
        else f"{primary} does not beat the extractive baseline on token F1 ({mine:.3f} vs {theirs:.3f}) and is "
        f"{slower:.0f}x slower: not worth the wait"
    )
    return {"beats_extractive": beats, "verdict": text}


def extractive_answerer() -> dict[str, AnswerFn]:
    return {"extractive": extractive_answer}
