"""gunicorn settings for production: `gunicorn -c config/gunicorn.conf.py 'rehab:create_app()'`.

Chosen with `rehab bench ingest` on the reference machine (2 cores, PostgreSQL on the same host):
- `gthread` workers: the API's clients (phones, devices, a reverse proxy) keep connections
  alive, which the `sync` worker does not support, and a request spends much of its time
  waiting on the database (a durable COMMIT waits for the WAL flush) and the broker, which
  threads overlap.
- One process per core, 8 threads each: in a sweep (2×8, 2×4, 3×4, 4×4, 4×2, 1×16) 2×8 gave the
  most logs per second; more processes than cores compete with PostgreSQL for the CPU.
- Threads per process must not exceed the SQLAlchemy pool (`rehab.db.POOL_SIZE`, 16): a pool
  smaller than the threads using it closes and reopens PostgreSQL connections under load.

Override without editing this file: on the command line (which wins over this file), with
GUNICORN_CMD_ARGS, or with the environment variables read below.
"""

from __future__ import annotations

import os


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


bind = os.environ.get("REHAB_BIND", "127.0.0.1:8000")

worker_class = "gthread"
# Processes: one per core (WEB_CONCURRENCY is gunicorn's own convention for this number).
workers = _int_env("WEB_CONCURRENCY", os.cpu_count() or 1)
# Threads per process: enough to keep each core busy while others wait on the database; at
# most rehab.db.POOL_SIZE (each thread holds a pooled connection during a request).
threads = _int_env("REHAB_WEB_THREADS", 8)
# Idle keep-alive connections kept open per process (behind a proxy, its pool of upstreams).
worker_connections = _int_env("REHAB_WEB_CONNECTIONS", 1000)
# Seconds an idle keep-alive connection stays open; a little longer than a phone's pause
# between a log and the next request, shorter than a proxy's upstream idle timeout.
keepalive = _int_env("REHAB_WEB_KEEPALIVE", 5)
timeout = 30
graceful_timeout = 30
# The heartbeat file in memory, not on a disk that may stall under load.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# Access log on stdout, one line per request. `%(U)s` is the path WITHOUT the query string
# (design §6: nothing personal in logs; query strings can carry search terms or dates), and no
# referer. The request id links a line to the audit table.
accesslog = os.environ.get("REHAB_ACCESS_LOG", "-")
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms rid=%({x-request-id}o)s'
errorlog = "-"
loglevel = os.environ.get("REHAB_LOG_LEVEL", "info")

# Proxy headers are trusted only from the local reverse proxy.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
