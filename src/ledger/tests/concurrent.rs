//! Writers in several processes share one PostgreSQL ledger: the head lock keeps the chain a
//! single line, and a race on the same id ends in `AlreadyExists`, never a constraint failure.

use super::super::*;
use super::harness::{Harness, Pg};
use super::single;
use crate::storage::pg::PgTx;

#[test]
#[ignore = "needs PostgreSQL at 127.0.0.1:5432; run with --include-ignored"]
fn racing_writers_on_postgres_keep_one_chain_and_one_row_per_id() {
    let mut h = Pg::connect();
    let writers = 4;
    let causes = 60;
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let mut client = h.second_client();
            std::thread::spawn(move || {
                let mut created = 0;
                // Each writer applies every cause, starting at a different one, so most ids race.
                for i in 0..causes {
                    let r = single(&format!("race:{}", (i + w * 15) % causes), 10);
                    let mut t = client.transaction().unwrap();
                    match apply(&mut PgTx::new(&mut t), &r) {
                        Ok(Applied::Created(_)) => created += 1,
                        Ok(Applied::AlreadyExists) => {}
                        Err(e) => panic!("writer {w}: {e}"),
                    }
                    t.commit().unwrap();
                }
                created
            })
        })
        .collect();
    let created: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(created, causes);
    let report = h.run(|tx| verify(tx)).unwrap_or_else(|e| panic!("verify: {e}"));
    assert_eq!(report.transfers, causes as u64);
    assert_eq!(report.currencies[0].posted_minor, 10 * causes as i128);
}
