#!/bin/sh
# Call a certgate-protected API with curl, verification on (never -k).
#
#   examples/clients/curl.sh https://localhost:8443/ --cert certs/dev/client.crt --key certs/dev/client.key --ca certs/dev/ca.crt
#   examples/clients/curl.sh https://localhost:8443/ --cert certs/dev/client.pem --ca certs/dev/ca.crt
#   examples/clients/curl.sh https://localhost:8443/ --cert client.crt --key client.enc.key --password-file client.pass --ca certs/dev/ca.crt
#
# It runs exactly:  curl --fail-with-body -sS --cacert CA --cert CERT [--key KEY] [--pass PASSWORD] URL
# (--cacert replaces the system store for this call; a combined key+cert PEM needs no --key).
set -eu
url=""; cert=""; key=""; ca=""; passfile=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cert) cert="$2"; shift 2 ;;
    --key) key="$2"; shift 2 ;;
    --ca) ca="$2"; shift 2 ;;
    --password-file) passfile="$2"; shift 2 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) url="$1"; shift ;;
  esac
done
if [ -z "$url" ] || [ -z "$cert" ] || [ -z "$ca" ]; then
  echo "usage: curl.sh URL --cert CERT [--key KEY] [--password-file FILE] --ca CA" >&2
  exit 2
fi
set -- --fail-with-body -sS --cacert "$ca" --cert "$cert"
[ -n "$key" ] && set -- "$@" --key "$key"
# The password goes through a config on stdin, so it never shows in `ps`.
if [ -n "$passfile" ]; then
  pass=$(head -n 1 "$passfile")
  printf 'pass = "%s"\n' "$pass" | curl "$@" --config - "$url"
else
  curl "$@" "$url"
fi
echo
