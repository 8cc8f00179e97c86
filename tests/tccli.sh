#!/usr/bin/env bash
# Checks the simulator against the official client, tccli: if they disagree, the simulator is
# wrong. Not part of CI (it installs tccli from PyPI). Run from the repository root:
#   bash tests/tccli.sh
set -euo pipefail
venv=${TCCLI_VENV:-target/tccli-venv}
port=${PORT:-8020}
[ -x "$venv/bin/tccli" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q tccli-intl-en; }
cargo build --release -q
./target/release/lighthouse-share simulate --listen "127.0.0.1:$port" 2>/dev/null &
simulator=$!
trap 'kill $simulator' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/__stats" >/dev/null && break; sleep 0.1; done
export TENCENTCLOUD_SECRET_ID=AKIDsimulator TENCENTCLOUD_SECRET_KEY=simulator-secret-key
call() {
  "$venv/bin/tccli" lighthouse ModifyImageSharePermission --region ap-guangzhou \
    --ImageId img-abcdefgh --Permission SHARE --endpoint "http://127.0.0.1:$port" 2>&1 || true
}
first=$(call); echo "$first"
second=$(call); echo "$second"
grep -q '"BlueprintId": "lhbp-' <<<"$first" || { echo "FAIL: the first SHARE printed no BlueprintId"; exit 1; }
grep -q 'UnsupportedOperation.ImageAlreadyShared' <<<"$second" || { echo "FAIL: the second SHARE was not ImageAlreadyShared"; exit 1; }
echo "OK: tccli and the simulator agree"
