//! The Nexmark queries that aggregate over windows or over closed auctions: q4 (average
//! winning price per category), q5 (hot items over sliding windows, in two stages), q6
//! (average winning price of a seller's last 10 auctions) and q7 (highest bid per
//! tumbling window, in two stages). Windows follow the engine's rule: a window
//! `[start, end)` closes once the watermark reaches `end - 1`.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::model::{AuctionCount, Bid, CategoryPrice, Event, HotItem, SellerPrice, WinningBid};
use super::queries::NoConfig;
use ringflow_stream::data::{Batch, EventTime};
use ringflow_stream::operator::{Context, InitContext, OpError, OpResult, Operator, Timer};
use ringflow_stream::state::{KeyedState, PartitionedState};

/// Per category: the sum and count of winning prices, and whether a row is due.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CategorySum {
    category: u64,
    sum: u128,
    count: u64,
    changed: bool,
}

/// `nexmark.q4`, average price per category (`SELECT category, AVG(final) FROM (SELECT
/// MAX(B.price) AS final, A.category ... GROUP BY A.id, A.category) GROUP BY category`):
/// reads `nexmark.winning_bids` keyed by category and keeps a running average. It emits
/// an upsert stream: at each watermark, one row per category that changed since the
/// last, the latest row of a category superseding earlier ones; the average of integer
/// cents is rounded down (SQL's `AVG` of a `BIGINT`).
pub struct Q4 {
    state: KeyedState<CategorySum>,
}

impl Operator for Q4 {
    type In = WinningBid;
    type Out = CategoryPrice;
    type Config = NoConfig;

    fn create(_: NoConfig, init: &InitContext) -> OpResult<Self> {
        Ok(Q4 {
            state: KeyedState::new(init.ring),
        })
    }

    fn on_batch(
        &mut self,
        batch: Batch<WinningBid>,
        _: &mut Context<'_, CategoryPrice>,
    ) -> OpResult {
        for item in batch {
            let w = item.value;
            let key = item.key.unwrap_or_else(|| w.category.to_string());
            let s = self.state.entry_or_insert_with(&key, CategorySum::default);
            s.category = w.category;
            s.sum += u128::from(w.price);
            s.count += 1;
            s.changed = true;
        }
        Ok(())
    }

    fn on_watermark(&mut self, _: EventTime, ctx: &mut Context<'_, CategoryPrice>) -> OpResult {
        let mut due = Vec::new();
        for (key, s) in self.state.iter() {
            if s.changed {
                due.push(key.clone());
            }
        }
        due.sort();
        for key in due {
            let Some(s) = self.state.get_mut(&key) else {
                continue;
            };
            s.changed = false;
            let row = CategoryPrice {
                category: s.category,
                avg_price: (s.sum / u128::from(s.count.max(1))) as u64,
                auctions: s.count,
            };
            ctx.emit_keyed(key, row);
        }
        Ok(())
    }

    fn keyed_state(&mut self) -> Option<&mut dyn PartitionedState> {
        Some(&mut self.state)
    }
}

/// Query 5's window length (ms).
pub const Q5_SIZE_MS: EventTime = 10_000;
/// Query 5's slide (ms).
pub const Q5_SLIDE_MS: EventTime = 2_000;

/// Config of both stages of q5.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Q5Config {
    /// Window length (ms; default 10 s).
    #[serde(default = "q5_size")]
    pub size_ms: EventTime,
    /// Distance between window starts (ms; default 2 s; at most `size_ms`).
    #[serde(default = "q5_slide")]
    pub slide_ms: EventTime,
}

fn q5_size() -> EventTime {
    Q5_SIZE_MS
}

fn q5_slide() -> EventTime {
    Q5_SLIDE_MS
}

impl Q5Config {
    fn check(&self) -> OpResult<(EventTime, EventTime)> {
        if self.slide_ms <= 0 || self.size_ms < self.slide_ms || self.size_ms > 1 << 40 {
            return Err(OpError(format!(
                "need 0 < slide_ms <= size_ms <= 2^40 (got slide_ms {}, size_ms {})",
                self.slide_ms, self.size_ms
            )));
        }
        if self.size_ms / self.slide_ms > 1000 {
            return Err("size_ms / slide_ms must be at most 1000".into());
        }
        Ok((self.size_ms, self.slide_ms))
    }
}

