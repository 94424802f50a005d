from auditline.cli import main

raise SystemExit(main())
