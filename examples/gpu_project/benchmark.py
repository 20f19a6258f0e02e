"""Time forward + backward of the tiny transformer on the GPU, with peak memory."""

import argparse
import time

import torch
import torch.nn.functional as F

from model import TinyTransformer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    torch.backends.cudnn.benchmark = True
    model = TinyTransformer().cuda()
    tokens = torch.randint(0, 256, (args.batch_size, 32), device="cuda")
    labels = torch.randint(0, 8, (args.batch_size,)).cuda()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()

    timings = []
    for i in range(args.warmup + args.iters):
        torch.cuda.synchronize()
        start = time.perf_counter()
        loss = F.cross_entropy(model(tokens), labels)
        loss.backward()
        torch.cuda.synchronize()
        if i >= args.warmup:
            timings.append(time.perf_counter() - start)
    timings.sort()
    print(f"median {1000 * timings[len(timings) // 2]:.2f} ms/iter over {len(timings)} iters, "
          f"peak memory {torch.cuda.max_memory_allocated() / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
