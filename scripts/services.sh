#!/usr/bin/env bash
# Make sure the PostgreSQL and MariaDB the tests use are running on 127.0.0.1 (start them
# when they are not) and wait until they answer.
set -euo pipefail

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
my_up() { mariadb-admin -h 127.0.0.1 -P 3306 -u root --connect-timeout=2 ping >/dev/null 2>&1 || mysqladmin -h 127.0.0.1 -P 3306 -u root --connect-timeout=2 ping >/dev/null 2>&1; }

if ! pg_up; then
  echo "services: starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    for v in $(ls /etc/postgresql); do pg_ctlcluster --skip-systemctl-redirect "$v" main start || true; done
  else
    echo "services: PostgreSQL is not installed; install postgresql" >&2
  fi
fi
if ! my_up; then
  echo "services: starting MariaDB"
  if [ -x /usr/sbin/mariadbd ]; then
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  else
    echo "services: MariaDB is not installed; install mariadb-server" >&2
  fi
fi
for i in $(seq 1 60); do
  if pg_up && my_up; then echo "services: PostgreSQL and MariaDB are up"; exit 0; fi
  sleep 1
done
pg_up || echo "services: PostgreSQL did not come up" >&2
my_up || echo "services: MariaDB did not come up" >&2
exit 1
