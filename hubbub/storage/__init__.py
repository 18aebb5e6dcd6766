"""Storage: Postgres (system of record), Redis (fan-out, short-lived state),
SQL migrations, and the embedded servers of the zero-setup default."""
