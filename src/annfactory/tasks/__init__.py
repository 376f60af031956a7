"""Tasks that ``scripts/run.py`` dispatches to, one module each."""
