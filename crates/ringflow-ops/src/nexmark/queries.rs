//! The stateless Nexmark queries as typed operators: q0 (pass-through), q1 (currency
//! conversion) and q2 (selection). They read [`Event`]s and emit typed rows; no JSON lies
//! between the source and the sink.

use serde::Deserialize;

use super::model::{AuctionPrice, Bid, Event};
use ringflow_stream::data::Batch;
use ringflow_stream::operator::{Context, InitContext, OpResult, Operator};

/// Configuration of the stateless queries: nothing.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

/// `nexmark.q0`: every bid, unchanged (`SELECT * FROM bid`).
pub struct Q0;

impl Operator for Q0 {
    type In = Event;
    type Out = Bid;
    type Config = NoConfig;

    fn create(_: NoConfig, _: &InitContext) -> OpResult<Self> {
        Ok(Q0)
    }

    fn on_batch(&mut self, batch: Batch<Event>, ctx: &mut Context<'_, Bid>) -> OpResult {
        for item in batch {
            if let Event::Bid(b) = item.value {
                ctx.emit(b);
            }
        }
        Ok(())
    }
}

/// The dollar-to-euro rate of query 1.
pub const DOLLAR_TO_EURO: f64 = 0.908;

/// Query 1's price in euro cents: `0.908 * price`, rounded down to a whole cent (the
/// reference SQL leaves the result a decimal; rows keep the `Bid` type here).
pub fn to_euro(price: u64) -> u64 {
    (price as f64 * DOLLAR_TO_EURO).floor() as u64
}

/// `nexmark.q1`: every bid with its price in euros
/// (`SELECT auction, bidder, 0.908 * price AS price, date_time, extra FROM bid`).
pub struct Q1;

impl Operator for Q1 {
    type In = Event;
    type Out = Bid;
    type Config = NoConfig;

    fn create(_: NoConfig, _: &InitContext) -> OpResult<Self> {
        Ok(Q1)
    }

    fn on_batch(&mut self, batch: Batch<Event>, ctx: &mut Context<'_, Bid>) -> OpResult {
        for item in batch {
            if let Event::Bid(mut b) = item.value {
                b.price = to_euro(b.price);
                ctx.emit(b);
            }
        }
        Ok(())
    }
}

/// Query 2's selection: auctions whose id is a multiple of this.
pub const Q2_MODULUS: u64 = 123;

/// `nexmark.q2`: the auction and price of bids on some auctions
/// (`SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0`).
pub struct Q2;

impl Operator for Q2 {
    type In = Event;
    type Out = AuctionPrice;
    type Config = NoConfig;

    fn create(_: NoConfig, _: &InitContext) -> OpResult<Self> {
        Ok(Q2)
    }

    fn on_batch(&mut self, batch: Batch<Event>, ctx: &mut Context<'_, AuctionPrice>) -> OpResult {
        for item in batch {
            if let Event::Bid(b) = item.value {
                if b.auction % Q2_MODULUS == 0 {
                    ctx.emit(AuctionPrice {
                        auction: b.auction,
                        price: b.price,
                    });
                }
            }
        }
        Ok(())
    }
}
