"""annfactory's command line in a clone of the repository.

    python scripts/run.py model=demo
    python scripts/run.py --help

The same Hydra application as the installed ``annfactory`` command and
``python -m annfactory`` (see ``annfactory.run``); this file only starts it.
"""

from annfactory.run import main

if __name__ == "__main__":
    main("python scripts/run.py")
