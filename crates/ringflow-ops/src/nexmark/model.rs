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

/// A row of query 3: a local seller of a category-10 item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SellerItem {
    /// The seller's name.
    pub name: String,
    /// The seller's city.
    pub city: String,
    /// The seller's state.
    pub state: String,
    /// The auction's id.
    pub id: u64,
}

/// A closed auction with its winning (highest in-time) bid: what queries 4 and 6 start
/// from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WinningBid {
    /// The auction's id.
    pub auction: u64,
    /// The seller's id.
    pub seller: u64,
    /// The auction's category.
    pub category: u64,
    /// The highest bid's price (cents).
    pub price: u64,
    /// When the auction closed (its `expires`): the row's event time.
    pub expires: i64,
}

/// A row of query 4: the average winning price of a category so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryPrice {
    /// The category.
    pub category: u64,
    /// Average of its closed auctions' winning prices (cents, rounded down).
    pub avg_price: u64,
    /// How many closed auctions that average covers.
    pub auctions: u64,
}

/// The bids one auction got in one window (query 5's first stage).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionCount {
    /// The auction's id.
    pub auction: u64,
    /// Bids on it in the window.
    pub count: u64,
    /// The window's start (ms).
    pub window_start: i64,
}

/// A row of query 5: an auction with the most bids in a window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HotItem {
    /// The auction's id.
    pub auction: u64,
    /// Its bids in the window.
    pub count: u64,
    /// The window's start (ms, inclusive).
    pub window_start: i64,
    /// The window's end (ms, exclusive).
    pub window_end: i64,
}

/// A row of query 6: a seller's average winning price over their last closed auctions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SellerPrice {
    /// The seller's id.
    pub seller: u64,
    /// Average winning price of their last (up to 10) closed auctions (cents, rounded
    /// down).
    pub avg_price: u64,
    /// How many auctions that average covers (1 to 10).
    pub auctions: u64,
    /// The auction whose closing produced this row.
    pub auction: u64,
}

/// A row of query 8: a person who opened an auction in the window they registered in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSeller {
    /// The person's id.
    pub id: u64,
    /// The person's name.
    pub name: String,
    /// The window's start (ms).
    pub window_start: i64,
}
