"""`make bench` / `python -m bench`: generated data at several scales on SQLite and PostgreSQL, timed pages."""
