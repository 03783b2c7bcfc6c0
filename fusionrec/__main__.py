"""``python -m fusionrec``: the same command line as the ``fusionrec`` script."""
import sys

from fusionrec.cli import main

sys.exit(main())
