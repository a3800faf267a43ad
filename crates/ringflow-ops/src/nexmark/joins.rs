//! The Nexmark queries that join people, auctions and bids, as [`TwoInput`] operators:
//! q3's incremental join (`nexmark.q3`), the winning bids of closed auctions that q4 and
//! q6 start from (`nexmark.winning_bids`), and q8's windowed join (`nexmark.q8`). Each
//! takes its two inputs on `hash` edges keyed by the join key (see [`super::select`]).

use serde::{Deserialize, Serialize};

use super::model::{Auction, Bid, NewSeller, Person, SellerItem, WinningBid};
use super::queries::NoConfig;
use crate::joins::window::{Admit, WindowJoin};
use ringflow_stream::data::{Batch, EventTime, Key};
use ringflow_stream::operator::{Context, InitContext, OpResult, Timer};
use ringflow_stream::state::{KeyedState, PartitionedState};
use ringflow_stream::TwoInput;

/// The key of a record, or its id in decimal when it came without one.
fn key_or(key: Option<Key>, id: u64) -> Key {
    key.unwrap_or_else(|| id.to_string())
}

/// Query 3's states.
pub const Q3_STATES: [&str; 3] = ["OR", "ID", "CA"];
/// Query 3's category.
pub const Q3_CATEGORY: u64 = 10;

/// What q3 keeps per person id.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Q3Key {
    /// `None`: the person was not seen yet; `Some(None)`: seen, but not in a q3 state;
    /// `Some(Some(row))`: seen, with the name, city and state of its rows.
    person: Option<Option<(String, String, String)>>,
    /// Category-10 auctions of this seller waiting for the person.
    waiting: Vec<u64>,
}

/// `nexmark.q3`, local item suggestion: who sells category-10 items in Oregon, Idaho or
/// California (`SELECT P.name, P.city, P.state, A.id FROM auction A JOIN person P ON
/// A.seller = P.id WHERE A.category = 10 AND P.state IN ('OR', 'ID', 'CA')`). Left:
/// persons keyed by id; right: auctions keyed by seller. An incremental join without
/// windows: a row is emitted once both records are in, whichever came first; a person
/// is kept for the job's life (auctions of sellers not yet seen wait for them).
pub struct Q3 {
    state: KeyedState<Q3Key>,
}

impl TwoInput for Q3 {
    type Left = Person;
    type Right = Auction;
    type Out = SellerItem;
    type Config = NoConfig;

    fn create(_: NoConfig, init: &InitContext) -> OpResult<Self> {
        Ok(Q3 {
            state: KeyedState::new(init.ring),
        })
    }

    fn on_left(&mut self, batch: Batch<Person>, ctx: &mut Context<'_, SellerItem>) -> OpResult {
        for item in batch {
            let p = item.value;
            let key = key_or(item.key, p.id);
            let local = Q3_STATES.contains(&p.state.as_str());
            let entry = self.state.entry_or_insert_with(&key, Q3Key::default);
            if !local {
                entry.person = Some(None);
                entry.waiting.clear();
                continue;
            }
            for id in entry.waiting.drain(..) {
                ctx.emit_keyed(
                    key.clone(),
                    SellerItem {
                        name: p.name.clone(),
                        city: p.city.clone(),
                        state: p.state.clone(),
                        id,
                    },
                );
            }
            entry.person = Some(Some((p.name, p.city, p.state)));
        }
        Ok(())
    }

    fn on_right(&mut self, batch: Batch<Auction>, ctx: &mut Context<'_, SellerItem>) -> OpResult {
        for item in batch {
            let a = item.value;
            if a.category != Q3_CATEGORY {
                continue;
            }
            let key = key_or(item.key, a.seller);
            let entry = self.state.entry_or_insert_with(&key, Q3Key::default);
            match &entry.person {
                None => entry.waiting.push(a.id),
                Some(None) => {}
                Some(Some((name, city, state))) => ctx.emit_keyed(
                    key.clone(),
                    SellerItem {
                        name: name.clone(),
                        city: city.clone(),
                        state: state.clone(),
                        id: a.id,
                    },
                ),
            }
        }
        Ok(())
    }

    fn keyed_state(&mut self) -> Option<&mut dyn PartitionedState> {
        Some(&mut self.state)
    }
}

/// What `nexmark.winning_bids` keys its output by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WinnerKey {
    /// The auction's category (q4).
    #[default]
    Category,
    /// The seller (q6).
    Seller,
}

/// Config of `nexmark.winning_bids`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WinningBidsConfig {
    /// The output's key.
    #[serde(default)]
    pub key_by: WinnerKey,
}

/// What the winning-bid join keeps per auction id.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OpenAuction {
    /// `(id, seller, category, opened, expires)` once the auction arrived.
    auction: Option<(u64, u64, u64, EventTime, EventTime)>,
    /// The highest price of a bid within the auction's time so far.
    best: Option<u64>,
    /// Bids that came before their auction: `(time, price)`.
    early: Vec<(EventTime, u64)>,
}

/// `nexmark.winning_bids`: each auction's highest bid among those made while it was
/// open (`B.date_time BETWEEN A.date_time AND A.expires`, both ends included), emitted
/// when the watermark passes `expires` (auctions without such a bid emit nothing).
/// Left: auctions keyed by id; right: bids keyed by auction. Bids that arrive before
/// their auction wait for it until the watermark passes them (by then the auction, which
/// opens no later than its bids, has arrived). The reserve price is not checked (as in
/// the reference SQL of q4 and q6; Beam's `WinningBids` checks it).
pub struct WinningBids {
    state: KeyedState<OpenAuction>,
    key_by: WinnerKey,
}

