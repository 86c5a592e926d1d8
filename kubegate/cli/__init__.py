"""The `kubegate` command: one module per command group."""
