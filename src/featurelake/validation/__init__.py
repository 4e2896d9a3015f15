"""Validation gates with Great Expectations: suites per feature view and raw table, write-audit-publish,
results in ``monitoring.validation_results`` and Data Docs under the state folder."""

from featurelake.validation.gate import (
    GateResult,
    ValidationFailed,
    data_docs_index,
    gate,
    import_in_background,
    resolve_target,
    validate,
    validate_all,
)

__all__ = [
    "GateResult",
    "ValidationFailed",
    "data_docs_index",
    "gate",
    "import_in_background",
    "resolve_target",
    "validate",
    "validate_all",
]
