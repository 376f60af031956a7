"""``python -m annfactory``: the same command as ``annfactory`` and scripts/run.py."""

from annfactory.run import main

if __name__ == "__main__":
    main("python -m annfactory")
