"""vgssl: visually grounded, multilingual self-supervised speech learning."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vgssl")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
