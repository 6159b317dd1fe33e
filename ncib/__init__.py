"""ncib: neural collapse in supervised contrastive learning through the information bottleneck."""

__version__ = "0.1.0"
