"""`vera-registry demo`: three users personalize one MiniLM, end to end (docs/demo.md)."""
