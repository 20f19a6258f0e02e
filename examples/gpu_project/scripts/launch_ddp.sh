#!/usr/bin/env bash
# Train on 4 GPUs of one node with torchrun and NCCL.
set -euo pipefail
cd "$(dirname "$0")/.."

nvidia-smi --query-gpu=name,memory.total --format=csv

export NCCL_DEBUG=INFO
export NCCL_IB_DISABLE=1
export OMP_NUM_THREADS=8

CUDA_VISIBLE_DEVICES=${GPUS:-0,1,2,3} torchrun --standalone --nproc_per_node=4 train.py "$@"
