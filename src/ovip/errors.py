"""Errors every layer of ovip may raise; this module imports nothing of ovip."""


class ConfigError(ValueError):
    """A bad config key or value; the message is one line that names the key."""
