"""The catalog: meters, products and prices on the `catalog` log, projected and cached."""
