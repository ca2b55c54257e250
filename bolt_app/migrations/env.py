"""Alembic environment: runs against the engine the app hands over (no alembic.ini needed)."""

from alembic import context

from bolt_app.storage.schema import metadata

config = context.config


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        from bolt_app.database import create_engine
        from bolt_app.settings import load_settings

        engine = create_engine(load_settings(purpose="admin").database_url, pool_size=1)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=engine.dialect.name == "sqlite",  # SQLite alters tables by copying them
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("Offline SQL generation is not supported; run `python main.py db upgrade`.")
run_migrations_online()
