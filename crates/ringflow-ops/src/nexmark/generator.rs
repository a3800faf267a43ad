//! The Nexmark event generator (sans-IO, deterministic): event `n` of a stream is a pure
//! function of the seed and `n`, so instances generate disjoint shares in parallel and
//! any run, split or restore gives the same events.
//!
//! It follows the shape of the reference generator (Beam's and Flink's
//! `NexmarkGenerator`): of every 50 events 1 is a person, 3 are auctions and 46 are bids;
//! ids of people and auctions start at 1000 and grow with the event number; a bid goes to
//! a "hot" auction (a multiple of 100 among the recent ones) half of the time and to one of
//! the last 100 auctions (or up to 10 not yet opened) otherwise; bidders and sellers are
//! hot (multiples of 100) 3 times in 4, otherwise one of the last 1000 people; prices are
//! log-uniform between $1 and $1,000,000; categories are 10..=14; people live in six US
//! states. Event time advances by `1000 / event_rate` ms per event. What differs: the
//! random stream (splitmix64 seeded per event, not Java's `Random`), the padding (`extra`
//! is empty) and auction lengths (2 to 20 s of event time, uniform).

use super::model::{Auction, Bid, Event, Person};

/// People among every [`TOTAL_PROPORTION`] events.
pub const PERSON_PROPORTION: u64 = 1;
/// Auctions among every [`TOTAL_PROPORTION`] events.
pub const AUCTION_PROPORTION: u64 = 3;
/// Bids among every [`TOTAL_PROPORTION`] events.
pub const BID_PROPORTION: u64 = 46;
/// The length of the pattern of event kinds.
pub const TOTAL_PROPORTION: u64 = PERSON_PROPORTION + AUCTION_PROPORTION + BID_PROPORTION;
/// The first person's id.
pub const FIRST_PERSON_ID: u64 = 1000;
/// The first auction's id.
pub const FIRST_AUCTION_ID: u64 = 1000;
/// The first category id.
pub const FIRST_CATEGORY_ID: u64 = 10;
/// Number of categories.
pub const NUM_CATEGORIES: u64 = 5;

const HOT_AUCTION_RATIO: u64 = 100;
const HOT_SELLER_RATIO: u64 = 100;
const HOT_BIDDER_RATIO: u64 = 100;
const NUM_IN_FLIGHT_AUCTIONS: u64 = 100;
const NUM_ACTIVE_PEOPLE: u64 = 1000;
const PERSON_ID_LEAD: u64 = 10;
const AUCTION_ID_LEAD: u64 = 10;

const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

/// What fixes a stream of events.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GeneratorConfig {
    /// Seed: the same seed gives the same events.
    pub seed: u64,
    /// Event time of event 0 (ms since the Unix epoch).
    pub base_time_ms: i64,
    /// Events per second of event time (the reference's `first_event_rate`).
    pub event_rate: f64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            seed: 0,
            base_time_ms: 1_700_000_000_000,
            event_rate: 10_000.0,
        }
    }
}

/// A splitmix64 stream (small, fast, and the same everywhere).
struct Rng(u64);

