"""`tally schemas`: compare (or, with --write, rewrite) the committed JSON Schemas in schemas/ with the ones
generated from the models (tally_core.contracts.schemas)."""

from __future__ import annotations

from pathlib import Path

from tally_core.contracts.schemas import generate, render

# The committed files, at the repository's root (a source checkout; `make schemas` runs there).
DIRECTORY = Path(__file__).resolve().parents[2] / "schemas"


def stale(directory: Path = DIRECTORY) -> list[str]:
    """Files in `directory` that differ from the generated ones, are missing, or are no contract's."""
    wanted = {f"{name}.json": render(schema) for name, schema in generate().items()}
    present = {p.name for p in directory.glob("*.json")}
    return sorted(name for name in wanted.keys() | present
                  if name not in wanted or name not in present or (directory / name).read_text() != wanted[name])


def write(directory: Path = DIRECTORY) -> list[str]:
    """Write every contract into `directory` and remove files no contract has; returns the files changed."""
    changed = stale(directory)
    generated = generate()
    for name in changed:
        path = directory / name
        if name.removesuffix(".json") in generated:
            path.write_text(render(generated[name.removesuffix(".json")]))
        else:
            path.unlink()
    return changed
