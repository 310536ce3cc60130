"""``python -m archivestore``: the ``archivestore`` command."""

import sys

from archivestore.cli import main

sys.exit(main())
