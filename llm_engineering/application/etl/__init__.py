"""Data collection: crawl an author's links into the raw warehouse."""
