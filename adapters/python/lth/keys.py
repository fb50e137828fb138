"""Member key files (certs/README.md): `key = value` lines with member-id,
curve-public-key and curve-secret-key (Z85), sign-public-key and
sign-secret-key (hex; the secret in libsodium's seed || public form)."""
import os
import stat

import zmq.utils.z85

from . import sign

_KNOWN = {"member-id", "curve-public-key", "curve-secret-key", "sign-public-key",
          "sign-secret-key"}


class KeyFileError(ValueError):
    pass


class KeyFile:
    def __init__(self, member_id, curve_public, curve_secret=None, sign_public=None,
                 sign_secret=None):
        self.member_id = member_id
        self.curve_public = curve_public      # Z85 text, as libzmq takes it
        self.curve_secret = curve_secret      # Z85 text or None
        self.sign_public = sign_public        # 32 bytes or None
        self.sign_secret = sign_secret        # 64 bytes (seed || public) or None

    @property
    def has_secret(self):
        return self.curve_secret is not None

    def signing_key(self):
        if self.sign_secret is None:
            raise KeyFileError("this key file holds no sign-secret-key")
        return sign.signing_key(self.sign_secret)

    def __repr__(self):  # never shows the secrets
        return "KeyFile(%r, secret=%s)" % (self.member_id, self.has_secret)


def _unquote(v):
    if len(v) >= 2 and v[0] == v[-1] == '"':
        return v[1:-1]
    return v


def read_key_file(path):
    """Reads a .pub or .secret file; a file with secrets must not be readable
    by group or others (as hubd and the C SDK require)."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
        mode = os.stat(path).st_mode
    except OSError as e:
        raise KeyFileError("cannot read key file %s: %s" % (path, e.strerror)) from e
    values = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), _unquote(value.strip())
        if not sep or key not in _KNOWN:
            raise KeyFileError("%s:%d: expected one of %s = VALUE" % (path, n, ", ".join(sorted(_KNOWN))))
        values[key] = value
    if "member-id" not in values or "curve-public-key" not in values:
        raise KeyFileError("%s lacks member-id or curve-public-key; regenerate it with "
                           "'hubctl keygen'" % path)

    def hexkey(name, size):
        if name not in values:
            return None
        try:
            b = bytes.fromhex(values[name])
        except ValueError:
            b = b""
        if len(b) != size:
            raise KeyFileError("%s: %s must be %d hexadecimal characters" % (path, name, 2 * size))
        return b

    for name in ("curve-public-key", "curve-secret-key"):
        if name in values and len(values[name]) != 40:
            raise KeyFileError("%s: %s must be a 40-character Z85 CURVE key" % (path, name))
    kf = KeyFile(values["member-id"], values["curve-public-key"], values.get("curve-secret-key"),
                 hexkey("sign-public-key", 32), hexkey("sign-secret-key", 64))
    if kf.has_secret:
        if stat.S_IMODE(mode) & 0o077:
            raise KeyFileError("%s holds secret keys but its mode is %03o; run 'chmod 600 %s'"
                               % (path, stat.S_IMODE(mode), path))
        derived = zmq.curve_public(kf.curve_secret.encode()).decode()
        if derived != kf.curve_public:
            raise KeyFileError("%s: curve-public-key does not match curve-secret-key" % path)
        if kf.sign_secret is not None:
            try:
                sign.signing_key(kf.sign_secret)
            except ValueError as e:
                raise KeyFileError("%s: %s" % (path, e)) from e
    return kf


def z85_to_bytes(text):
    return zmq.utils.z85.decode(text)
