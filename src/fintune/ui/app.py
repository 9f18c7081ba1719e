"""The Gradio app: tabs Playground, Search, Train, Evaluate (and Deployments with a server).

Nothing heavy happens at start-up: models, stores and data load on first use, so the page answers
within seconds of `fintune ui`."""

from __future__ import annotations

import gradio as gr

from fintune.ui import deployments, evaluate, playground, search, train

TITLE = "fintune"
TABS = ("Playground", "Search", "Train", "Evaluate")


def build_app(server: str | None = None) -> gr.Blocks:
    """The whole page; `server`: a fintune task service URL, which adds the Deployments tab."""
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown("# fintune: try, search, train and compare financial models")
        with gr.Tab("Playground"):
            playground.build_tab(demo)
        with gr.Tab("Search"):
            search.build_tab()
        with gr.Tab("Train"):
            train.build_tab(demo, server)
        with gr.Tab("Evaluate"):
            evaluate.build_tab()
        if server:
            with gr.Tab("Deployments"):
                deployments.build_tab(server)
    return demo
