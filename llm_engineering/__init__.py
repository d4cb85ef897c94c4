"""LLM Twin: the library behind the pipelines, steps, tools and services.

Importing this package (or any module in it) has no side effects: no connections, downloads or model loads.
"""

__version__ = "0.1.0"
