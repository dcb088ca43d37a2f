"""The shell users touch: the CLI, the driver, placement, joining, the live display, the report."""
