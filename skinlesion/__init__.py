"""The ``skinlesion`` command: one entry point, one subcommand per thing a user does."""
