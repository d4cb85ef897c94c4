"""Warehouse export to / import from a folder of JSON files."""
