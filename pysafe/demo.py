"""python -m pysafe demo: install on a throwaway cluster, restrict a role, try it."""

from __future__ import annotations

import psycopg

from pysafe.install import install
from pysafe.localcluster import LocalCluster


def attempt(conn: psycopg.Connection, statement: str) -> None:
    notices: list[str] = []
    conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
    try:
        cursor = conn.execute(statement)
        rows = cursor.fetchall() if cursor.description else []
        print(f"  ok       {statement}  ->  {rows}")
        for notice in notices:
            print(f"           NOTICE: {notice}")
    except psycopg.Error as error:
        state = error.diag.sqlstate
        print(f"  REFUSED  {statement}  ->  {state}: {error.diag.message_primary}")


def run() -> int:
    cluster = LocalCluster().start()
    try:
        print(f"throwaway cluster on port {cluster.port}; installing pysafe ...")
        install(cluster.dsn(), cluster.pg_config)
        cluster.restart()
        with cluster.connect() as admin:
            admin.execute("CREATE ROLE reporting LOGIN")
            admin.execute("CREATE TABLE sales (id int, amount numeric)")
            admin.execute("INSERT INTO sales VALUES (1, 9.5), (2, 20)")
            admin.execute("GRANT SELECT, INSERT ON sales TO reporting")
            admin.execute("ALTER SYSTEM SET pysafe.roles = 'reporting'")
            admin.execute("SELECT pg_reload_conf()")
        print("pysafe.roles = 'reporting'; connecting as reporting:")
        with cluster.connect(user="reporting") as conn:
            for statement in (
                "SELECT detail FROM pysafe.status() WHERE protection = 'this session restricted'",
                "SELECT count(*), sum(amount) FROM sales",
                "INSERT INTO sales VALUES (3, 1)",
                "CREATE TABLE scratch (x int)",
                # A read-write request: ignored with a NOTICE (read_write_requests).
                "SET default_transaction_read_only = off",
                "SHOW default_transaction_read_only",
            ):
                attempt(conn, statement)
        with cluster.connect() as admin:
            row = admin.execute("SELECT count(*) FROM sales").fetchone()
        print(f"rows in sales afterwards: {row[0] if row else '?'} (nothing was written)")
        logged = [
            line.split("pysafe refusal: ", 1)[1]
            for line in cluster.log_path.read_text(errors="replace").splitlines()
            if "pysafe refusal: " in line
        ]
        print(f"the server log has {len(logged)} refusal lines (pysafe.log_refusals), e.g.:")
        print(f"  {logged[0] if logged else '(none)'}")
    finally:
        cluster.stop()
    return 0
