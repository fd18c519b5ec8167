//! The JSON API. Skeleton.
