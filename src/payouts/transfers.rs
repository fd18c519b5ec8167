//! Stripe transfers for a run, which is synchronous (its store is): a batch of requests goes
//! to the async client on a tokio runtime's handle, at most `concurrency_max` at once.

use std::sync::Arc;

use super::provider::{PayoutRequest, PayoutResult};
use super::run::Transfers;
use super::stripe::StripeClient;

/// The Stripe client behind a runtime handle.
pub struct StripeTransfers {
    client: Arc<StripeClient>,
    handle: tokio::runtime::Handle,
    concurrency_max: usize,
}

impl StripeTransfers {
    /// Called off the runtime's own threads (a blocking thread, or the CLI's main thread).
    pub fn new(client: Arc<StripeClient>, handle: tokio::runtime::Handle, concurrency_max: usize) -> StripeTransfers {
        StripeTransfers { client, handle, concurrency_max: concurrency_max.max(1) }
    }
}

impl Transfers for StripeTransfers {
    fn transfer_all(&self, requests: &[PayoutRequest]) -> Vec<PayoutResult> {
        use futures_util::stream::{self, StreamExt};
        let client = &self.client;
        self.handle.block_on(async {
            stream::iter(requests.iter().map(|r| client.transfer(r))).buffered(self.concurrency_max).collect::<Vec<_>>().await
        })
    }
}
