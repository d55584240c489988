#!/usr/bin/env python3
"""Seed N clients into a Tessera database quickly, without N argon2id runs (issue 14).

    benches/seed_clients.py BIN DATA_DIR N                       # SQLite in DATA_DIR
    benches/seed_clients.py BIN DATA_DIR N postgres://…/db       # PostgreSQL

BIN is a `tessera` binary. It creates one real client with the CLI (so the schema is migrated
and one argon2id hash exists), then copies that client's secret hash to N generated clients in
one statement (SQL generate_series / a recursive CTE), so every seeded client has the same
secret. Prints that secret and the id of one seeded client, as JSON. Python 3 stdlib only; psql
for PostgreSQL.
"""
import json, sqlite3, subprocess, sys, time

BIN, DATA, N = sys.argv[1], sys.argv[2], int(sys.argv[3])
PG = sys.argv[4] if len(sys.argv) > 4 else None
db_args = ["--data-dir", DATA] + (["--database-url", PG] if PG else [])

out = subprocess.run([BIN, *db_args, "client", "create", "--name", "seed-template", "--scope",
                      "s2s:internal", "--output", "json"], capture_output=True, text=True, check=True)
template = json.loads(out.stdout)
secret, template_id = template["client_secret"], template["client_id"]
now = int(time.time())

# Both databases: ids tc_seed00000001…, one secret each, all with the template's hash.
CLIENTS = """
INSERT INTO clients (id, name, scopes, audiences, token_ttl, enabled, created_at, updated_at)
SELECT 'tc_seed' || {pad}, 'seed-' || n, 's2s:internal', '[]', 300, {true}, {now}, {now} FROM {series};
"""
SECRETS = """
INSERT INTO client_secrets (id, client_id, hash, created_at)
SELECT 'ts_seed' || {pad}, 'tc_seed' || {pad}, (SELECT hash FROM client_secrets WHERE client_id = '{tid}'), {now}
FROM {series};
"""
BUMP = "UPDATE meta SET revision = revision + 1 WHERE id = 1;"

started = time.time()
if PG:
    series = f"generate_series(1, {N}) AS n"
    pad = "lpad(n::text, 8, '0')"
    sql = "BEGIN;" + CLIENTS.format(pad=pad, true="true", now=now, series=series) + \
        SECRETS.format(pad=pad, now=now, series=series, tid=template_id) + BUMP + "COMMIT;"
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", PG, "-c", sql], check=True)
else:
    series = f"(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {N}) SELECT n FROM s)"
    pad = "substr('00000000' || n, -8, 8)"
    con = sqlite3.connect(f"{DATA}/tessera.db")
    con.executescript("BEGIN;" + CLIENTS.format(pad=pad, true=1, now=now, series=series) +
                      SECRETS.format(pad=pad, now=now, series=series, tid=template_id) + BUMP + "COMMIT;")
    con.close()
print(json.dumps({"seeded": N, "seconds": round(time.time() - started, 1), "client_secret": secret,
                  "example_client_id": "tc_seed00000001"}))
