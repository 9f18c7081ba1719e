"""RAG evaluation and the RAG answering task: retrieve, answer from passages with citations, or refuse."""
