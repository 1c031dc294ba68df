"""Writing the `<model>_<version>.tar.gz` that a SageMaker multi-model endpoint loads."""
