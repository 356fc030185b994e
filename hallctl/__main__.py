from hallctl.cli import main

raise SystemExit(main())
