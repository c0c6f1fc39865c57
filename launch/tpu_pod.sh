#!/usr/bin/env bash
# Train Nano-EmoX on a Cloud TPU VM pod slice: installs the project on every worker and runs the same command on
# all of them (one process per host; jax.distributed finds the coordinator through the TPU metadata server).
#
#   TPU_NAME=my-v5p-64 ZONE=us-east5-a PROJECT=my-proj CONFIG=configs/p2e.py:phase3 \
#   WORKDIR=gs://my-bucket/emox/phase3 DATA_DIR=gs://my-bucket/tfds bash launch/tpu_pod.sh [extra --config.* flags]
#
# Checkpoints (Orbax) and TensorBoard logs go to WORKDIR, which must be reachable from every worker (a GCS path).
# A preempted slice gets SIGTERM: the trainer saves a checkpoint and exits; rerun this script to resume.
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}" "${CONFIG:?set CONFIG, e.g. configs/p2e.py:phase3}"
: "${WORKDIR:?set WORKDIR (a gs:// path)}"
PROJECT_FLAG=${PROJECT:+--project=$PROJECT}
REPO_URL=${REPO_URL:-$(git config --get remote.origin.url || true)}
BRANCH=${BRANCH:-$(git rev-parse --abbrev-ref HEAD)}
DATA_FLAG=${DATA_DIR:+--config.data.data_dir=$DATA_DIR}
EXTRA="$*"

remote() {
  gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" $PROJECT_FLAG --worker=all --command="$1"
}

# 1. Code + environment on every worker (TPU jax instead of the CPU pin).
remote "set -e; if [ ! -d emox_jax_repo ]; then git clone -b $BRANCH $REPO_URL emox_jax_repo; fi; \
  cd emox_jax_repo && git fetch -q && git checkout -q $BRANCH && git pull -q; \
  python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt && \
  .venv/bin/pip install -q 'jax[tpu]' && .venv/bin/pip install -q --no-deps -e ."

# 2. The same command on every worker.
remote "cd emox_jax_repo && .venv/bin/python -m launch.train --config=$CONFIG --workdir=$WORKDIR $DATA_FLAG $EXTRA"
