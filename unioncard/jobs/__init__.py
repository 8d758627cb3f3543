"""Long work as jobs: a row per job in the database (status, progress, checkpoint) is the truth;
a queue (RQ on Redis, or a thread of the app for the embedded demo) only says which job to run."""
