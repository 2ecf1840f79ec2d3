"""The error every user-facing check raises.

Its own module so that the lowest layers (the registry of names a config may choose from, the
config schema) can raise it without importing one another.
"""


class ConfigError(ValueError):
    """A user's configuration is wrong; the message is one line naming the field."""
