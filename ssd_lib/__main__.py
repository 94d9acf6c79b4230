"""``python -m ssd_lib``: the ``ssd`` command line (see ``ssd_lib.cli``)."""

import sys

from ssd_lib.cli import main

sys.exit(main())
