"""Orchestration of training runs written against the ports (the embedder's training data and its evaluation)."""
