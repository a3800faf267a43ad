//! The Nexmark records: people, auctions and bids (the types of the benchmark's
//! generator and of Flink's and Arroyo's Nexmark sources), and the rows the queries emit.

use serde::{Deserialize, Serialize};

/// A person who may sell and bid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// Id (from 1000 up).
    pub id: u64,
    /// Full name.
    pub name: String,
    /// E-mail address.
    pub email_address: String,
    /// Credit card number.
    pub credit_card: String,
    /// City.
    pub city: String,
    /// US state code.
    pub state: String,
    /// Event time (ms since the Unix epoch).
    pub date_time: i64,
    /// Padding.
    pub extra: String,
}

/// An auction of one item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auction {
    /// Id (from 1000 up).
    pub id: u64,
    /// Item name.
    pub item_name: String,
    /// Description.
    pub description: String,
    /// Initial bid (cents).
    pub initial_bid: u64,
    /// Reserve price (cents).
    pub reserve: u64,
    /// Event time: when it opened (ms since the Unix epoch).
    pub date_time: i64,
    /// When it closes (ms since the Unix epoch).
    pub expires: i64,
    /// The selling person's id.
    pub seller: u64,
    /// Category id (10..=14).
    pub category: u64,
    /// Padding.
    pub extra: String,
}

/// A bid on an auction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bid {
    /// The auction's id.
    pub auction: u64,
    /// The bidding person's id.
    pub bidder: u64,
    /// Price (cents).
    pub price: u64,
    /// Where the bid came from.
    pub channel: String,
    /// The page it was made on.
    pub url: String,
    /// Event time (ms since the Unix epoch).
    pub date_time: i64,
    /// Padding.
    pub extra: String,
}

/// One Nexmark event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A new person.
    Person(Person),
    /// A new auction.
    Auction(Auction),
    /// A bid.
    Bid(Bid),
}

impl Event {
    /// The event's time (ms since the Unix epoch).
    pub fn date_time(&self) -> i64 {
        match self {
            Event::Person(p) => p.date_time,
            Event::Auction(a) => a.date_time,
            Event::Bid(b) => b.date_time,
        }
    }
}

/// A row of query 2: the auction and price of a selected bid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionPrice {
    /// The auction's id.
    pub auction: u64,
    /// The bid's price (cents).
    pub price: u64,
}
