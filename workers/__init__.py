"""Celery workers: VeRA training jobs, the sweeper and the base-model cache."""
