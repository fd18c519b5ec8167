//! The core's durable click log. Skeleton: the implementation lands with the ingest work.
