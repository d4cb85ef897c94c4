from typing import Annotated

from loguru import logger
from zenml import log_metadata, step

from llm_engineering.domain.documents import UserDocument
from llm_engineering.wiring import get_container


@step
def get_or_create_user(user_full_name: str) -> Annotated[UserDocument, "user"]:
    user, created = get_container().warehouse.get_or_create_user(user_full_name)
    logger.info(f"{'Created' if created else 'Found'} user {user.full_name} ({user.id})")
    log_metadata(metadata={"user": {"full_name": user.full_name, "id": str(user.id), "created": created}})
    return user
