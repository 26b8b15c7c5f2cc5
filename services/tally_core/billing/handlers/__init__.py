"""Command handlers, one module per group: `handler(run, now) -> dict` (the object the API answers with).

A handler reads the typed command (`run.command.object_id`, `run.params`: commands.py, checked at the API
edge) and decides only what needs the book: does the object exist, what status is it in, what does the pinned
price allow, where is the clock. It raises an ApiError to refuse (nothing it did stays, decide.py), and
changes the book only through `run.emit` and the `run.save_*` helpers.
"""
