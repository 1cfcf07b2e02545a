"""The training loop and the distillation methods it runs."""
