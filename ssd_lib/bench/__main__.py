import sys

from ssd_lib.bench.cli import main

sys.exit(main())
