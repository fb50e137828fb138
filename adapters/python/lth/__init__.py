"""Liên Thông Hub client for Python (Debian's python3-zmq, python3-nacl and
python3-protobuf; the lth.v1 classes are generated with protoc on first use).

See adapters/README.md (*Python*) for a tutorial and proto/README.md for the
protocol it speaks."""
from .client import (PING_SERVICE, Client, HubError, Later, Message, Outcome,  # noqa: F401
                     Reject, Reply)
from .keys import KeyFile, KeyFileError, read_key_file  # noqa: F401
from .proto import (DELIVERY_ONLINE_ONLY, DELIVERY_QUEUED, KIND_EVENT, KIND_REPLY,  # noqa: F401
                    KIND_REQUEST, nack_name, pb)
from . import sign  # noqa: F401
