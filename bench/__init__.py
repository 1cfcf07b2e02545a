"""kdbench: does knowledge distillation make students more robust than their hard-label twins?"""

__version__ = "0.1.0"
