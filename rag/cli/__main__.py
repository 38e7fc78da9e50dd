"""``python -m rag.cli``: the same as the `arag` console script."""
import sys

from rag.cli import main

sys.exit(main())
