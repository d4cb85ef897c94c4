from .crawl_links import crawl_links
from .get_or_create_user import get_or_create_user
from .import_archives import import_archives

__all__ = ["crawl_links", "get_or_create_user", "import_archives"]
