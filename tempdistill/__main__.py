import sys

from tempdistill.cli import main

sys.exit(main())
