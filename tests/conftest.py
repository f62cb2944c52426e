"""Shared pytest fixtures. Area-specific fixtures live in ``tests/fixtures_*.py``."""
pytest_plugins = ["tests.fixtures_common", "tests.fixtures_export", "tests.fixtures_guard",
                  "tests.fixtures_wheel"]