/// `nexmark.q5_count`, q5's first stage: bids per auction in every sliding window
/// (`HOP(date_time, slide, size)`: windows of `size_ms` starting at each multiple of
/// `slide_ms`), emitted when a window closes, keyed by the window's start. Its input is
/// keyed by auction id (as `nexmark.bids` keys it by default): the key is the auction.
pub struct Q5Count {
    size: EventTime,
    slide: EventTime,
    state: KeyedState<BTreeMap<EventTime, u64>>,
}

impl Operator for Q5Count {
    type In = Bid;
    type Out = AuctionCount;
    type Config = Q5Config;

    fn create(c: Q5Config, init: &InitContext) -> OpResult<Self> {
        let (size, slide) = c.check()?;
        Ok(Q5Count {
            size,
            slide,
            state: KeyedState::new(init.ring),
        })
    }

    fn on_batch(&mut self, batch: Batch<Bid>, ctx: &mut Context<'_, AuctionCount>) -> OpResult {
        let wm = ctx.watermark();
        for item in batch {
            let b = item.value;
            let key = item.key.unwrap_or_else(|| b.auction.to_string());
            let t = b.date_time;
            let last = t.div_euclid(self.slide) * self.slide;
            let windows = self.state.entry_or_insert_with(&key, BTreeMap::new);
            let mut start = last;
            let mut late = 0;
            while start > t - self.size {
                let close = start + self.size - 1;
                if close <= wm {
                    late += 1;
                } else {
                    let n = windows.entry(start).or_insert(0);
                    if *n == 0 {
                        ctx.set_timer(close, key.clone());
                    }
                    *n += 1;
                }
                start -= self.slide;
            }
            if late > 0 {
                ctx.count("late_dropped", late);
            }
        }
        Ok(())
    }

    fn on_timer(&mut self, timer: Timer, ctx: &mut Context<'_, AuctionCount>) -> OpResult {
        let wm = ctx.watermark().max(timer.time);
        let Some(windows) = self.state.get_mut(&timer.key) else {
            return Ok(());
        };
        let auction: u64 = timer.key.parse().unwrap_or_default();
        let first_open = wm.saturating_sub(self.size - 2);
        let open = windows.split_off(&first_open);
        let closed = std::mem::replace(windows, open);
        if windows.is_empty() {
            self.state.remove(&timer.key);
        }
        for (start, count) in closed {
            ctx.emit_keyed(
                start.to_string(),
                AuctionCount {
                    auction,
                    count,
                    window_start: start,
                },
            );
        }
        Ok(())
    }

    fn keyed_state(&mut self) -> Option<&mut dyn PartitionedState> {
        Some(&mut self.state)
    }
}

/// The leaders of one window: the highest count and the auctions that have it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Leaders {
    count: u64,
    auctions: Vec<u64>,
}

/// `nexmark.q5`, hot items: per sliding window, the auctions with the most bids (all of
/// them on a tie), from `nexmark.q5_count` keyed by window; emitted when the window
/// closes (by then every count of it has arrived: the first stage sends a window's
/// counts before the watermark that closes it).
pub struct Q5 {
    size: EventTime,
    state: KeyedState<Leaders>,
}

impl Operator for Q5 {
    type In = AuctionCount;
    type Out = HotItem;
    type Config = Q5Config;

    fn create(c: Q5Config, init: &InitContext) -> OpResult<Self> {
        let (size, _) = c.check()?;
        Ok(Q5 {
            size,
            state: KeyedState::new(init.ring),
        })
    }

    fn on_batch(&mut self, batch: Batch<AuctionCount>, ctx: &mut Context<'_, HotItem>) -> OpResult {
        for item in batch {
            let c = item.value;
            let key = item.key.unwrap_or_else(|| c.window_start.to_string());
            let l = self.state.entry_or_insert_with(&key, Leaders::default);
            if l.auctions.is_empty() {
                ctx.set_timer(c.window_start + self.size - 1, key);
            }
            if c.count > l.count {
                l.count = c.count;
                l.auctions.clear();
            }
            if c.count == l.count {
                l.auctions.push(c.auction);
            }
        }
        Ok(())
    }

