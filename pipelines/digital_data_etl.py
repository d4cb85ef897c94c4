from zenml import pipeline

from steps.etl import crawl_links, get_or_create_user


@pipeline
def digital_data_etl(user_full_name: str, links: list[str]) -> None:
    """Crawl one author's links into the raw data warehouse."""
    user = get_or_create_user(user_full_name)
    crawl_links(user=user, links=links)
