"""Schema operations the apps' migrations share."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from django.core.management.base import CommandError
from django.db import DatabaseError, migrations, models, transaction


def drop_surplus_indexes(
    table: str,
    indexes: dict[str, str],
    *,
    postgres_indexes: dict[str, str] | None = None,
    renamed_constraint: tuple[str, str] | None = None,
    concurrently: bool = False,
) -> migrations.RunPython:
    """Drop TABLE's INDEXES (name -> its columns, as `CREATE INDEX name ON table ...`
    takes them to build it again when the migration is reversed), and on PostgreSQL
    also POSTGRES_INDEXES, and rename its constraint RENAMED_CONSTRAINT (old name, new
    name). What is done already (an index gone, a constraint renamed) is skipped;
    nothing is rebuilt or validated again, whatever the table's size. CONCURRENTLY:
    on PostgreSQL, drop (and build again) without locking out the table's readers and
    writers meanwhile (the migration must say `atomic = False`)."""
    postgres_indexes = postgres_indexes or {}

    def how(schema_editor) -> str:
        return "CONCURRENTLY " if concurrently and schema_editor.connection.vendor == "postgresql" else ""

    def on(schema_editor) -> tuple[dict[str, str], tuple[str, str] | None]:
        if schema_editor.connection.vendor == "postgresql":
            return {**indexes, **postgres_indexes}, renamed_constraint
        return indexes, None

    def rename(schema_editor, old: str, new: str) -> None:
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(%s) AND conname = %s", [f'"{table}"', old]
            )
            if cursor.fetchone() is None:
                return
        schema_editor.execute(f'ALTER TABLE "{table}" RENAME CONSTRAINT "{old}" TO "{new}"')

    def forwards(apps, schema_editor) -> None:
        dropped, renamed = on(schema_editor)
        for name in dropped:
            schema_editor.execute(f'DROP INDEX {how(schema_editor)}IF EXISTS "{name}"')
        if renamed:
            rename(schema_editor, *renamed)

    def backwards(apps, schema_editor) -> None:
        dropped, renamed = on(schema_editor)
        for name, definition in dropped.items():
            schema_editor.execute(f'CREATE INDEX {how(schema_editor)}IF NOT EXISTS "{name}" ON "{table}" {definition}')
        if renamed:
            rename(schema_editor, *reversed(renamed))

    return migrations.RunPython(forwards, backwards)


def unique_request_id(model_name: str, constraint: str) -> list[migrations.operations.base.Operation]:
    """The state of MODEL_NAME's `request_id` made unique by the constraint CONSTRAINT
    rather than by `unique=True` (which on PostgreSQL also builds a LIKE index)."""
    return [
        migrations.AlterField(
            model_name=model_name, name="request_id", field=models.CharField(blank=True, max_length=128, null=True)
        ),
        migrations.AddConstraint(
            model_name=model_name, constraint=models.UniqueConstraint(fields=("request_id",), name=constraint)
        ),
    ]


def concurrent_postgres_indexes(
    indexes: dict[str, str], *, extensions: Sequence[str] = (), everywhere: bool = False,
    elsewhere: dict[str, str] | None = None,
) -> tuple[Callable, Callable]:
    """The (create, drop) functions of a `RunPython` that builds INDEXES (name -> what
    follows `CREATE INDEX name`) on PostgreSQL, CONCURRENTLY, so that ingest goes on
    writing the table meanwhile (the migration must say `atomic = False`), after
    creating EXTENSIONS where they are not yet (_create_extension). An index that an
    interrupted build left invalid is built again. EVERYWHERE: other databases (SQLite)
    build them too, plainly; ELSEWHERE: they build these definitions instead (name ->
    definition, for what only PostgreSQL knows, such as INCLUDE); else the indexes are
    PostgreSQL's alone. The reverse drops the indexes and leaves the extensions, which
    other objects of the database may have come to use."""
    other = indexes if everywhere else (elsewhere or {})

    def create(apps, schema_editor) -> None:
        if schema_editor.connection.vendor != "postgresql":
            for name, definition in other.items():
                schema_editor.execute(f'CREATE INDEX IF NOT EXISTS "{name}" {definition}')
            return
        for extension in extensions:
            _create_extension(schema_editor, extension)
        for name, definition in indexes.items():
            with schema_editor.connection.cursor() as cursor:
                cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [f'"{name}"'])
                found = cursor.fetchone()
            if found is not None and not found[0]:
                # Left invalid by an interrupted concurrent build: start again.
                schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
            schema_editor.execute(f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" {definition}')

    def drop(apps, schema_editor) -> None:
        postgres = schema_editor.connection.vendor == "postgresql"
        for name in indexes if postgres else other:
            schema_editor.execute(f'DROP INDEX {"CONCURRENTLY " if postgres else ""}IF EXISTS "{name}"')

    return create, drop


class MissingExtension(CommandError):
    """A PostgreSQL extension a migration needs could not be created (a CommandError,
    so that `manage.py migrate` prints the message alone, without a traceback)."""


def _create_extension(schema_editor, extension: str) -> None:
    """Create EXTENSION unless the database has it: one created beforehand by a
    superuser needs no privilege of the migrating role. Where it cannot be created
    (not installed on the server, or the role may not), say what to do."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = %s", [extension])
        if cursor.fetchone() is not None:
            return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute(f'CREATE EXTENSION IF NOT EXISTS "{extension}"')
    except DatabaseError as error:
        raise MissingExtension(
            f"This migration needs the PostgreSQL extension {extension!r}, which could not be created "
            f"({str(error).strip()}). PostgreSQL's own extensions (pg_trgm among them) come with its "
            f"contrib modules: the postgresql package on Debian and Ubuntu, postgresql-contrib elsewhere. "
            f'Create it as the database\'s owner or a superuser: CREATE EXTENSION "{extension}"; then run '
            f"migrate again."
        ) from error


class OnPostgresAsSQL(migrations.SeparateDatabaseAndState):
    """OPERATIONS, which PostgreSQL does as SQL instead (a statement or a list, and the
    reverse): several columns added to a large table by one ALTER TABLE, for instance,
    where Django would rewrite the table once for each. Other databases (SQLite) run
    the operations themselves."""

    def __init__(self, operations: list, *, sql: str | list[str], reverse_sql: str | list[str]) -> None:
        super().__init__(database_operations=operations, state_operations=operations)
        self.sql, self.reverse_sql = sql, reverse_sql

    def deconstruct(self):
        return self.__class__.__qualname__, [], {
            "operations": self.state_operations, "sql": self.sql, "reverse_sql": self.reverse_sql,
        }

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        if schema_editor.connection.vendor == "postgresql":
            self._execute(schema_editor, self.sql)
        else:
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        if schema_editor.connection.vendor == "postgresql":
            self._execute(schema_editor, self.reverse_sql)
        else:
            super().database_backwards(app_label, schema_editor, from_state, to_state)

    @staticmethod
    def _execute(schema_editor, sql: str | list[str]) -> None:
        for statement in [sql] if isinstance(sql, str) else sql:
            schema_editor.execute(statement)

    def describe(self) -> str:
        return "Operations done as one SQL script on PostgreSQL"
