"""``python -m archivestore``: the ``archivestore`` command."""

import sys

from archivestore.cli import main  # noqa: TID251 (the entry point is the one place that may)

sys.exit(main())
