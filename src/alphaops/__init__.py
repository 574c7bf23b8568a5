"""alphaops: the whole life of the machine-learning models behind trading bots."""

from alphaops._version import __version__

__all__ = ["__version__"]
