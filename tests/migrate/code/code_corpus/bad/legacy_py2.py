import torch

def main():
    print "training on", torch.cuda.device_count(), "GPUs"