impl Rng {
    fn new(seed: u64, n: u64) -> Self {
        let mut r = Rng(seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

/// The kind of event `n`.
pub fn kind_of(n: u64) -> u64 {
    n % TOTAL_PROPORTION
}

/// The 0-based id of the last person created at or before event `n`.
fn last_base0_person_id(n: u64) -> u64 {
    let epoch = n / TOTAL_PROPORTION;
    let offset = n % TOTAL_PROPORTION;
    // Past the people of this epoch: its last person.
    let offset = if offset >= PERSON_PROPORTION {
        PERSON_PROPORTION - 1
    } else {
        offset
    };
    epoch * PERSON_PROPORTION + offset
}

/// The 0-based id of the last auction created at or before event `n` (0 before any).
fn last_base0_auction_id(n: u64) -> u64 {
    let mut epoch = n / TOTAL_PROPORTION;
    let mut offset = n % TOTAL_PROPORTION;
    if offset < PERSON_PROPORTION {
        if epoch == 0 {
            return 0;
        }
        epoch -= 1;
        offset = AUCTION_PROPORTION - 1;
    } else if offset >= PERSON_PROPORTION + AUCTION_PROPORTION {
        offset = AUCTION_PROPORTION - 1;
    } else {
        offset -= PERSON_PROPORTION;
    }
    epoch * AUCTION_PROPORTION + offset
}

/// One of the people active at event `n` (or a few not created yet).
fn next_base0_person_id(n: u64, rng: &mut Rng) -> u64 {
    let people = last_base0_person_id(n) + 1;
    let active = people.min(NUM_ACTIVE_PEOPLE);
    (people - active) + rng.below(active + PERSON_ID_LEAD)
}

/// One of the auctions open at event `n` (or a few not opened yet).
fn next_base0_auction_id(n: u64, rng: &mut Rng) -> u64 {
    let max = last_base0_auction_id(n);
    let min = max.saturating_sub(NUM_IN_FLIGHT_AUCTIONS);
    min + rng.below(max - min + 1 + AUCTION_ID_LEAD)
}

/// Log-uniform between 100 and 100,000,000 cents ($1 to $1,000,000).
fn next_price(rng: &mut Rng) -> u64 {
    (10f64.powf(rng.unit() * 6.0) * 100.0).round() as u64
}

/// The event time of event `n`.
pub fn time_of(cfg: &GeneratorConfig, n: u64) -> i64 {
    let step_us = 1_000_000.0 / cfg.event_rate.max(1e-9);
    cfg.base_time_ms + ((n as f64 * step_us) / 1000.0) as i64
}

/// Event `n` of the stream `cfg` fixes.
pub fn event(cfg: &GeneratorConfig, n: u64) -> Event {
    let mut rng = Rng::new(cfg.seed, n);
    let date_time = time_of(cfg, n);
    let kind = kind_of(n);
    if kind < PERSON_PROPORTION {
        let id = FIRST_PERSON_ID + last_base0_person_id(n);
        let first = rng.pick(&FIRST_NAMES);
        let last = rng.pick(&LAST_NAMES);
        let city = rng.pick(&US_CITIES);
        let state = rng.pick(&US_STATES);
        Event::Person(Person {
            id,
            name: format!("{first} {last}"),
            email_address: format!("{}@{}.com", first.to_lowercase(), last.to_lowercase()),
            credit_card: format!(
                "{:04} {:04} {:04} {:04}",
                rng.below(10_000),
                rng.below(10_000),
                rng.below(10_000),
                rng.below(10_000)
            ),
            city: city.to_owned(),
            state: state.to_owned(),
            date_time,
            extra: String::new(),
        })
    } else if kind < PERSON_PROPORTION + AUCTION_PROPORTION {
        let id = FIRST_AUCTION_ID + last_base0_auction_id(n);
        let seller = if rng.below(4) > 0 {
            (last_base0_person_id(n) / HOT_SELLER_RATIO) * HOT_SELLER_RATIO
        } else {
            next_base0_person_id(n, &mut rng)
        } + FIRST_PERSON_ID;
        let initial_bid = next_price(&mut rng);
        let reserve = initial_bid + next_price(&mut rng);
        let length_ms = 2_000 + rng.below(18_001) as i64;
        Event::Auction(Auction {
            id,
            item_name: format!("item-{}", rng.below(10_000)),
            description: format!("description of auction {id}"),
            initial_bid,
            reserve,
            date_time,
            expires: date_time + length_ms,
            seller,
            category: FIRST_CATEGORY_ID + rng.below(NUM_CATEGORIES),
            extra: String::new(),
        })
    } else {
        let auction = if rng.below(2) > 0 {
            (last_base0_auction_id(n) / HOT_AUCTION_RATIO) * HOT_AUCTION_RATIO
        } else {
            next_base0_auction_id(n, &mut rng)
        } + FIRST_AUCTION_ID;
        let bidder = if rng.below(4) > 0 {
            (last_base0_person_id(n) / HOT_BIDDER_RATIO) * HOT_BIDDER_RATIO + 1
        } else {
            next_base0_person_id(n, &mut rng)
        } + FIRST_PERSON_ID;
        let price = next_price(&mut rng);
        let channel = rng.pick(&CHANNELS);
        Event::Bid(Bid {
            auction,
            bidder,
            price,
            channel: channel.to_owned(),
            url: format!(
                "https://www.nexmark.com/{}/item.htm?query=1&channel_id={}",
                channel.to_lowercase(),
                rng.below(10_000)
            ),
            date_time,
            extra: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_a_pure_function_of_seed_and_number() {
        let cfg = GeneratorConfig::default();
        for n in [0, 1, 4, 49, 50, 12_345] {
            assert_eq!(event(&cfg, n), event(&cfg, n));
        }
        let other = GeneratorConfig { seed: 7, ..cfg };
        assert_ne!(event(&cfg, 10), event(&other, 10));
    }

    #[test]
    fn kinds_ids_and_times_follow_the_reference_pattern() {
        let cfg = GeneratorConfig::default();
        let (mut people, mut auctions, mut bids) = (0u64, 0u64, 0u64);
        let mut last_person = None;
        let mut last_auction = None;
        for n in 0..5_000u64 {
            match event(&cfg, n) {
                Event::Person(p) => {
                    people += 1;
                    // People are numbered in order, one per 50 events.
                    assert_eq!(p.id, FIRST_PERSON_ID + n / 50);
                    assert!(last_person.is_none_or(|l| p.id == l + 1));
                    last_person = Some(p.id);
                    assert!(US_STATES.contains(&p.state.as_str()));
                }
                Event::Auction(a) => {
                    auctions += 1;
                    assert!(last_auction.is_none_or(|l| a.id == l + 1));
                    last_auction = Some(a.id);
                    assert!((10..15).contains(&a.category));
                    assert!(a.reserve > a.initial_bid && a.expires > a.date_time);
                    assert!(a.seller >= FIRST_PERSON_ID);
                }
                Event::Bid(b) => {
                    bids += 1;
                    assert!((100..=100_000_000).contains(&b.price));
                    assert!(b.auction >= FIRST_AUCTION_ID && b.bidder >= FIRST_PERSON_ID);
                }
            }
            assert_eq!(event(&cfg, n).date_time(), time_of(&cfg, n));
        }
        assert_eq!((people, auctions, bids), (100, 300, 4600));
        // 10,000 events per second of event time: event 5000 is 500 ms after event 0.
        assert_eq!(time_of(&cfg, 5_000) - time_of(&cfg, 0), 500);
    }
}
