"""`fintune ui` in a real headless Chromium (Debian's package, no browser download): the page and its tabs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import random_lora_adapter
from tests.integration.ui.browser import CHROMIUM, CHROMIUM_ARGS, TABLE_ROWS, browser_page, table_rows
from tests.unit.ui.conftest import free_port

pytestmark = pytest.mark.slow

SENTIMENT = ("negative", "neutral", "positive")
START_BUDGET_S = 60  # the promise: HTTP 200 on / within a minute of `fintune ui`


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory):
    """`fintune ui --port P` as a user starts it; the URL once `/` answers 200."""
    port = free_port()
    env = os.environ | {"FINTUNE_HOME": str(tmp_path_factory.mktemp("home"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "fintune", "ui", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + START_BUDGET_S
    try:
        while True:
            assert process.poll() is None, f"fintune ui exited with {process.returncode}"
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"no HTTP 200 on {url} within {START_BUDGET_S} s"
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def test_the_page_shows_the_four_tabs(ui_server, tmp_path) -> None:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (CI installs it)")
    from playwright.sync_api import expect, sync_playwright

    artefacts = Path(os.environ.get("FINTUNE_TEST_ARTEFACTS") or tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context()
        context.tracing.start(screenshots=True, snapshots=True)
        page = context.new_page()
        try:
            page.goto(ui_server)
            for name in ("Playground", "Search", "Train", "Evaluate"):
                expect(page.get_by_role("tab", name=name)).to_be_visible(timeout=30_000)
            expect(page.get_by_role("tab", name="Deployments")).to_have_count(0)  # only with --server
            page.get_by_role("tab", name="Train").click()
            expect(page.get_by_role("button", name="Stop")).to_be_visible()
            artefacts.mkdir(parents=True, exist_ok=True)
            for name in ("Playground", "Search", "Train", "Evaluate"):  # the README's pictures of each tab
                page.get_by_role("tab", name=name).click()
                page.screenshot(path=str(artefacts / f"ui-{name.lower()}.png"))
        except Exception:
            artefacts.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(artefacts / "ui-failure.png"))
            context.tracing.stop(path=str(artefacts / "ui-trace.zip"))
            raise
        finally:
            browser.close()


def test_train_shows_progress_reattaches_after_a_reload_and_stop_leaves_nothing(ui_server, tmp_path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.unit.conftest import build_tiny_bert
    from tests.unit.ui.conftest import tiny_beir_folder

    tiny_bert_dir = build_tiny_bert(tmp_path / "tiny_bert")  # mechanics only: a real model would just be slower

    beir, output = tiny_beir_folder(tmp_path / "beir"), tmp_path / "out"
    artefacts = Path(os.environ.get("FINTUNE_TEST_ARTEFACTS") or tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        try:
            page.goto(ui_server)
            page.get_by_role("tab", name="Train").click()
            page.get_by_label("data (BEIR folder").fill(str(beir))
            page.get_by_label("output folder").fill(str(output))
            page.get_by_label("overrides").fill(f"--model {tiny_bert_dir} --no-eval --epochs 50 --batch-size 8")
            page.get_by_role("button", name="Start").click()
            job = page.get_by_label("job")
            expect(job).not_to_have_value("", timeout=15_000)
            job_id = job.input_value()
            expect(page.get_by_text("running · step")).to_be_visible(timeout=90_000)
            expect(page.get_by_text("/100")).to_be_visible(timeout=30_000)  # 50 epochs x 2 batches
            page.reload()  # the job runs on; the new page re-attaches to it
            page.get_by_role("tab", name="Train").click()
            expect(page.get_by_label("job")).to_have_value(job_id, timeout=15_000)
            page.screenshot(path=str(artefacts / "ui-train-running.png"))
            page.get_by_role("button", name="Stop").click()
            expect(page.get_by_text('"process_gone": true')).to_be_visible(timeout=30_000)
            expect(page.get_by_text('"output_exists": false')).to_be_visible()
            expect(page.get_by_text("stopped · step")).to_be_visible(timeout=10_000)
        except Exception:
            artefacts.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(artefacts / "ui-train-failure.png"))
            raise
        finally:
            browser.close()
    assert not output.exists() and not list(tmp_path.glob(".out.tmp-*"))


@pytest.fixture(scope="module")
def random_adapter(tmp_path_factory) -> Path:
    """A LoRA adapter on SmolLM2 with random non-zero weights (peft's init_lora_weights=False): a "tuned" model
    that answers differently from the base without a training run (the table's mechanics, not its quality)."""
    folder = tmp_path_factory.mktemp("ui_adapter") / "fpb-random-lora"
    random_lora_adapter("smollm2", folder, target_modules=["q_proj", "v_proj"], lora_alpha=64)
    return folder


def test_an_fpb_dev_sentence_is_answered_by_base_and_tuned_side_by_side(
    ui_server, random_adapter, fpb_dev_rows, tmp_path
) -> None:
    from playwright.sync_api import expect

    from fintune.metrics.classification import first_label

    first = fpb_dev_rows[0]  # the Playground's example 0: the first sentence of the fpb dev split
    artefacts = Path(os.environ.get("FINTUNE_TEST_ARTEFACTS") or tmp_path)
    with browser_page(artefacts, "ui-playground-failure") as page:
        page.goto(ui_server)
        page.get_by_label("example from the dev split").click()
        page.get_by_role("option", name=f"0: {first['text'][:40]}", exact=False).first.click()
        expect(page.get_by_label("input: a prompt")).to_have_value(re.compile(re.escape(first["text"])))
        expect(page.get_by_label("gold answer")).to_have_value(first["label"])
        page.get_by_label("adapter folders").fill(str(random_adapter))
        page.get_by_role("button", name="Answer").click()
        expect(page.locator(TABLE_ROWS)).to_have_count(2, timeout=180_000)  # two models loaded and asked on 2 cores
        shown = table_rows(page)
        assert [r[0] for r in shown] == ["base (default)", str(random_adapter)]
        for _, answer, parsed, gold, correct, latency in shown:  # llm eval's parsing of each model's answer
            assert (parsed or "(no label)") == (first_label(answer, SENTIMENT) or "(no label)"), answer
            assert gold == first["label"] and correct == ("✓" if parsed == gold else "✗")
            assert float(latency) > 0
        page.screenshot(path=str(artefacts / "ui-playground-answers.png"))


@pytest.fixture(scope="module")
def tenk_store(tmp_path_factory, beir_slice) -> tuple[Path, str, str]:
    """A store of 10-K passages embedded by MiniLM: the passages of 5 dev questions and 95 others (as
    `fintune index` builds it); with one dev question and the id of its passage."""
    from fintune.retrieval.corpus import read_corpus
    from fintune.retrieval.index import index_corpus
    from fintune.retrieval.stores import open_store

    root = tmp_path_factory.mktemp("ui_tenk")
    qrels = [line.split("\t") for line in (beir_slice / "qrels" / "dev.tsv").read_text().splitlines()[1:]]
    relevant = {d for _, d, _ in qrels[:5]}
    lines = (beir_slice / "corpus.jsonl").read_text().splitlines()
    picked = [ln for ln in lines if json.loads(ln)["_id"] in relevant]
    picked += [ln for ln in lines if json.loads(ln)["_id"] not in relevant][:95]
    (root / "corpus.jsonl").write_text("\n".join(picked) + "\n")
    store = open_store(str(root / "store"))
    try:
        index_corpus(store, "tenk", read_corpus(root / "corpus.jsonl"), model="minilm", progress=False)
    finally:
        store.close()
    queries = {json.loads(ln)["_id"]: json.loads(ln)["text"] for ln in (beir_slice / "queries.jsonl").open()}
    query_id, doc_id = qrels[0][0], qrels[0][1]
    return root / "store", queries[query_id], doc_id


def test_a_10k_question_shows_ranked_passages_as_the_library_ranks_them(ui_server, tenk_store, tmp_path) -> None:
    from playwright.sync_api import expect

    from fintune.retrieval.search import open_collection
    from fintune.retrieval.stores import open_store

    store_folder, question, gold_id = tenk_store
    opened = open_store(str(store_folder))
    try:  # what `fintune search --store S --collection tenk` returns for the question
        expected = [h.id for h in open_collection(opened, "tenk").search([question], 10)[0]]
    finally:
        opened.close()
    assert gold_id in expected  # MiniLM finds this question's passage in its top 10

    artefacts = Path(os.environ.get("FINTUNE_TEST_ARTEFACTS") or tmp_path)
    with browser_page(artefacts, "ui-search-failure") as page:
        page.goto(ui_server)
        page.get_by_role("tab", name="Search").click()
        page.get_by_label("store (folder").fill(str(store_folder))
        page.get_by_role("button", name="List collections").click()
        expect(page.get_by_label("collection", exact=True)).to_have_value("tenk", timeout=30_000)
        page.get_by_label("query or question").fill(question)
        page.get_by_role("button", name="Search", exact=True).click()
        expect(page.locator(TABLE_ROWS)).to_have_count(10, timeout=90_000)
        shown = table_rows(page)
        assert [r[1] for r in shown] == expected
        assert [r[0] for r in shown] == [str(i) for i in range(1, 11)]
        assert all(float(r[2]) > 0 and r[3] for r in shown)  # a cosine score and the passage's text
        page.screenshot(path=str(artefacts / "ui-search-results.png"))
