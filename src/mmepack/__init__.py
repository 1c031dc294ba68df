"""mmepack: turn Triton model repositories in a monorepo into tested SageMaker MME artifacts."""

__version__ = "0.2.0"
