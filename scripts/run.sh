#!/usr/bin/env bash
# `make run`: migrate the embedded SQLite database, make sure a first admin exists, serve on :8000.
set -euo pipefail
export SLIPWAY_ENV=${SLIPWAY_ENV:-development}
export FLASK_APP=wsgi
flask=.venv/bin/flask
data_dir=${SLIPWAY_DATA_DIR:-instance}
mkdir -p "$data_dir"
secret_file="$data_dir/secret-key"
if [ -z "${SECRET_KEY:-}" ]; then
  [ -s "$secret_file" ] || (umask 077; .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(48))' >"$secret_file")
  SECRET_KEY=$(cat "$secret_file")
  export SECRET_KEY
fi

key_file="$data_dir/secrets-key"
if [ -z "${SLIPWAY_SECRETS_KEY:-}" ]; then
  [ -s "$key_file" ] || (umask 077; .venv/bin/python -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())' >"$key_file")
  SLIPWAY_SECRETS_KEY=$(cat "$key_file")
  export SLIPWAY_SECRETS_KEY
fi

$flask db upgrade

admin_file="$data_dir/first-admin.txt"
if [ ! -s "$admin_file" ]; then
  password=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(18))')
  echo "$password" | $flask create-admin --username sysadmin --email sysadmin@example.com \
    --password-stdin --if-missing
  (umask 077; printf 'username: sysadmin\npassword: %s\n' "$password" >"$admin_file")
fi
echo
echo "Slipway is starting on http://127.0.0.1:${SLIPWAY_LISTEN_PORT:-8000}"
echo "First admin login (also saved in $admin_file):"
sed 's/^/  /' "$admin_file"
echo
exec $flask dev-server
