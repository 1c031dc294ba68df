"""A test client whose inferences travel the production route: boto3's `sagemaker-runtime`
`invoke_endpoint` with a TargetModel, into a local multi-model endpoint.

It answers the part of `tritonclient.http.InferenceServerClient` model tests use, so a test
written against a plain server runs unchanged:

- `infer` sends a binary+json body (`application/vnd.sagemaker-triton.binary+json;
  json-header-size=N`, what SageMaker's Triton front end takes) through boto3 and parses the
  answer with tritonclient; a container error raises `InferenceServerException` with the
  server's own text and status, as the plain client does.
- `get_model_metadata`, `get_model_config` and `is_model_ready` have no route on a SageMaker
  endpoint (the container runs with HTTP and gRPC off). They are answered from the artifact's
  own config files as Triton reports them, and readiness from the endpoint's load state.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mmepack.endpoint import LocalEndpoint
from mmepack.model.config import data_type_name, read_model_config
from mmepack.names import CONFIG_FILE

BINARY_JSON = "application/vnd.sagemaker-triton.binary+json"
_HEADER_SIZE_RE = re.compile(r"json-header-size=(\d+)")


def runtime_client(endpoint_url: str) -> Any:
    """boto3's own `sagemaker-runtime` client pointed at a local endpoint.

    The endpoint checks no signatures, so fixed local credentials are given: no real ones are
    looked up, and nothing leaves the machine. Each request is sent exactly once: a test must
    see the endpoint's first answer, not a retry's. In botocore, `max_attempts` counts retries
    (1 means a request can be sent twice); `total_max_attempts` counts sends.
    """
    import boto3
    import botocore.config

    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=botocore.config.Config(
            retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=300
        ),
    )


class EndpointClient:
    """`infer` and friends for one artifact (TargetModel) on a local endpoint."""

    def __init__(self, endpoint: LocalEndpoint, target_model: str, ensemble: str, model_dir: Path):
        self.endpoint = endpoint
        self.target_model = target_model
        self.ensemble = ensemble
        self.model_dir = model_dir
        self.runtime = runtime_client(endpoint.url)

    def _check_model(self, model_name: str) -> None:
        if model_name not in (self.target_model, self.ensemble):
            raise ValueError(
                f"this client serves {self.target_model!r} (ensemble {self.ensemble!r}); a "
                f"SageMaker endpoint invokes artifacts, not step {model_name!r}"
            )

    def infer(
        self,
        model_name: str,
        inputs: list[Any],
        outputs: list[Any] | None = None,
        request_id: str = "",
        parameters: dict[str, Any] | None = None,
        **_unused: Any,
    ) -> Any:
        from botocore.exceptions import ClientError
        from tritonclient.http import InferenceServerClient
        from tritonclient.utils import InferenceServerException

        self._check_model(model_name)
        body, json_size = InferenceServerClient.generate_request_body(
            inputs, outputs=outputs, request_id=request_id, parameters=parameters
        )
        content_type = (
            f"{BINARY_JSON};json-header-size={json_size}"
            if json_size is not None
            else "application/json"
        )
        try:
            reply = self.runtime.invoke_endpoint(
                EndpointName=self.endpoint.name,
                TargetModel=self.target_model,
                ContentType=content_type,
                Body=body,
            )
        except ClientError as exc:
            error = exc.response
            message = str(error.get("OriginalMessage") or error.get("Error", {}).get("Message"))
            status = error.get("OriginalStatusCode") or error["ResponseMetadata"]["HTTPStatusCode"]
            raise InferenceServerException(msg=message, status=str(status)) from None
        data = reply["Body"].read()
        match = _HEADER_SIZE_RE.search(reply.get("ContentType", ""))
        return InferenceServerClient.parse_response_body(
            data, header_length=int(match.group(1)) if match else None
        )

    def _config(self, model_name: str) -> Any:
        folder = self.ensemble if model_name == self.target_model else model_name
        path = self.model_dir / folder / CONFIG_FILE
        if not path.is_file():
            raise ValueError(f"{model_name!r} is not a model of {self.target_model}")
        return read_model_config(path)

    def get_model_config(self, model_name: str) -> dict[str, Any]:
        """The config as Triton's JSON renders it (field names as in config.pbtxt)."""
        from google.protobuf import json_format

        config = json_format.MessageToDict(
            self._config(model_name), preserving_proto_field_name=True
        )
        return dict(config)

    def get_model_metadata(self, model_name: str) -> dict[str, Any]:
        """Name, inputs and outputs as Triton's metadata lists them (BYTES, FP32, [-1, ...])."""
        config = self._config(model_name)
        batch = [-1] if config.max_batch_size > 0 else []

        def tensors(items: Any) -> list[dict[str, Any]]:
            return [
                {
                    "name": item.name,
                    "datatype": _metadata_type(data_type_name(item.data_type)),
                    "shape": batch + [int(d) for d in item.dims],
                }
                for item in items
            ]

        return {
            "name": model_name,
            "versions": ["1"],
            "platform": config.platform or config.backend,
            "inputs": tensors(config.input),
            "outputs": tensors(config.output),
        }

    def is_model_ready(self, model_name: str) -> bool:
        """A step is ready when its artifact is loaded: an MME loads or fails it as a whole."""
        if not (self.model_dir / model_name / CONFIG_FILE).is_file() and model_name not in (
            self.target_model,
            self.ensemble,
        ):
            return False
        return self.target_model in self.endpoint.loaded()

    def close(self) -> None:
        self.runtime.close()


def _metadata_type(config_type: str) -> str:
    name = config_type.removeprefix("TYPE_")
    return "BYTES" if name == "STRING" else name
