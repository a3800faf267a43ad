//! The first stage of the stateful queries: one kind of event out of the stream, keyed
//! for the `hash` edge that follows. `nexmark.persons` (keyed by id), `nexmark.auctions`
//! (`key_by`: `"id"`, default, `"seller"` or `"category"`), `nexmark.bids` (`key_by`:
//! `"auction"`, default, `"bidder"` or `"none"`). Keys are the ids in decimal.

use serde::Deserialize;

use super::model::{Auction, Bid, Event, Person};
use super::queries::NoConfig;
use ringflow_stream::data::Batch;
use ringflow_stream::operator::{Context, InitContext, OpResult, Operator};

/// `nexmark.persons`: the people, keyed by id.
pub struct Persons;

impl Operator for Persons {
    type In = Event;
    type Out = Person;
    type Config = NoConfig;

    fn create(_: NoConfig, _: &InitContext) -> OpResult<Self> {
        Ok(Persons)
    }

    fn on_batch(&mut self, batch: Batch<Event>, ctx: &mut Context<'_, Person>) -> OpResult {
        for item in batch {
            if let Event::Person(p) = item.value {
                ctx.emit_keyed(p.id.to_string(), p);
            }
        }
        Ok(())
    }
}

/// What `nexmark.auctions` keys auctions by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuctionKey {
    /// The auction's id.
    #[default]
    Id,
    /// The seller's id.
    Seller,
    /// The category.
    Category,
}

/// Config of `nexmark.auctions`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuctionsConfig {
    /// The key.
    #[serde(default)]
    pub key_by: AuctionKey,
}

/// `nexmark.auctions`: the auctions, keyed as configured.
pub struct Auctions(AuctionKey);

impl Operator for Auctions {
    type In = Event;
    type Out = Auction;
    type Config = AuctionsConfig;

    fn create(c: AuctionsConfig, _: &InitContext) -> OpResult<Self> {
        Ok(Auctions(c.key_by))
    }

    fn on_batch(&mut self, batch: Batch<Event>, ctx: &mut Context<'_, Auction>) -> OpResult {
        for item in batch {
            if let Event::Auction(a) = item.value {
                let key = match self.0 {
                    AuctionKey::Id => a.id,
                    AuctionKey::Seller => a.seller,
                    AuctionKey::Category => a.category,
                };
                ctx.emit_keyed(key.to_string(), a);
            }
        }
        Ok(())
    }
}

/// What `nexmark.bids` keys bids by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BidKey {
    /// The auction's id.
    #[default]
    Auction,
    /// The bidder's id.
    Bidder,
    /// No key.
    None,
}

/// Config of `nexmark.bids`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BidsConfig {
    /// The key.
    #[serde(default)]
    pub key_by: BidKey,
}

/// `nexmark.bids`: the bids, keyed as configured.
pub struct Bids(BidKey);

impl Operator for Bids {
    type In = Event;
    type Out = Bid;
    type Config = BidsConfig;

    fn create(c: BidsConfig, _: &InitContext) -> OpResult<Self> {
        Ok(Bids(c.key_by))
    }

    fn on_batch(&mut self, batch: Batch<Event>, ctx: &mut Context<'_, Bid>) -> OpResult {
        for item in batch {
            if let Event::Bid(b) = item.value {
                match self.0 {
                    BidKey::Auction => ctx.emit_keyed(b.auction.to_string(), b),
                    BidKey::Bidder => ctx.emit_keyed(b.bidder.to_string(), b),
                    BidKey::None => ctx.emit(b),
                }
            }
        }
        Ok(())
    }
}
