"""Optional TLS on the HTTP listener (stdlib ssl): a client that trusts the certificate gets
through; unreadable files are a clear start-up error."""

import asyncio
import shutil
import ssl
import subprocess

import aiohttp
import pytest

from gsmgw.http.server import HttpStartError, start
from test_http_api import TOKEN, Context, write_config

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")


def self_signed(tmp_path):
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def test_https_with_a_trusted_certificate(tmp_path):
    cert, key = self_signed(tmp_path)
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("  metrics: true\n", f"  metrics: true\n  tls: {{cert: {cert}, key: {key}}}\n"))

    async def scenario():
        server = await start(Context(config))
        try:
            assert server.url.startswith("https://127.0.0.1:")
            trust = ssl.create_default_context(cafile=str(cert))
            async with aiohttp.ClientSession() as session:
                async with session.post(server.url + "/api/v1/messages", json={"to": "+4915112345678", "text": "over TLS"},
                                        headers={"Authorization": f"Bearer {TOKEN}"}, ssl=trust) as response:
                    assert response.status == 202
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    async with session.get(server.url + "/healthz", ssl=ssl.create_default_context()):
                        pass
                plain = server.url.replace("https://", "http://")
                with pytest.raises(aiohttp.ClientError):
                    async with session.get(plain + "/healthz") as response:
                        await response.read()
        finally:
            await server.close()

    asyncio.run(scenario())


def test_a_certificate_that_is_not_pem_is_a_clear_error(tmp_path):
    (tmp_path / "none.crt").write_text("not a certificate")
    (tmp_path / "none.key").write_text("not a key")
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace(
        "  metrics: true\n", f"  metrics: true\n  tls: {{cert: {tmp_path}/none.crt, key: {tmp_path}/none.key}}\n"))

    async def scenario():
        with pytest.raises(HttpStartError, match=r"http\.tls: cannot load the certificate .*none\.crt"):
            await start(Context(config))

    asyncio.run(scenario())
