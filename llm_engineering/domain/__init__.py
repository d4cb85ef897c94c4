"""Pure domain: pydantic models and enums. Imports no database, no model, no network."""
