"""Durable state: SQLAlchemy models, stores and migrations (SQLite by default, PostgreSQL)."""
