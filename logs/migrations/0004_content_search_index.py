"""A trigram index of the log content on PostgreSQL, for the keyword searches
(`/api/log/search`, `/api/log/self/search`, the admin's search), and an index of the
rows that name a model yet are no LLM call, for the admin's search; both built
concurrently (ingest goes on writing the table meanwhile).

A search asks for rows whose content contains the keyword in any case, newest first
(`UPPER(content) LIKE UPPER('%keyword%')`, as Django writes `icontains`). Without an
index, PostgreSQL walks the table from its newest row until a page is full: quick
for a keyword many rows hold, a scan of every row for one that few or none do
(1.5 s with the table cached, 11 s from disk, at ten million rows). The GIN index
of the trigrams of `UPPER(content)` (pg_trgm) finds those rows directly: a
keyword of three characters or more that no row holds answers in 2-3 ms. For a
keyword many rows hold, the planner still walks the time index. Keywords of one or
two characters have no trigram and are searched as before.

The price is paid at ingest, by rows with content: 1000-call batches that each
carried 80 characters of content went in 7% slower (BENCH.md); rows without
content add only an entry for the empty value (the benchmark's batches, whose
successful calls carry none: 8,026-9,726 calls/s in three runs with the index, 9,314
in one without).

The admin's search also matches account and model names. It looks the accounts
and the models of LLM calls up by name in their own small tables, then their rows in
the (user, created_at) and (model_name, created_at) indexes; the few other rows that
name a model are in the second index here (empty as a rule, and never written by an
LLM call). Together a term that few rows hold is found in 35-41 ms instead of 4-6 s.

pg_trgm ships with PostgreSQL (contrib) and is a trusted extension: the database's
owner may create it. SQLite, the embedded database, searches by a scan.
A test on PostgreSQL checks that a rare keyword is looked up in the index
(tests/logs/test_log_search_index.py), and one that the admin's is.
"""

from django.db import migrations

from statsite.migration_operations import concurrent_postgres_indexes

INDEXES = {
    # The content's trigrams: every keyword search.
    "log_content_search_idx": 'ON "logs_log" USING gin (UPPER("content") gin_trgm_ops)',
    # The rows that name a model yet are no LLM call (top-up, manage and system rows:
    # none, as a rule): the admin's search finds the models of LLM calls by name in
    # the (model_name, created_at) index, and these here (logs.admin.LogAdmin).
    "log_other_named_model_idx": (
        'ON "logs_log" ("type", "model_name") WHERE "type" IN (1, 3, 5) AND "model_name" <> \'\''
    ),
}


create, drop = concurrent_postgres_indexes(INDEXES, extensions=("pg_trgm",))


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [("logs", "0003_no_duplicate_indexes")]

    operations = [migrations.RunPython(create, drop)]
