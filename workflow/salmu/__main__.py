import sys

from salmu.cli import main

sys.exit(main())
