"""The spec's ``mapping``: renames, drops, required attributes and the relational key templates."""

from __future__ import annotations

import re
from typing import Literal, Optional

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from .sides import Strict

CASTS = ("string", "number", "bool", "json", "iso", "epoch", "epoch_ms", "set", "binary")
_TEMPLATE_FIELD = re.compile(r"\{([^{}]*)\}")
_FIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_$]*)(?::(0\d+))?$")


def template_fields(template: str) -> list[tuple[str, int]]:
    """The columns a key template uses, with their zero-padding width: ``ORDER#{order_id:010}``."""
    out = []
    for m in _TEMPLATE_FIELD.finditer(template.replace("{{", "").replace("}}", "")):
        f = _FIELD.match(m.group(1))
        if not f:
            raise ValueError(f"template {template!r}: {{{m.group(1)}}} is not a column name (optionally :0N for "
                             "zero-padding); write {{ and }} for literal braces")
        out.append((f.group(1), int(f.group(2)) if f.group(2) else 0))
    return out


class TableMapping(Strict):
    """How the rows of one source table become items of the single target table."""

    partition_key: str = Field(description="template, e.g. 'CUSTOMER#{customer_id}'")
    sort_key: Optional[str] = Field(default=None, description="template, e.g. 'ORDER#{order_date}#{order_id:010}'")
    entity: Optional[str] = Field(default=None, description="value of mapping.type_attribute for this table's items")
    rename: dict[str, str] = Field(default_factory=dict, description="column -> attribute")
    drop: list[str] = Field(default_factory=list, description="columns not copied")
    casts: dict[str, str] = Field(default_factory=dict, description=f"column -> one of {', '.join(CASTS)}")
    computed: dict[str, str] = Field(default_factory=dict,
                                     description="attribute -> template (S); omitted when a column it uses is NULL")

    @field_validator("partition_key", "sort_key")
    @classmethod
    def _template(cls, v):
        if v is not None:
            template_fields(v)
        return v

    @field_validator("computed")
    @classmethod
    def _computed(cls, v):
        for t in v.values():
            template_fields(t)
        return v

    @field_validator("casts")
    @classmethod
    def _casts(cls, v):
        for col, c in v.items():
            if c not in CASTS:
                raise ValueError(f"cast {c!r} for column {col!r} is not one of {', '.join(CASTS)}")
        return v

    @model_validator(mode="after")
    def _no_clash(self):
        clash = set(self.rename) & set(self.drop)
        if clash:
            raise ValueError(f"columns both renamed and dropped: {sorted(clash)}")
        return self


class Mapping(Strict):
    """Per-record transform, applied identically at load, change apply and validation."""

    rename: dict[str, str] = Field(default_factory=dict, description="source attribute -> target attribute")
    drop: list[str] = Field(default_factory=list, description="source attributes not copied")
    required: list[str] = Field(default_factory=list, description="target attributes every item must have")
    tables: dict[str, TableMapping] = Field(
        default_factory=dict, description="mysql source: table -> key templates and attribute mapping (single-table design)")
    datetime_format: Literal["iso", "epoch", "epoch_ms"] = Field(
        default="iso", description="DATETIME/TIMESTAMP/DATE values (a per-column cast overrides)")
    nulls: Literal["omit", "null"] = Field(default="omit", description="NULL columns: left out of the item, or NULL")
    type_attribute: Optional[str] = Field(default=None, description="attribute naming each item's entity (table)")

    @model_validator(mode="after")
    def _no_clash(self):
        clash = set(self.rename) & set(self.drop)
        if clash:
            raise ValueError(f"attributes both renamed and dropped: {sorted(clash)}")
        targets = list(self.rename.values())
        dup = {t for t in targets if targets.count(t) > 1}
        if dup:
            raise ValueError(f"two attributes renamed to the same name: {sorted(dup)}")
        return self
