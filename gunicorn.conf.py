"""Gunicorn settings for production: `gunicorn -c gunicorn.conf.py wsgi:app` (docs/deploy.md).

The app's own settings come from the environment (config.ProdConfig); the three variables read here only
shape the server. Run behind nginx or a load balancer that buffers requests and responses.
"""
import multiprocessing
import os

#: GUNICORN_BIND: one address, or several separated by commas. Default: loopback only (nginx on this host).
#: Bind an app server's private address only behind a load balancer, and firewall it to the balancer:
#: ProxyFix trusts the last X-Forwarded-For entry from whoever connects.
bind = [b.strip() for b in os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",") if b.strip()]

#: WEB_CONCURRENCY (gunicorn's own variable name): worker processes, default 2 x cores + 1
#: (docs/performance.md 4.8). Each worker has its own database pool and dashboard snapshot cache.
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 2 + 1)

#: sync, deliberately. Exports are streamed (crm/core/spreadsheets.py send_csv/send_xlsx return a generator);
#: nginx's proxy buffering takes them off the worker at disk speed, so a slow phone does not hold a worker.
#: Threads would share one process's pool and SQLite's write lock in ways the load test (scripts/loadtest.py,
#: sync workers with one SIGKILLed) has not exercised.
worker_class = "sync"

#: A request silent for 60 s is killed (the worker is replaced). A sync worker does not report during a
#: response, so an export must finish within it too (docs/performance.md 4.6 has their times).
timeout = 60
#: On restart/HUP, in-flight requests (an export) get up to this long to finish; keep systemd's
#: TimeoutStopSec above it.
graceful_timeout = 60

#: Recycle each worker after about 2,000 requests; the jitter keeps workers from restarting together.
max_requests = 2000
max_requests_jitter = 200

#: FORWARDED_ALLOW_IPS (gunicorn's own variable name): proxy addresses whose X-Forwarded-Proto gunicorn
#: believes. The app itself reads X-Forwarded-For/-Proto through ProxyFix (PROXY_FIX_HOPS, config.py).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

#: Access log: the path (%(U)s) without the query string, never the request line %(r)s, the query %(q)s or
#: the Referer %(f)s, which carry query strings (PI-6). %(h)s is the client address after ProxyFix.
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s" %(p)s'

#: Load the app once in the master: a bad SECRET_KEY, TRUSTED_HOSTS or RATELIMIT_STORAGE_URI stops the
#: server at once with the reason (crm.security.check_config) instead of crash-looping workers, and workers
#: share the loaded code. create_app() opens no database connection, and post_fork below drops any pool
#: the master might hold anyway: a connection must never be used by two processes. Code upgrades need a full
#: restart (HUP re-forks the preloaded code).
preload_app = True

#: No control socket: systemd manages the server by signals (HUP reload, TERM stop).
control_socket_disable = True


def when_ready(server):
    """In the master, once the preloaded app is built and before the first worker is forked: exempt its objects
    from garbage collection (crm.freeze_loaded_objects), so workers never walk them in a full collection (an 80 ms
    pause every few requests) nor copy their memory pages by touching them. Once: a frozen object is never
    collected, so the master does not freeze again at each worker it replaces."""
    from crm import freeze_loaded_objects

    freeze_loaded_objects()


def post_fork(server, worker):
    """In each new worker: forget the parent's connection pools without closing the parent's connections, and
    note full collections, whose survivors post_request freezes (crm.freeze_survivors)."""
    from crm import freeze_survivors
    from crm.extensions import db

    freeze_survivors()

    app = server.app.wsgi()
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose(close=False)


def post_request(worker, req, environ, resp):
    """After each response was sent: freeze what survived the full collections of the last requests
    (crm.settle_heap; cheap, and off the request's time), and, once a second at most, copy SQLite's write-ahead
    log into its database (crm.settle_wal), which a request's commit would otherwise do. The worker is recycled by
    max_requests."""
    from crm import settle_heap, settle_wal

    settle_heap()
    settle_wal()
