"""Small object detectors in pure PyTorch: CenterNet-style networks (:mod:`.network`), their targets and loss
(:mod:`.targets`), batch augmentation (:mod:`.augment`), training and inference on letterboxed images
(:mod:`.training`), ONNX export with the decoding inside the graph (:mod:`.export`) and a synthetic data set
(:mod:`.synthetic`). The AutoML search over them is ``modelyard.train.automl_detection``."""