impl TwoInput for WinningBids {
    type Left = Auction;
    type Right = Bid;
    type Out = WinningBid;
    type Config = WinningBidsConfig;

    fn create(c: WinningBidsConfig, init: &InitContext) -> OpResult<Self> {
        Ok(WinningBids {
            state: KeyedState::new(init.ring),
            key_by: c.key_by,
        })
    }

    fn on_left(&mut self, batch: Batch<Auction>, ctx: &mut Context<'_, WinningBid>) -> OpResult {
        for item in batch {
            let a = item.value;
            let key = key_or(item.key, a.id);
            let open = self.state.entry_or_insert_with(&key, OpenAuction::default);
            open.auction = Some((a.id, a.seller, a.category, a.date_time, a.expires));
            for (t, price) in open.early.drain(..) {
                if a.date_time <= t && t <= a.expires {
                    open.best = Some(open.best.map_or(price, |b| b.max(price)));
                }
            }
            ctx.set_timer(a.expires, key);
        }
        Ok(())
    }

    fn on_right(&mut self, batch: Batch<Bid>, ctx: &mut Context<'_, WinningBid>) -> OpResult {
        let wm = ctx.watermark();
        for item in batch {
            let b = item.value;
            if b.date_time <= wm {
                ctx.count("late_dropped", 1);
                continue;
            }
            let key = key_or(item.key, b.auction);
            let open = self.state.entry_or_insert_with(&key, OpenAuction::default);
            match open.auction {
                Some((_, _, _, opened, expires)) => {
                    if opened <= b.date_time && b.date_time <= expires {
                        open.best = Some(open.best.map_or(b.price, |p| p.max(b.price)));
                    }
                }
                None => {
                    open.early.push((b.date_time, b.price));
                    ctx.set_timer(b.date_time, key);
                }
            }
        }
        Ok(())
    }

    fn on_timer(&mut self, timer: Timer, ctx: &mut Context<'_, WinningBid>) -> OpResult {
        let wm = ctx.watermark().max(timer.time);
        let Some(open) = self.state.get_mut(&timer.key) else {
            return Ok(());
        };
        match open.auction {
            Some((auction, seller, category, _, expires)) if expires <= wm => {
                if let Some(price) = open.best {
                    let key = match self.key_by {
                        WinnerKey::Category => category,
                        WinnerKey::Seller => seller,
                    };
                    ctx.emit_keyed(
                        key.to_string(),
                        WinningBid {
                            auction,
                            seller,
                            category,
                            price,
                            expires,
                        },
                    );
                }
                self.state.remove(&timer.key);
            }
            Some(_) => {}
            None => {
                open.early.retain(|(t, _)| *t > wm);
                if open.early.is_empty() {
                    self.state.remove(&timer.key);
                }
            }
        }
        Ok(())
    }

    fn keyed_state(&mut self) -> Option<&mut dyn PartitionedState> {
        Some(&mut self.state)
    }
}

/// Query 8's window (ms).
pub const Q8_WINDOW_MS: EventTime = 10_000;

/// Config of `nexmark.q8`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Q8Config {
    /// The tumbling window's length (ms; default 10 s).
    #[serde(default = "q8_window")]
    pub window_ms: EventTime,
}

fn q8_window() -> EventTime {
    Q8_WINDOW_MS
}

/// `nexmark.q8`, monitor new users: people who opened an auction in the same 10 s
/// tumbling window in which they registered (the windowed join of persons by id and
/// auctions by seller on equal windows; one row per person and window). Built on the
/// same windowed-join core as `join.window`. Left: persons keyed by id; right:
/// auctions keyed by seller.
pub struct Q8 {
    join: WindowJoin<(u64, String), u64>,
}

impl TwoInput for Q8 {
    type Left = Person;
    type Right = Auction;
    type Out = NewSeller;
    type Config = Q8Config;

    fn create(c: Q8Config, init: &InitContext) -> OpResult<Self> {
        Ok(Q8 {
            join: WindowJoin::new(c.window_ms, init.ring)?,
        })
    }

    fn on_left(&mut self, batch: Batch<Person>, ctx: &mut Context<'_, NewSeller>) -> OpResult {
        for item in batch {
            let p = item.value;
            let key = key_or(item.key, p.id);
            match self
                .join
                .left(&key, p.date_time, (p.id, p.name), ctx.watermark())
            {
                Admit::Kept(at) => ctx.set_timer(at, key),
                Admit::Late => ctx.count("late_dropped", 1),
            }
        }
        Ok(())
    }

    fn on_right(&mut self, batch: Batch<Auction>, ctx: &mut Context<'_, NewSeller>) -> OpResult {
        for item in batch {
            let a = item.value;
            let key = key_or(item.key, a.seller);
            match self.join.right(&key, a.date_time, a.id, ctx.watermark()) {
                Admit::Kept(at) => ctx.set_timer(at, key),
                Admit::Late => ctx.count("late_dropped", 1),
            }
        }
        Ok(())
    }

    fn on_timer(&mut self, timer: Timer, ctx: &mut Context<'_, NewSeller>) -> OpResult {
        let wm = ctx.watermark().max(timer.time);
        let mut rows = Vec::new();
        self.join.close(&timer.key, wm, |start, people, _auctions| {
            for (id, name) in people {
                rows.push(NewSeller {
                    id: *id,
                    name: name.clone(),
                    window_start: start,
                });
            }
        });
        for row in rows {
            ctx.emit_keyed(timer.key.clone(), row);
        }
        Ok(())
    }

    fn keyed_state(&mut self) -> Option<&mut dyn PartitionedState> {
        Some(&mut self.join.sides)
    }
}
