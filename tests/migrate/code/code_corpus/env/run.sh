#!/usr/bin/env bash
# nvidia-smi and torchrun in comments are not findings; NCCL_DEBUG=INFO neither
set -e
nvidia-smi  # expect: nvidia-smi
export NCCL_SOCKET_IFNAME=eth0  # expect: nccl-env
export OMP_NUM_THREADS=4
CUDA_VISIBLE_DEVICES=0,1 torchrun --nproc_per_node=2 train.py  # expect: cuda-visible-devices, distributed-launcher
python -m torch.distributed.launch --nproc_per_node=2 train.py  # expect: distributed-launcher
docker run --gpus all image:latest  # expect: nvidia-container-env
python train.py
