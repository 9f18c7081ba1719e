"""Task metrics: pure functions over predictions and references, shared by every evaluator."""
