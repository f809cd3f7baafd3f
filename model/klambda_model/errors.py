"""The resource model's exceptions."""

from __future__ import annotations


class ModelError(Exception):
    """Base of every error raised by klambda_model."""


class ValidationError(ModelError):
    """One or more documents are invalid; ``errors`` lists every problem, each prefixed by
    the document and the field path."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        count = len(self.errors)
        head = f"{count} validation error{'s' if count != 1 else ''}"
        super().__init__(head + ":\n" + "\n".join(f"  - {e}" for e in self.errors))
