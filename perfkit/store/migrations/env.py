"""Alembic environment of the perfkit history store.

perfkit runs migrations itself (see :class:`perfkit.store.Store`) and passes an open
connection in ``config.attributes["connection"]``; a URL in ``sqlalchemy.url`` also works,
so ``alembic -c <ini>`` can be used by hand.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from perfkit.store.schema import VERSION_TABLE, metadata


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


def main() -> None:
    """Run the migrations Alembic asked for."""
    if context.is_offline_mode():
        run_migrations_offline()
    else:
        run_migrations_online()


# Alembic executes this file with ``context`` configured; a plain import (e.g. pytest's
# doctest collection) must do nothing.
if hasattr(context, "config"):
    main()
