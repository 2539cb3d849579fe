"""`python -m streamline_edge`: see `streamline_edge.cli`."""

from __future__ import annotations

import sys

from streamline_edge.cli import main

if __name__ == "__main__":
    sys.exit(main())
