from magma_llama.cli import main

raise SystemExit(main())
