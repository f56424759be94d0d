"""ADALINE trained three ways (manual, autograd, module), tracked with MLflow, checked for agreement by DVC."""

__all__ = ["__version__"]
__version__ = "0.1.0"
