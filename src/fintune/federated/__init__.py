"""Federated LoRA on Flower: clients train the LLM recipe on their own data, only adapter arrays travel."""
