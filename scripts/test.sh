#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, then runs every test on
# SQLite and again on PostgreSQL (127.0.0.1:5432, or UNIONCARD_TEST_PG_URL). Fails if any run
# fails or runs no test. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh --test

PG_URL="${UNIONCARD_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/test}"
export UNIONCARD_TEST_PG_URL="$PG_URL"
if ! .venv/bin/python - "$PG_URL" <<'PY' 2>/dev/null
import sys, psycopg
psycopg.connect(sys.argv[1], connect_timeout=3).close()
PY
then
  echo "PostgreSQL is not answering at $PG_URL; trying to start the local cluster"
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    sleep 2
  fi
fi

# Redis: the rate limits shared by two app servers and the job queue's workers are tested on it.
if ! .venv/bin/python -c "import redis; redis.Redis.from_url('redis://127.0.0.1:6379/0', socket_timeout=3).ping()" 2>/dev/null; then
  echo "Redis is not answering on 127.0.0.1:6379; trying to start it"
  if command -v redis-server >/dev/null; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
    sleep 1
  else
    echo "redis-server is not installed: the job-queue and two-server tests will fail"
  fi
fi

status=0
for database in sqlite postgresql; do
  echo "=== tests on $database ==="
  log=$(mktemp)
  set +e
  UNIONCARD_TEST_DB="$database" .venv/bin/python -m pytest -p no:cacheprovider "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" -ne 0 ]; then
    echo "tests on $database failed (pytest exit $rc)"; status=1
  elif ! grep -Eq "[0-9]+ passed" "$log"; then
    echo "tests on $database ran no test"; status=1
  fi
  rm -f "$log"
done
exit $status
