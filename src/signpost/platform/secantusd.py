"""The embedded SecantusDB's daemon, run with fewer full garbage collections (see
signpost.shared.collector): its own console script, `secantusd-py`, with one setting first.

    python -m signpost.platform.secantusd --port 27017 ...   (SecantusDB's own arguments)
"""

from __future__ import annotations

import sys

from secantus.cli import main as secantus_main
from signpost.shared.collector import collect_less_often


def main() -> int:
    collect_less_often()
    return int(secantus_main())


if __name__ == "__main__":
    sys.exit(main())
