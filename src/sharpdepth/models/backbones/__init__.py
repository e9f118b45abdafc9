"""Convolutional backbones written in plain torch (no timm/geffnet, which pull torchvision)."""
