"""The root of vgssl's named exceptions.

Every failure a user can cause (bad input, bad config, bad option) raises a subclass of `VgsslError` whose
message says what is wrong, where (file, line, utterance id) and how to fix it. The CLI prints that message
without a traceback and exits with status 2. Modules define their own subclasses next to the code that raises
them, e.g. `class UnknownVoiceError(VgsslError)` in the TTS module.
"""


class VgsslError(Exception):
    """Base class of every error vgssl raises on purpose."""


class BadOptionError(VgsslError):
    """A command-line option or argument has a value that cannot work."""


class OutputExistsError(VgsslError):
    """A command would overwrite an existing result; pass --overwrite to allow it."""
