"""From tuned embeddings to answers: LangChain embeddings, vector stores, indexing, search and RAG."""
