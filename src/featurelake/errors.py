"""Errors that carry a message meant for the person running featurelake (no traceback needed)."""


class FeaturelakeError(Exception):
    """A problem the user can fix: bad input, configuration or definitions. The CLI prints it and exits 2."""


class ConfigError(FeaturelakeError):
    """Invalid or missing configuration."""


class InputError(FeaturelakeError):
    """Invalid user input: a parameter, an entity source, a date range, an identifier."""


def run_job(main) -> None:  # noqa: ANN001 - any jobs/ main()
    """Run a ``jobs/`` entry point: a FeaturelakeError ends it with its message on stderr and exit code 2."""
    import sys

    try:
        code = main()
    except FeaturelakeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)
