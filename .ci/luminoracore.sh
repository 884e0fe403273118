#!/usr/bin/env bash
# LuminoraCore's own storage tests, unmodified, against RedisStorageV11 on a private
# redis-server. Needs LUMINORACORE_PATH: a checkout of luminoracore/luminoracore (the
# directory holding luminoracore-sdk-python/). Without it, says so and exits 0.
# Their test dependencies (pytest 8.3.5, pytest-asyncio 0.21.1, boto3 for
# luminoracore_sdk.session, the SDK's own requirements) go into .venv-luminoracore.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

if [[ -z "${LUMINORACORE_PATH:-}" || ! -d "${LUMINORACORE_PATH}/luminoracore-sdk-python" ]]; then
  echo "LuminoraCore compatibility tests skipped: set LUMINORACORE_PATH to a luminoracore checkout"
  exit 0
fi

venv="$root/.venv-luminoracore"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q 'pytest==8.3.5' 'pytest-asyncio==0.21.1' boto3 \
  'pydantic>=2,<3' 'httpx<1' 'aiofiles<24' 'tenacity<9' 'structlog<24' \
  'opentelemetry-api<2' 'opentelemetry-sdk<2' -e "$root"

cd "$LUMINORACORE_PATH/luminoracore-sdk-python"
exec "$venv/bin/python" -m pytest -c pyproject.toml --rootdir . -p luminora_redis.compat.luminoracore_pytest -p no:cacheprovider \
  tests/test_step_8_storage_v1_1.py tests/test_step_10_memory_v1_1.py \
  tests/test_step_11_client_v1_1.py tests/test_complete_memory_operations.py \
  "$root/tests/test_compat_luminoracore_chat.py" "$@"
