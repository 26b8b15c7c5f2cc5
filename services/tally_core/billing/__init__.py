"""Pure billing money core: prices, line amounts and billing periods (no I/O, no clocks)."""
