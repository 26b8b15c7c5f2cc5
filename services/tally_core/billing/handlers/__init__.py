"""Command handlers, one module per group: `handler(run, now) -> dict` (the object the API answers with).

A handler reads `run.command` (`object_id`, `params`), raises an ApiError to refuse (nothing it did stays,
decide.py), and changes the book only through `run.emit` and the `run.save_*` helpers.
"""
