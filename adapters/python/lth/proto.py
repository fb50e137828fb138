"""The lth.v1 protobuf classes, generated from proto/lth.proto.

Debian's python3-protobuf has no pre-built module for our schema, so it is
generated with protoc (Debian's protobuf-compiler) the first time it is
needed: from $LTH_PROTO_PY if that directory already holds lth_pb2.py (the
build does this), else into a cache directory keyed by the schema's hash.
"""
import hashlib
import importlib
import os
import subprocess
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _proto_path():
    path = os.environ.get("LTH_PROTO")
    if path:
        return path
    # adapters/python/lth/ -> proto/lth.proto in the source tree.
    return os.path.normpath(os.path.join(_HERE, "..", "..", "..", "proto", "lth.proto"))


def _load():
    ready = os.environ.get("LTH_PROTO_PY")
    if ready and os.path.exists(os.path.join(ready, "lth_pb2.py")):
        sys.path.insert(0, ready)
        return importlib.import_module("lth_pb2")
    proto = _proto_path()
    try:
        with open(proto, "rb") as f:
            tag = hashlib.sha256(f.read()).hexdigest()[:16]
    except OSError as e:
        raise ImportError(
            "lth: cannot read the schema %s (%s); set LTH_PROTO to proto/lth.proto "
            "or LTH_PROTO_PY to a directory holding lth_pb2.py" % (proto, e.strerror)) from e
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    out = os.path.join(base, "lth-python", tag)
    if not os.path.exists(os.path.join(out, "lth_pb2.py")):
        os.makedirs(out, exist_ok=True)
        try:
            subprocess.run(["protoc", "--python_out=" + out, "-I" + os.path.dirname(proto), proto],
                           check=True, capture_output=True)
        except FileNotFoundError as e:
            raise ImportError("lth: protoc not found; install Debian's protobuf-compiler") from e
        except subprocess.CalledProcessError as e:
            raise ImportError("lth: protoc failed on %s: %s" % (proto, e.stderr.decode())) from e
    sys.path.insert(0, out)
    return importlib.import_module("lth_pb2")


pb = _load()

KIND_REQUEST = pb.KIND_REQUEST
KIND_REPLY = pb.KIND_REPLY
KIND_EVENT = pb.KIND_EVENT
DELIVERY_QUEUED = pb.DELIVERY_QUEUED
DELIVERY_ONLINE_ONLY = pb.DELIVERY_ONLINE_ONLY
PROTOCOL_VERSION = 1


def nack_name(code):
    """'BAD_SIGNATURE' for 12, as the C code's hub_nack_code_name()."""
    try:
        return pb.NackCode.Name(code)[len("NACK_"):]
    except ValueError:
        return "UNKNOWN"
