"""`vera-registry webhooks create|list|ping|deliveries|redeliver|delete` against the app."""

from __future__ import annotations

PUBLIC = "https://93.184.215.14/hook"


def test_webhook_commands(cli) -> None:
    created = cli.json(
        "webhooks", "create", PUBLIC, "--event", "job.failed", "--event", "alias.moved"
    )
    assert created["secret"].startswith("whsec_")
    assert created["event_types"] == ["job.failed", "alias.moved"]
    webhook_id = created["id"]

    listed = cli.json("webhooks", "list")
    assert [w["id"] for w in listed] == [webhook_id] and "secret" not in listed[0]
    table = cli("webhooks", "list").output
    assert webhook_id in table and "job.failed,alias.moved" in table

    ping = cli.json("webhooks", "ping", webhook_id)
    assert (ping["event_type"], ping["state"]) == ("webhook.ping", "pending")
    deliveries = cli.json("webhooks", "deliveries", webhook_id, "--state", "pending")
    assert [d["id"] for d in deliveries] == [ping["id"]]
    assert cli.json("webhooks", "deliveries", webhook_id, "--state", "failed") == []
    assert "webhook.ping" in cli("webhooks", "deliveries", webhook_id).output
    again = cli.json("webhooks", "redeliver", webhook_id, ping["id"])
    assert (again["id"], again["attempts"]) == (ping["id"], 0)

    refused = cli("webhooks", "delete", webhook_id, ok=False, input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    assert cli.json("webhooks", "delete", webhook_id, "--yes")["id"] == webhook_id
    assert cli.json("webhooks", "list") == []
    gone = cli("webhooks", "deliveries", webhook_id, ok=False)
    assert gone.exit_code == 1 and "not found" in gone.output


def test_a_private_receiver_is_refused_with_the_setting_named(cli) -> None:
    result = cli("webhooks", "create", "https://10.0.0.8/hook", "--event", "job.failed", ok=False)
    assert result.exit_code == 1
    assert "VERA_WEBHOOK_ALLOW_PRIVATE" in result.output
    assert "422 webhook_url_refused" in result.output
