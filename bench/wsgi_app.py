"""gunicorn entry point for the benchmark's mixed workload (never used in production)."""
import os
import secrets

from bench.runner import bench_app

app = bench_app(os.environ["CRM_BENCH_DATABASE_URL"], SECRET_KEY=os.environ.get("CRM_BENCH_SECRET")
                or secrets.token_urlsafe(32))
