from ccr_fast.cli import main

raise SystemExit(main())
