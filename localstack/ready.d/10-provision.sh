#!/bin/bash
# LocalStack init hook (ready stage): create the DynamoDB table and the KMS key (with alias)
# through localstack/provision.py, the same script the tests run against moto, so a compose
# stack and a test run cannot disagree about the table's shape (which provision.py reads from
# infra/template.yaml, mounted beside it as /opt/sushi/template.yaml). LocalStack runs this inside its
# container once its services are up; its health check waits for the hook to finish.
#
# Also runnable outside the container (infra/check.sh does, against moto):
#   SUSHI_ENDPOINT=http://127.0.0.1:5055 SUSHI_PROVISION_SCRIPT=localstack/provision.py \
#     localstack/ready.d/10-provision.sh
set -euo pipefail

endpoint=${SUSHI_ENDPOINT:-http://localhost:4566}
script=${SUSHI_PROVISION_SCRIPT:-/opt/sushi/provision.py}
python=${SUSHI_PYTHON:-$(command -v python3 || command -v python || true)}
if [ -z "$python" ] || ! "$python" -c 'import boto3, yaml' 2>/dev/null; then
    echo "ready.d/10-provision.sh: no Python with boto3 and PyYAML found (set SUSHI_PYTHON)" >&2
    exit 1
fi

# LocalStack accepts any credentials; boto3 only needs some to sign with.
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export AWS_REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}

"$python" "$script" \
    --endpoint-url "$endpoint" \
    --table "${DYNAMODB_TABLE:-sushi}" \
    --alias "${KMS_KEY_ALIAS:-alias/sushi}"
