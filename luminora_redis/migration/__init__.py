"""Data migrations: LuminoraCore's legacy Redis layout into ours, and upgrades of our
own layout between versions. The ``luminora-redis migrate`` command drives both."""
