"""``python -m dalinorm``: the same command line as the ``dalinorm`` script."""

import sys

from dalinorm.cli import main

sys.exit(main())
