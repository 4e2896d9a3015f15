"""Errors that carry a message meant for the person running featurelake (no traceback needed)."""


class FeaturelakeError(Exception):
    """A problem the user can fix: bad input, configuration or definitions. The CLI prints it and exits 2."""


class ConfigError(FeaturelakeError):
    """Invalid or missing configuration."""


class InputError(FeaturelakeError):
    """Invalid user input: a parameter, an entity source, a date range, an identifier."""


class ServiceDown(FeaturelakeError):
    """A service featurelake needs (the metastore's database) is not reachable; the message names the command that
    starts it."""
