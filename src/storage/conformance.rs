//! The conformance suite: what every backend must pass. The domain's store suites name their
//! cases once with `conformance!`: the ledger's (`ledger::tests`), the lifecycle's
//! (`lifecycle::tests`, with the seeded simulation beside it) and the conversion writer's
//! (`conversions::tests`). Each suite opens its harness on a backend through `Backends`; a new
//! backend is a new method there and a new arm here, and every suite fails to build until it
//! can open the backend, then runs all its cases on it.

/// How a suite opens its harness on each backend. `grouped` opens it as the conversion writer
/// runs a group: the ledger head, balances, period states, partner days and rule versions held
/// and written once by the group's flush.
pub(crate) trait Backends {
    type Sqlite;
    type Pg;
    /// The data dir's file.
    fn sqlite(grouped: bool) -> Self::Sqlite;
    /// A schema of its own in the PostgreSQL server of `CLICKGATE_TEST_POSTGRES_URL` (or the local one).
    fn pg(grouped: bool) -> Self::Pg;
}

/// Instantiates a suite's cases on every backend.
///
/// - `conformance!(transactions Suite: case, …)`: each case is `fn(&mut impl Harness)`, run
///   per step and grouped on each backend (`on_sqlite::case`, `on_postgres_grouped::case`, …).
/// - `conformance!(stores Suite: case, …)`: each case takes the store by value and groups by
///   itself (the conversion writer): `case::sqlite`, `case::postgres`.
///
/// The PostgreSQL cases are ignored by default, so a run without a server lists them as
/// ignored; CI runs them (`--include-ignored`), and they fail without the server.
macro_rules! conformance {
    (transactions $suite:ident: $($case:ident),* $(,)?) => {
        mod on_sqlite {
            $( #[test] fn $case() { super::$case(&mut <super::$suite as $crate::storage::conformance::Backends>::sqlite(false)) } )*
        }
        mod on_sqlite_grouped {
            $( #[test] fn $case() { super::$case(&mut <super::$suite as $crate::storage::conformance::Backends>::sqlite(true)) } )*
        }
        mod on_postgres {
            $(
                #[test]
                #[ignore = "needs PostgreSQL at 127.0.0.1:5432; run with --include-ignored"]
                fn $case() { super::$case(&mut <super::$suite as $crate::storage::conformance::Backends>::pg(false)) }
            )*
        }
        mod on_postgres_grouped {
            $(
                #[test]
                #[ignore = "needs PostgreSQL at 127.0.0.1:5432; run with --include-ignored"]
                fn $case() { super::$case(&mut <super::$suite as $crate::storage::conformance::Backends>::pg(true)) }
            )*
        }
    };
    (stores $suite:ident: $($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[test]
                fn sqlite() {
                    super::$case(<super::$suite as $crate::storage::conformance::Backends>::sqlite(false));
                }

                #[test]
                #[ignore = "needs PostgreSQL at 127.0.0.1:5432; run with --include-ignored"]
                fn postgres() {
                    super::$case(<super::$suite as $crate::storage::conformance::Backends>::pg(false));
                }
            }
        )*
    };
}
pub(crate) use conformance;
