"""Migration of GPU PyTorch code and models to other accelerators: analyze, rewrite, convert, coverage, compare."""
