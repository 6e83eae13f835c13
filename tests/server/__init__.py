"""The server's tests. Starlette's TestClient sends `Host: testserver`: the apps under test allow that name as
`cardloop serve --allow-host testserver` would (tests/server/test_security.py checks the Host rules themselves)."""

from cardloop.server.security import LOCAL_HOSTNAMES

TESTCLIENT_HOSTS = LOCAL_HOSTNAMES | {"testserver"}
