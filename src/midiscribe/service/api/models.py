"""GET /api/public/v1/models: the models this server offers, and whether each is installed here."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from midiscribe.core.registry import DEFAULT_MODEL, MODELS
from midiscribe.service.api.errors import ApiError
from midiscribe.service.api.openapi import error_responses
from midiscribe.service.api.schemas import ModelList
from midiscribe.service.api.state import require_key
from midiscribe.service.records.keys import ApiKey

router = APIRouter(tags=["models"])


def model_list() -> dict[str, Any]:
    """Every registry entry; ``installed`` is looked up without importing the model."""
    return {
        "success": True,
        "models": [
            {
                "name": spec.name,
                "description": spec.description,
                "default": spec.name == DEFAULT_MODEL,
                "installed": spec.installed(),
                "extra": spec.extra,
                "install_hint": spec.install_hint,
                "licence": spec.licence,
            }
            for spec in MODELS.values()
        ],
    }


def require_installed(name: str) -> None:
    """400 ``model_not_installed`` with the pip command when this server lacks the model's extra."""
    spec = MODELS[name]
    if not spec.installed():
        raise ApiError(
            400,
            "model_not_installed",
            f"model {name!r} is not installed on this server; its operator can add it with: {spec.install_hint}",
        )


@router.get(
    "/api/public/v1/models",
    response_model=ModelList,
    summary="The transcription models, whether each is installed, and their terms",
    responses=error_responses({}),
)
async def list_models(key: ApiKey = Depends(require_key)) -> Any:  # noqa: B008
    return model_list()
