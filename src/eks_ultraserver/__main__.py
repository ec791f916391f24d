import sys

from eks_ultraserver.cli import main

sys.exit(main())
