"""Validation gates with Great Expectations: suites per feature view and raw table, write-audit-publish,
results in ``monitoring.validation_results`` and Data Docs under the state folder."""

from featurelake.validation.gate import (
    GateResult,
    ValidationFailed,
    data_docs_index,
    resolve_target,
    validate,
    validate_all,
    validate_and_publish,
)

__all__ = [
    "GateResult",
    "ValidationFailed",
    "data_docs_index",
    "resolve_target",
    "validate",
    "validate_all",
    "validate_and_publish",
]
