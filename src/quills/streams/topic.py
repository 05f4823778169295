"""Topics: a broker name bound to a versioned msgspec schema, with an encoder and decoder made once."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec

from quills.errors import ConfigError

__all__ = ("Topic",)

T = TypeVar("T", bound=msgspec.Struct)

_NAME = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


@dataclass(frozen=True, eq=False)
class Topic(Generic[T]):
    """A named stream of ``schema`` messages, encoded as JSON by msgspec (in C, once per message).

    Args:
        name: the topic's base name: letters, digits, ``_`` and ``-``, in ``.``-separated parts
            (valid on Kafka and as a NATS subject). ``<name>.dlq`` holds its dead letters.
        schema: the ``msgspec.Struct`` type of the messages. Follow msgspec's schema-evolution rules:
            new fields get defaults and a field's type never changes.
        version: the schema's major version, >= 1 (default 1). A change that breaks the rules above is a
            new major version, and a new version is a new broker topic: ``name`` for version 1,
            ``name.v2`` for version 2, so old and new consumers never read each other's messages.
    """

    name: str
    schema: type[T]
    version: int = 1
    _encoder: msgspec.json.Encoder = field(init=False, repr=False, compare=False)
    _decoder: msgspec.json.Decoder[T] = field(init=False, repr=False, compare=False)
    _any_decoder: msgspec.json.Decoder[Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or len(self.name) > 200:
            raise ConfigError(
                f"Topic name {self.name!r} is invalid: use letters, digits, '_' and '-' in '.'-separated "
                "parts, at most 200 characters"
            )
        if not (isinstance(self.schema, type) and issubclass(self.schema, msgspec.Struct)):
            raise ConfigError(
                f"Topic {self.name!r}: schema must be a msgspec.Struct type, got {self.schema!r}"
            )
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ConfigError(f"Topic {self.name!r}: version must be an int >= 1, got {self.version!r}")
        object.__setattr__(self, "_encoder", msgspec.json.Encoder())
        object.__setattr__(self, "_decoder", msgspec.json.Decoder(self.schema))
        # One message or a packed message (a JSON array of them, see quills.streams.packing) in one C call.
        # An array_like schema is itself an array, so its topics carry single messages only.
        either = self.schema | list[self.schema] if self.packable else self.schema  # type: ignore[name-defined]
        object.__setattr__(self, "_any_decoder", msgspec.json.Decoder(either))

    @property
    def wire_name(self) -> str:
        """The broker topic (Kafka) or subject (NATS): ``name``, or ``name.v<version>`` past version 1."""
        return self.name if self.version == 1 else f"{self.name}.v{self.version}"

    @property
    def dlq_name(self) -> str:
        """The dead-letter topic of this topic: ``<wire_name>.dlq``."""
        return f"{self.wire_name}.dlq"

    def encode(self, message: T) -> bytes:
        """Encode one message to JSON bytes."""
        return self._encoder.encode(message)

    @property
    def decoder(self) -> msgspec.json.Decoder[T]:
        """The reusable decoder (its bound ``decode`` saves a Python call per message in hot loops)."""
        return self._decoder

    @property
    def packable(self) -> bool:
        """Whether this topic's messages can be packed (``quills.streams.packing``): not ``array_like``."""
        return not self.schema.__struct_config__.array_like

    @property
    def any_decoder(self) -> msgspec.json.Decoder[Any]:
        """Decodes one message (a ``schema``) or, for a packable topic, a packed message (a list of them)."""
        return self._any_decoder

    def decode(self, data: bytes | memoryview) -> T:
        """Decode and validate one message; raises ``msgspec.ValidationError``/``msgspec.DecodeError``."""
        return self._decoder.decode(data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Topic):
            return NotImplemented
        return (self.name, self.schema, self.version) == (other.name, other.schema, other.version)

    def __hash__(self) -> int:
        return hash((self.name, self.schema, self.version))

    def __repr__(self) -> str:
        return f"Topic({self.name!r}, {self.schema.__qualname__}, version={self.version})"
