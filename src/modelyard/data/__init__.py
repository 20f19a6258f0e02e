"""Datasets: immutable versions of tabular files and image folders, with a manifest of content hashes, a schema, a
seeded stratified train/validation split, statistics, ExeML-style trainability checks and versioned preprocessing
steps. Kept import-light: pandas, pyarrow and Pillow load inside the functions that need them."""
