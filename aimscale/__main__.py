from aimscale.cli import main

raise SystemExit(main())
