import sys

from ccr_fast.mock.cli import main

raise SystemExit(main(sys.argv[1:]))
