"""The raw data warehouse: pymongo against MongoDB or the embedded nx-27017 wire server."""
