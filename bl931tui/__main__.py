from bl931tui.cli import main

raise SystemExit(main())
