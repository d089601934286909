"""python -m pysafe demo: install on a throwaway cluster, restrict a role, try it."""

from __future__ import annotations

import psycopg

from pysafe.install import install
from pysafe.localcluster import LocalCluster


def attempt(conn: psycopg.Connection, statement: str) -> None:
    try:
        cursor = conn.execute(statement)
        rows = cursor.fetchall() if cursor.description else []
        print(f"  ok       {statement}  ->  {rows}")
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
                "SET default_transaction_read_only = off",
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
