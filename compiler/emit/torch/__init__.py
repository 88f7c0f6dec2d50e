"""PyTorch emission: a readable model.py + weights.safetensors, or an in-memory module."""
