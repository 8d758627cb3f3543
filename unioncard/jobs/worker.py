"""What an RQ worker runs (``unioncard jobs worker``): one job by its id, in a process that opens
its own database connection from the installation's settings."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _runtime():
    from unioncard import db
    from unioncard.config import load_settings

    settings = load_settings()
    engine = db.make_engine(settings.database_url)
    return settings, db.make_session_factory(engine)


def perform(job_id: int) -> str | None:
    import unioncard.models  # noqa: F401 - every part's job handlers are registered with its models
    from unioncard.jobs import services

    settings, session_factory = _runtime()
    return services.run(job_id, settings=settings, session_factory=session_factory)
