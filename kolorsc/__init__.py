"""kolorsc: a declarative story compiler for the Kolors text-to-image model."""

__version__ = "0.1.0"
