"""Alembic, imported only when a schema is behind: a gateway whose store is at HEAD never loads it
(about 11 MB of a process that otherwise idles near 100 MB)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).parent


def _config(connection: Connection | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(connection: Connection) -> None:
    command.upgrade(_config(connection), "head")


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()
