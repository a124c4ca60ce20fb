"""The URL rules: https only, no credentials, public addresses only unless allowed."""

import ipaddress

import pytest

from registry.config import Settings
from registry.webhooks.urls import WebhookUrlError, check_url, is_public


def _settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


def _resolver(*addresses: str):
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:10.0.0.1",
        "2002:a00:1::",  # 6to4 of 10.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    ],
)
def test_non_public_addresses(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_a_public_https_url_passes_with_its_addresses() -> None:
    checked = check_url("https://hooks.example/x?y=1", _settings(), _resolver("93.184.215.14"))
    assert (checked.host, checked.port, checked.addresses) == (
        "hooks.example",
        443,
        ("93.184.215.14",),
    )


def test_every_resolved_address_must_be_public() -> None:
    resolve = _resolver("93.184.215.14", "10.0.0.5")
    with pytest.raises(WebhookUrlError, match="VERA_WEBHOOK_ALLOW_PRIVATE") as caught:
        check_url("https://hooks.example/", _settings(), resolve)
    assert caught.value.status_code == 422
    assert caught.value.details == {"host": "hooks.example", "address": "10.0.0.5"}
    assert check_url("https://hooks.example/", _settings(webhook_allow_private=True), resolve)


def test_private_ip_literals_are_refused_without_dns() -> None:
    with pytest.raises(WebhookUrlError, match="not a public address"):
        check_url("https://127.0.0.1:8443/hook", _settings())
    with pytest.raises(WebhookUrlError, match="not a public address"):
        check_url("https://[::ffff:169.254.169.254]/", _settings())


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.example/", "VERA_WEBHOOK_ALLOW_HTTP"),
        ("ftp://hooks.example/", "https://"),
        ("https://user:pw@hooks.example/", "user or password"),
        ("https:///path", "no host"),
        ("https://hooks.example/#frag", "fragment"),
        ("https://hooks.example:99999/", "malformed"),
        ("https://hooks.example/a b", "spaces"),
        ("https://hooks.example/" + "a" * 2000, "longer than"),
    ],
)
def test_malformed_or_forbidden_urls(url: str, message: str) -> None:
    with pytest.raises(WebhookUrlError, match=message):
        check_url(url, _settings(), _resolver("93.184.215.14"))


def test_http_needs_the_setting() -> None:
    settings = _settings(webhook_allow_http=True)
    assert check_url("http://hooks.example/", settings, _resolver("93.184.215.14")).port == 80


def test_a_host_that_does_not_resolve_is_refused() -> None:
    def fail(host, port):
        raise OSError("Name or service not known")

    with pytest.raises(WebhookUrlError, match="does not resolve"):
        check_url("https://nowhere.invalid/", _settings(), fail)


def test_named_hosts_may_resolve_to_private_addresses(monkeypatch) -> None:
    monkeypatch.setenv("VERA_WEBHOOK_PRIVATE_HOSTS", "Hooks.Internal., other.internal")
    settings = Settings(_env_file=None)
    assert settings.webhook_private_hosts == ["Hooks.Internal.", "other.internal"]
    private = _resolver("10.0.0.5")
    assert check_url("https://hooks.internal/x", settings, private).addresses == ("10.0.0.5",)
    assert check_url("https://HOOKS.internal./x", settings, private)
    with pytest.raises(WebhookUrlError, match="VERA_WEBHOOK_PRIVATE_HOSTS"):
        check_url("https://evil.example/x", settings, private)
