//! Cluster mode. Skeleton.
