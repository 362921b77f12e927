"""The S3 server fixtures (tests/_remote_fixtures.py) for every test in this folder."""

from _remote_fixtures import s3, s3_endpoint  # noqa: F401 - pytest finds fixtures by name here
