//! `clickgate attribute`. Skeleton: lands with the models work.

use std::io::{BufRead, Write};

use crate::core::attribution::Model;

/// Reads journeys from `input`, writes one line of shares per journey to `out`; returns how
/// many lines were rejected (each reported on stderr with its line number).
pub fn run(model: Model, half_life_hours: f64, input: impl BufRead, out: impl Write) -> anyhow::Result<usize> {
    let _ = (model, half_life_hours, input, out);
    unimplemented!()
}
