"""fusionrec: multimodal recommendation with pretrained encoders."""
__version__ = "0.1.0"
