"""Entry point of the journal's writer process (``python -m alphaops.journal._sink_main``).

A module of its own, so that running it does not re-execute :mod:`alphaops.journal._sink`,
which the package has already imported.
"""

import sys

from alphaops.journal._sink import serve

if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
