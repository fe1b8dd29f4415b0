"""``python -m neuroseg``: the same as the ``neuroseg`` command (:mod:`neuroseg.cli`)."""

from neuroseg.cli import main

if __name__ == "__main__":
    main()
