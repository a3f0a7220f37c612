"""The base of every manifest model (`Model`): camelCase aliases in YAML, snake_case attributes
in Python, unknown fields refused, values frozen. Shared by `models.py` and the modules it
gathers (`hook_models.py`, `retention_models.py`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Model(BaseModel):
    """Base of every manifest model: camelCase aliases, unknown fields forbidden, frozen."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        alias_generator=to_camel,
        use_attribute_docstrings=True,
    )
