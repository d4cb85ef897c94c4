from .steps import chunk_embed_load, clean_documents, plan_features, query_data_warehouse

__all__ = ["chunk_embed_load", "clean_documents", "plan_features", "query_data_warehouse"]