    fn on_timer(&mut self, timer: Timer, ctx: &mut Context<'_, HotItem>) -> OpResult {
        let Some(mut l) = self.state.remove(&timer.key) else {
            return Ok(());
        };
        let start = timer.time - (self.size - 1);
        l.auctions.sort_unstable();
        for auction in l.auctions {
            ctx.emit_keyed(
                timer.key.clone(),
                HotItem {
                    auction,
                    count: l.count,
                    window_start: start,
                    window_end: start + self.size,
                },
            );
        }
        Ok(())
    }

    fn keyed_state(&mut self) -> Option<&mut dyn PartitionedState> {
        Some(&mut self.state)
    }
}

/// How many of a seller's last auctions q6 averages.
pub const Q6_LAST: usize = 10;

/// Per seller: closed auctions not yet taken in, and the last prices.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SellerState {
    /// The seller's id.
    seller: u64,
    /// `(expires, auction, price)` waiting for the watermark to pass `expires`.
    pending: Vec<(EventTime, u64, u64)>,
    /// The winning prices of the last [`Q6_LAST`] auctions, oldest first.
    last: VecDeque<u64>,
}

/// `nexmark.q6`, average selling price by seller: after each closed auction of a seller,
/// the average winning price of their last 10 closed auctions (the query's description
/// and Beam's `Query6`; the reference SQL's `ROWS BETWEEN 10 PRECEDING AND CURRENT ROW`
/// would be 11). Reads `nexmark.winning_bids` keyed by seller. So the order is the same
/// on every run, a seller's auctions are taken in by closing time, then id, once the
/// watermark passes their closing time.
pub struct Q6 {
    state: KeyedState<SellerState>,
}

impl Operator for Q6 {
    type In = WinningBid;
    type Out = SellerPrice;
    type Config = NoConfig;

    fn create(_: NoConfig, init: &InitContext) -> OpResult<Self> {
        Ok(Q6 {
            state: KeyedState::new(init.ring),
        })
    }

    fn on_batch(
        &mut self,
        batch: Batch<WinningBid>,
        ctx: &mut Context<'_, SellerPrice>,
    ) -> OpResult {
        for item in batch {
            let w = item.value;
            let key = item.key.unwrap_or_else(|| w.seller.to_string());
            let s = self.state.entry_or_insert_with(&key, SellerState::default);
            s.seller = w.seller;
            s.pending.push((w.expires, w.auction, w.price));
            ctx.set_timer(w.expires, key);
        }
        Ok(())
    }

    fn on_timer(&mut self, timer: Timer, ctx: &mut Context<'_, SellerPrice>) -> OpResult {
        let wm = ctx.watermark().max(timer.time);
        let Some(s) = self.state.get_mut(&timer.key) else {
            return Ok(());
        };
        let seller = s.seller;
        s.pending.sort_unstable();
        let due = s.pending.partition_point(|p| p.0 <= wm);
        let taken: Vec<_> = s.pending.drain(..due).collect();
        for (_, auction, price) in taken {
            if s.last.len() == Q6_LAST {
                s.last.pop_front();
            }
            s.last.push_back(price);
            let n = s.last.len() as u64;
            let sum: u128 = s.last.iter().map(|&p| u128::from(p)).sum();
            ctx.emit_keyed(
                timer.key.clone(),
                SellerPrice {
                    seller,
                    avg_price: (sum / u128::from(n)) as u64,
                    auctions: n,
                    auction,
                },
            );
        }
        Ok(())
    }

    fn keyed_state(&mut self) -> Option<&mut dyn PartitionedState> {
        Some(&mut self.state)
    }
}

/// Query 7's window length (ms).
pub const Q7_WINDOW_MS: EventTime = 10_000;

/// Config of both stages of q7.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Q7Config {
    /// The tumbling window's length (ms; default 10 s).
    #[serde(default = "q7_window")]
    pub window_ms: EventTime,
}

fn q7_window() -> EventTime {
    Q7_WINDOW_MS
}

impl Q7Config {
    fn check(&self) -> OpResult<EventTime> {
        if self.window_ms <= 0 || self.window_ms > 1 << 40 {
            return Err(OpError(format!(
                "window_ms must be in 1..=2^40 (got {})",
                self.window_ms
            )));
        }
        Ok(self.window_ms)
    }
}

