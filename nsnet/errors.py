"""nsnet's exceptions.

    NsnetError              root of everything nsnet raises on purpose
    ├── NotFound            a named network, container or endpoint does not exist   (HTTP 404)
    ├── InvalidArgument     the request is malformed or not allowed                  (HTTP 400)
    ├── Forbidden           the request is valid but refused (built-in networks...)  (HTTP 403)
    ├── Conflict            the request clashes with existing state                  (HTTP 409)
    └── Unavailable         the kernel or a dependency cannot do it now              (HTTP 503)

Lower-layer errors (netlink, nftables, sqlite) are translated at the boundary with
``raise ... from`` so that the cause is kept. Messages read
"cannot <verb> <object> '<name>': <cause>".
"""


class NsnetError(Exception):
    """Root of nsnet's errors; ``status`` is the HTTP status code the API answers with."""

    status = 500
    exit_code = 1


class NotFound(NsnetError):
    status = 404


class InvalidArgument(NsnetError):
    status = 400


class Forbidden(NsnetError):
    status = 403


class Conflict(NsnetError):
    status = 409


class Unavailable(NsnetError):
    status = 503


class InjectedFailure(NsnetError):
    """Raised by a test-only failpoint (see ``nsnet.failpoints``)."""

    status = 500
