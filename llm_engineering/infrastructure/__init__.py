"""Concrete adapters: databases, models, LLM clients, web app, local service managers."""
