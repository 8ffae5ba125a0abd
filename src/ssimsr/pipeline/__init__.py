"""Workflow glue: the stage declarations and job dispatch, how a stage runs (backend, GPU,
warm start), the experiment table and run identity, config status, code digests and
provenance."""
