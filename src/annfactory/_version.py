"""annfactory's version: at the bottom of the package, so that any module can name it
without importing the package root (which imports nearly everything)."""

__version__ = "0.1.0"
