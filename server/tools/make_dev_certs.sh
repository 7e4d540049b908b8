#!/usr/bin/env bash
# Makes what TLS, mTLS and bearer tokens need, for development and for trying
# the deployments out (deploy/docker/compose.tls.yml, deploy/k8s/overlays/tls):
#
#   server/tools/make_dev_certs.sh OUT_DIR [SUBJECT_ALT_NAME...]
#
# OUT_DIR/ca.crt, ca.key         a CA of its own (valid DAYS, default 365)
# OUT_DIR/server.crt, .key       the server's certificate from that CA, for the
#                                names given (default: DNS:localhost DNS:detr-server
#                                IP:127.0.0.1; add e.g. DNS:detr-server.<ns>.svc)
# OUT_DIR/client.crt, .key       a client certificate from the same CA (mTLS)
# OUT_DIR/tokens                 one random bearer token (the server's tokens file format)
#
# Production certificates come from your own CA or cert-manager; this CA's key
# sits next to its certificate, which is fine on a laptop and nowhere else.
set -euo pipefail
out=${1:?usage: make_dev_certs.sh OUT_DIR [SUBJECT_ALT_NAME...]}
shift
names=("$@")
((${#names[@]})) || names=(DNS:localhost DNS:detr-server IP:127.0.0.1)
days=${DAYS:-365}
mkdir -p "$out"
cd "$out"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$1" 2>/dev/null; }
signed() {  # name, extensions
  key "$1.key"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=detr-serve $1" 2>/dev/null
  printf '%s\n' "$2" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days "$days" \
    -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

key ca.key
openssl req -x509 -new -key ca.key -out ca.crt -days "$days" -subj "/CN=detr-serve development CA" 2>/dev/null
san=$(IFS=,; echo "${names[*]}")
signed server "subjectAltName=$san
extendedKeyUsage=serverAuth"
signed client "extendedKeyUsage=clientAuth"
{
  echo "# bearer tokens of detr-server (one per line); made by make_dev_certs.sh"
  openssl rand -hex 32
} >tokens
# The server runs as its own user in the container: it must read these.
chmod 644 ./*.crt ./*.key tokens
echo "make_dev_certs: $PWD: ca.crt server.crt/.key ($san) client.crt/.key tokens"
