import sys

from archivestore.cli import main

sys.exit(main())