/// The highest bids of one window so far: their price and the bids (ties kept).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Highest {
    price: u64,
    bids: Vec<Bid>,
}

impl Highest {
    fn offer(&mut self, b: Bid) {
        if b.price > self.price || self.bids.is_empty() {
            self.price = b.price;
            self.bids.clear();
        }
        if b.price == self.price {
            self.bids.push(b);
        }
    }
}

/// `nexmark.q7_local`, q7's first stage, next to the source: this instance's highest
/// bids per tumbling window, sent on when the window closes, keyed by its start.
/// (State per window, not per key: a snapshot restored on several instances after a
/// rescale still sends correct candidates, since the second stage takes the maximum.)
pub struct Q7Local {
    size: EventTime,
    windows: BTreeMap<EventTime, Highest>,
}

impl Operator for Q7Local {
    type In = Event;
    type Out = Bid;
    type Config = Q7Config;

    fn create(c: Q7Config, _: &InitContext) -> OpResult<Self> {
        Ok(Q7Local {
            size: c.check()?,
            windows: BTreeMap::new(),
        })
    }

    fn on_batch(&mut self, batch: Batch<Event>, ctx: &mut Context<'_, Bid>) -> OpResult {
        let wm = ctx.watermark();
        for item in batch {
            if let Event::Bid(b) = item.value {
                let start = b.date_time.div_euclid(self.size) * self.size;
                if start + self.size - 1 <= wm {
                    ctx.count("late_dropped", 1);
                    continue;
                }
                self.windows.entry(start).or_default().offer(b);
            }
        }
        Ok(())
    }

    fn on_watermark(&mut self, wm: EventTime, ctx: &mut Context<'_, Bid>) -> OpResult {
        while let Some(entry) = self.windows.first_entry() {
            let start = *entry.key();
            if start.saturating_add(self.size - 1) > wm {
                break;
            }
            for b in entry.remove().bids {
                ctx.emit_keyed(start.to_string(), b);
            }
        }
        Ok(())
    }

    fn snapshot(&mut self) -> OpResult<Option<Vec<u8>>> {
        ringflow_stream::checkpoint::to_bytes(&self.windows).map(Some)
    }

    fn restore(&mut self, states: Vec<Vec<u8>>) -> OpResult {
        for bytes in states {
            let windows: BTreeMap<EventTime, Highest> =
                ringflow_stream::checkpoint::from_bytes(&bytes)?;
            for (start, h) in windows {
                let mine = self.windows.entry(start).or_default();
                for b in h.bids {
                    mine.offer(b);
                }
            }
        }
        Ok(())
    }
}

/// `nexmark.q7`, highest bid: the bids with the highest price in each 10 s tumbling
/// window `[start, start + 10 s)` (the reference SQL's `BETWEEN end - 10 s AND end`
/// would count a bid at `end` in two windows; here each bid is in one), all of them on
/// a tie. Reads `nexmark.q7_local` keyed by window start.
pub struct Q7 {
    size: EventTime,
    state: KeyedState<Highest>,
}

impl Operator for Q7 {
    type In = Bid;
    type Out = Bid;
    type Config = Q7Config;

    fn create(c: Q7Config, init: &InitContext) -> OpResult<Self> {
        Ok(Q7 {
            size: c.check()?,
            state: KeyedState::new(init.ring),
        })
    }

    fn on_batch(&mut self, batch: Batch<Bid>, ctx: &mut Context<'_, Bid>) -> OpResult {
        for item in batch {
            let b = item.value;
            let start = b.date_time.div_euclid(self.size) * self.size;
            let key = item.key.unwrap_or_else(|| start.to_string());
            let h = self.state.entry_or_insert_with(&key, Highest::default);
            if h.bids.is_empty() {
                ctx.set_timer(start + self.size - 1, key);
            }
            h.offer(b);
        }
        Ok(())
    }

    fn on_timer(&mut self, timer: Timer, ctx: &mut Context<'_, Bid>) -> OpResult {
        if let Some(h) = self.state.remove(&timer.key) {
            for b in h.bids {
                ctx.emit_keyed(timer.key.clone(), b);
            }
        }
        Ok(())
    }

    fn keyed_state(&mut self) -> Option<&mut dyn PartitionedState> {
        Some(&mut self.state)
    }
}
