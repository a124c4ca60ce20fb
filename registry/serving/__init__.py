"""The reference inference server: one base model, many users' VeRA adapters per batch,
OpenAI-compatible HTTP (`vera-registry serve-model`, docs/client.md "Serving")."""
