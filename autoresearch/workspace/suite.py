"""The fixed evaluation's files as pydantic models: the judge's rubric (weighted dimensions) and the task
suite (prompts and the deterministic checks on their answers); errors name file and field."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .reading import Strict, parse_model, read_mapping, refused

COUNT_CRITERIA = (
    "min_words", "max_words", "min_sections", "exact_sections", "min_numbered", "exact_numbered",
)
TEXT_CRITERIA = ("contains", "not_contains", "regex")
FLAG_CRITERIA = ("no_placeholders", "no_judge_address")
CRITERION_KINDS = COUNT_CRITERIA + TEXT_CRITERIA + FLAG_CRITERIA


def _not_blank(text: str) -> str:
    """text, or ValueError when it is only whitespace (a task the model gets no words of, a dimension the judge
    gets no description of)."""
    return refused(text, None if text.strip() else "is only whitespace")


# A dimension's name is a field of the judge's DSPy signature (pipeline/harness.py: judge_signature) and of the
# prediction it returns: it may not be one of the judge's own fields (the dimension would replace the task or the
# answer it reads, or the critique it writes), nor an attribute of DSPy's Signature or Prediction or of pydantic's
# BaseModel under them (refused by DSPy, or read back as a method instead of the score).
JUDGE_FIELDS = ("task", "answer", "critique")
RESERVED_DIMENSION_NAMES = frozenset({
    *JUDGE_FIELDS,
    "append", "append_instructions", "completions", "construct", "copy", "delete", "dict", "dump_state", "equals",
    "fields", "from_completions", "from_orm", "get", "get_lm_usage", "input_fields", "inputs", "insert",
    "instructions", "items", "json", "keys", "labels", "load_state", "mro", "output_fields", "parse_file",
    "parse_obj", "parse_raw", "prepend", "register", "schema", "schema_json", "set_lm_usage", "signature",
    "update_forward_refs", "validate", "values", "with_inputs", "with_instructions", "with_updated_fields", "without",
    "model_computed_fields", "model_config", "model_construct", "model_copy", "model_dump", "model_dump_json",
    "model_extra", "model_fields", "model_fields_set", "model_json_schema", "model_parametrized_name",
    "model_post_init", "model_rebuild", "model_validate", "model_validate_json", "model_validate_strings",
})


def dimension_name_problem(name: str) -> str | None:
    """Why a rubric dimension cannot take this name (it would clash with the judge's fields); None when it can."""
    if name in RESERVED_DIMENSION_NAMES:
        return (f"{name!r} is reserved by the judge ({', '.join(JUDGE_FIELDS)}, and the names DSPy and pydantic "
                "use): rename the dimension")
    return None


class Dimension(Strict):
    name: str = Field(min_length=1, pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=1)
    weight: float = Field(gt=0.0, le=100.0)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        return refused(name, dimension_name_problem(name))

    @field_validator("description")
    @classmethod
    def _described(cls, text: str) -> str:
        return _not_blank(text)


class Rubric(Strict):
    """Judge dimensions with weights; each dimension is scored 0–10."""

    dimensions: list[Dimension] = Field(min_length=1)

    @field_validator("dimensions")
    @classmethod
    def _unique_names(cls, dims: list[Dimension]) -> list[Dimension]:
        names = [d.name for d in dims]
        if len(set(names)) != len(names):
            raise ValueError("dimension names must be unique")
        return dims


class Criterion(Strict):
    """One deterministic check on the producer's output."""

    kind: str
    value: int | str | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _integer_or_string(cls, value: Any) -> Any:
        # Lax int parsing would silently turn `value = true` into 1 and `value = 2.0` into 2.
        if isinstance(value, bool) or not isinstance(value, (int, str, type(None))):
            raise ValueError("must be an integer or a string")
        return value

    @model_validator(mode="after")
    def _value_fits_kind(self) -> "Criterion":
        if self.kind not in CRITERION_KINDS:
            raise ValueError(f"unknown criterion kind {self.kind!r}; one of {', '.join(CRITERION_KINDS)}")
        if self.kind in COUNT_CRITERIA and (not isinstance(self.value, int) or self.value < 0):
            raise ValueError(f"{self.kind} needs a non-negative integer value")
        if self.kind in TEXT_CRITERIA and (not isinstance(self.value, str) or not self.value):
            raise ValueError(f"{self.kind} needs a non-empty string value")
        if self.kind == "regex":
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"invalid regex {self.value!r}: {exc}") from None
        if self.kind in FLAG_CRITERIA and self.value is not None:
            raise ValueError(f"{self.kind} takes no value")
        return self

    def describe(self) -> str:
        return self.kind if self.value is None else f"{self.kind} {self.value}"


class Task(Strict):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    split: Literal["search", "holdout"] = "search"
    prompt: str = Field(min_length=1)
    criteria: list[Criterion] = Field(min_length=1)

    @field_validator("prompt")
    @classmethod
    def _prompted(cls, text: str) -> str:
        return _not_blank(text)


class TaskSuite(Strict):
    tasks: list[Task] = Field(min_length=1)

    # A field validator, not a model validator, so the ConfigError names the field `tasks`.
    @field_validator("tasks")
    @classmethod
    def _sane_split(cls, tasks: list[Task]) -> list[Task]:
        ids = [t.id for t in tasks]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"task ids must be unique; repeated: {', '.join(duplicated)}")
        if not any(t.split == "search" for t in tasks):
            raise ValueError("at least one task must have split = 'search'")
        return tasks

    def split(self, name: str) -> list[Task]:
        return [t for t in self.tasks if t.split == name]


def load_rubric(path: Path) -> Rubric:
    return parse_model(Rubric, read_mapping(path), path)


def load_tasks(path: Path) -> TaskSuite:
    return parse_model(TaskSuite, read_mapping(path), path)
