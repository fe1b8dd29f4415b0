"""``python -m neuroseg.data`` (what ``make data`` runs): check every dataset in ``NEUROSEG_DATA``.

For each dataset missing it says which and where it comes from; with ``--download`` it fetches
and converts the missing ones from their public sources first (needs internet).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from neuroseg import paths
from neuroseg.data.catalogue import CHECKSUMS_FILE, DATASETS, status
from neuroseg.data.download import fetch_missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--download",
        action="store_true",
        help="download each missing dataset from its public source and convert it (needs internet)",
    )
    args = parser.parse_args(argv)
    if args.download and os.environ.get("NEUROSEG_DATA"):
        Path(os.environ["NEUROSEG_DATA"]).expanduser().mkdir(parents=True, exist_ok=True)
    try:
        root = paths.data_root()
    except paths.DataRootError as err:
        print(f"error: {err}", file=sys.stderr)
        print("Datasets the study needs:", file=sys.stderr)
        for d in DATASETS.values():
            print(f"  {d.name}: {d.what}\n      from {d.source}", file=sys.stderr)
        return 2
    print(f"NEUROSEG_DATA = {root}")
    if args.download:
        fetch_missing(root)
    n_missing = n_damaged = 0
    for d, missing, damaged in status(verify=True):
        if missing or damaged:
            n_missing += bool(missing)
            n_damaged += bool(damaged)
            if missing:
                print(f"  MISSING {d.name} ({', '.join(missing)})")
            if damaged:
                print(f"  DAMAGED {d.name} ({', '.join(damaged)}: SHA-256 differs from "
                      f"{CHECKSUMS_FILE}; delete the file and fetch it again)")
            print(f"      what:    {d.what}")
            print(f"      source:  {d.source}")
            print(f"      license: {d.license}")
        else:
            print(f"  ok      {d.name}")
    if n_damaged and not n_missing:
        print(f"{n_damaged} dataset(s) damaged: delete the files named above and run "
              "`python -m neuroseg.data --download` (what `make data` runs), or copy them again.")
        return 1
    if n_missing:
        print(
            f"{n_missing} dataset(s) missing. `python -m neuroseg.data --download` (what "
            "`make data` runs) fetches and converts them where there is internet; otherwise "
            "download them from the sources above and convert them as PROVENANCE.md describes."
        )
        return 1
    print("all datasets present")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
