"""``python -m retrievers.elasticsearch.node``: build, start, run or stop the local node."""
import sys

from retrievers.elasticsearch.node.launcher import main

sys.exit(main())
