from enum import StrEnum


class DataCategory(StrEnum):
    """A kind of raw document; each maps to one warehouse collection of the same name."""

    USERS = "users"
    ARTICLES = "articles"
    POSTS = "posts"
    REPOSITORIES = "repositories"


DOCUMENT_CATEGORIES: tuple[DataCategory, ...] = (
    DataCategory.ARTICLES,
    DataCategory.POSTS,
    DataCategory.REPOSITORIES,
)


class Platform(StrEnum):
    MEDIUM = "medium"
    SUBSTACK = "substack"
    LINKEDIN = "linkedin"
    GITHUB = "github"
    BLOG = "blog"  # any other web page read by the generic article crawler

    @classmethod
    def normalize(cls, value: str) -> "Platform":
        """Map a platform name or host ('medium', 'decodingml.substack.com', 'www.linkedin.com') to a Platform."""
        lowered = (value or "").strip().lower()
        for platform in (cls.MEDIUM, cls.SUBSTACK, cls.LINKEDIN, cls.GITHUB):
            if platform.value in lowered:
                return platform
        return cls.BLOG


class UpsertOutcome(StrEnum):
    """What storing one document did; a re-run of the same input gives only UNCHANGED."""

    INSERTED = "inserted"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
