"""fuseflow: TF1 graphs compiled to fused native kernels."""
