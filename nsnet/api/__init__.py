"""nsnetd's HTTP API: Docker Engine API 1.41's network endpoints, plus the container endpoints
and nsnet's own ``/nsnet/...`` extensions that the CLI needs.

    schemas   pydantic models of request bodies and responses, in Docker's JSON shapes
    filters   Docker's ``filters`` query parameter for ``GET /networks``
    timefmt   Docker's times and human durations ("Up 3 seconds"), shared with the CLI
    app       the FastAPI application over one engine, called from one worker thread

This package's ``__init__`` imports nothing, so that the CLI can use ``timefmt`` without paying
for FastAPI and pydantic.
"""
