"""Errors that carry what a user needs to act: which link, which file, which setting."""


class LLMTwinError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigurationError(LLMTwinError):
    """A setting or config file is missing or invalid."""


class CrawlError(LLMTwinError):
    """One link could not be crawled. Never stops the other links."""

    def __init__(self, link: str, reason: str) -> None:
        self.link = link
        self.reason = reason
        super().__init__(f"{link}: {reason}")


class BotWallError(CrawlError):
    """The site answered with an anti-bot challenge instead of the content."""


class AuthRequiredError(CrawlError):
    """The content is behind a login and no (valid) credentials were configured."""


class BrowserError(LLMTwinError):
    """The browser failed while a page was open (crashed, window closed, script error)."""


class ServiceUnavailableError(LLMTwinError):
    """A backing service (warehouse, vector store, LLM) could not be reached, refused us, or did not start.

    `dependency` names it ("warehouse", "vector_store", "llm") for the API's 503 body and `/ready`."""

    def __init__(self, message: str, dependency: str | None = None) -> None:
        super().__init__(message)
        self.dependency = dependency


class InputTooLargeError(LLMTwinError):
    """A request is valid in form but too large for the model (e.g. a question beyond its token limit)."""


class ConflictError(LLMTwinError):
    """A write would break a uniqueness rule of the warehouse (an id or link already used by another record)."""


class ImportFormatError(LLMTwinError):
    """A warehouse import file is malformed. Names the file and, when known, the record index."""

    def __init__(self, path: str, reason: str, index: int | None = None) -> None:
        self.path = path
        self.index = index
        self.reason = reason
        where = f"{path} record #{index}" if index is not None else path
        super().__init__(f"{where}: {reason}")


class LLMUnavailableError(ServiceUnavailableError):
    """The LLM endpoint could not be reached or answered with an error."""


class LLMTimeoutError(LLMUnavailableError):
    """The LLM endpoint did not answer within the timeout."""


class LLMRequestError(LLMTwinError):
    """The LLM endpoint rejected the request itself (4xx other than 408/429): a bug or a bad parameter."""


class UnknownAuthorError(LLMTwinError):
    """A request asked for an author the warehouse does not know (never created on the fly)."""

    def __init__(self, author: str, known: list[str] | tuple[str, ...]) -> None:
        self.author = author
        self.known = list(known)
        shown = ", ".join(self.known[:20]) or "none yet"
        super().__init__(f"unknown author {author!r}; known authors: {shown}")
