"""The error the acoustic transforms raise for unusable audio or segments (bad options: config.py)."""

from vgssl.errors import VgsslError


class AcousticsInputError(VgsslError):
    """Audio, noise or segments passed to an acoustic transform cannot be used as they are."""
