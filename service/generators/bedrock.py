"""Amazon Bedrock's Converse API through boto3's `bedrock-runtime` client."""

from __future__ import annotations

import importlib.util
from typing import Any, Iterator, Sequence

from pydantic import BaseModel, Field

from service.errors import GeneratorUnavailable
from service.generators.base import GeneratorPlugin, Passage
from service.generators.prompt import build_messages, build_rewrite_messages, clean_rewrite

INSTALL_HINT = "boto3 is not installed: pip install 'docqa[bedrock]'"


class BedrockSettings(BaseModel):
    """`DOCQA_GENERATOR__BEDROCK__*`: Amazon Bedrock's Converse API."""

    model_id: str = "anthropic.claude-3-haiku-20240307-v1:0"
    region: str | None = None
    max_tokens: int = Field(512, gt=0)
    temperature: float = 0.1


class BedrockGenerator:
    """Answers with `converse` (one piece), or with `converse_stream` (many pieces) when `stream=True`."""

    name = "bedrock"

    def __init__(
        self,
        model_id: str,
        region: str | None = None,
        max_tokens: int = 512,
        temperature: float = 0.1,
        client: Any = None,
        stream: bool = False,
    ) -> None:
        if not model_id:
            raise ValueError(f"model_id must be a Bedrock model id, got {model_id!r}")
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be > 0, got {max_tokens}")
        if client is None and importlib.util.find_spec("boto3") is None:
            raise ImportError(INSTALL_HINT)
        self.model_id = model_id
        self.region = region
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.stream = stream
        self._client = client

    @classmethod
    def from_settings(cls, cfg: BedrockSettings) -> BedrockGenerator:
        """Build from its settings section."""
        return cls(cfg.model_id, cfg.region, cfg.max_tokens, cfg.temperature)

    def generate(self, question: str, passages: Sequence[Passage]) -> Iterator[str]:
        """Yield the answer: whole from `converse`, or piece by piece from `converse_stream`."""
        return self._call(self._request(build_messages(question, passages), self.max_tokens), self.stream)

    def rewrite_question(self, question: str, previous: Sequence[str]) -> str:
        """A follow-up made standalone by the model."""
        request = self._request(build_rewrite_messages(question, previous), 96)
        return clean_rewrite("".join(self._call(request, False)), question)

    def _call(self, request: dict[str, Any], stream: bool) -> Iterator[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if stream:
                yield from self._converse_stream(request)
            else:
                yield self._converse(request)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code", "Unknown"), error.get("Message", str(exc))
            raise GeneratorUnavailable(f"bedrock {self.model_id}: {code}: {message}") from exc
        except BotoCoreError as exc:
            raise GeneratorUnavailable(f"bedrock {self.model_id}: {exc}") from exc

    def _request(self, messages: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
        """Converse arguments from chat messages: the system message apart, the user turn as content."""
        return {
            "modelId": self.model_id,
            "messages": [{"role": "user", "content": [{"text": messages[-1]["content"]}]}],
            "system": [{"text": messages[0]["content"]}],
            "inferenceConfig": {"maxTokens": max_tokens, "temperature": self.temperature},
        }

    def _converse(self, request: dict[str, Any]) -> str:
        response = self._bedrock().converse(**request)
        try:
            blocks = response["output"]["message"]["content"]
        except (KeyError, TypeError):
            raise GeneratorUnavailable(f"bedrock {self.model_id}: response without output.message.content") from None
        return "".join(block.get("text", "") for block in blocks)

    def _converse_stream(self, request: dict[str, Any]) -> Iterator[str]:
        stream = self._bedrock().converse_stream(**request)["stream"]
        try:
            for event in stream:  # botocore raises EventStreamError (a ClientError) for exception events
                text = event.get("contentBlockDelta", {}).get("delta", {}).get("text")
                if text:
                    yield text
        finally:
            stream.close()  # closing the HTTP body stops Bedrock generating

    def _bedrock(self) -> Any:
        """The injected client, or a `bedrock-runtime` client made on first use."""
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError as exc:
                raise ImportError(INSTALL_HINT) from exc
            config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=120)
            self._client = boto3.client("bedrock-runtime", region_name=self.region, config=config)
        return self._client


PLUGIN = GeneratorPlugin(BedrockSettings, lambda cfg, scorer: BedrockGenerator.from_settings(cfg))
