//! Every Nexmark query written again as a plain single-threaded loop over the generated
//! events, straight from the query's definition (sharing no code with the operators):
//! what tests compare a cluster's results with, and what `ringflow nexmark run --check`
//! compares a run's results with.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde_json::{json, Value};

use super::generator::{event, GeneratorConfig};
use super::model::Event;

/// The queries, in order.
pub const QUERIES: [&str; 9] = ["q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8"];

/// The rows query `q` gives for the first `events` events of `cfg`, as compact JSON
/// text, sorted; for q4 (an upsert stream) its final table, one row per category.
/// `None` for an unknown query.
pub fn expected(q: &str, cfg: &GeneratorConfig, events: u64) -> Option<Vec<String>> {
    let all: Vec<Event> = (0..events).map(|n| event(cfg, n)).collect();
    let rows: Vec<Value> = match q {
        "q0" | "q1" | "q2" => stateless(q, &all),
        "q3" => q3(&all),
        "q4" => q4(&all),
        "q5" => q5(&all),
        "q6" => q6(&all),
        "q7" => q7(&all),
        "q8" => q8(&all),
        _ => return None,
    };
    let mut text: Vec<String> = rows.iter().map(Value::to_string).collect();
    text.sort();
    Some(text)
}

/// A run's output rows (each part's lines in the order they were written; a keyed row
/// as the file sink writes it, `{"key", "value"}`) the way [`expected`] gives them:
/// the rows alone, sorted, and for q4 only the latest row of each category.
pub fn normalize(q: &str, parts: &[Vec<Value>]) -> Vec<String> {
    let unwrap = |row: &Value| match row.as_object() {
        Some(o) if o.len() == 2 && o.contains_key("key") => {
            o.get("value").cloned().unwrap_or(Value::Null)
        }
        _ => row.clone(),
    };
    let mut rows: Vec<String> = if q == "q4" {
        let mut latest = BTreeMap::new();
        for part in parts {
            for row in part.iter().map(unwrap) {
                latest.insert(row["category"].to_string(), row.to_string());
            }
        }
        latest.into_values().collect()
    } else {
        parts
            .iter()
            .flatten()
            .map(|r| unwrap(r).to_string())
            .collect()
    };
    rows.sort();
    rows
}

fn stateless(q: &str, all: &[Event]) -> Vec<Value> {
    let mut rows = Vec::new();
    for e in all {
        let Event::Bid(b) = e else { continue };
        let full = json!({
            "auction": b.auction, "bidder": b.bidder, "price": b.price, "channel": b.channel,
            "url": b.url, "date_time": b.date_time, "extra": b.extra,
        });
        match q {
            // SELECT * FROM bid
            "q0" => rows.push(full),
            // SELECT auction, bidder, 0.908 * price AS price, date_time, extra FROM bid
            "q1" => {
                let mut row = full;
                row["price"] = json!((b.price as f64 * 0.908).floor() as u64);
                rows.push(row);
            }
            // SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0
            _ if b.auction % 123 == 0 => rows.push(json!({"auction": b.auction, "price": b.price})),
            _ => {}
        }
    }
    rows
}

/// SELECT P.name, P.city, P.state, A.id FROM auction A JOIN person P ON A.seller = P.id
/// WHERE A.category = 10 AND P.state IN ('OR', 'ID', 'CA')
fn q3(all: &[Event]) -> Vec<Value> {
    let people: HashMap<u64, (&str, &str, &str)> = all
        .iter()
        .filter_map(|e| match e {
            Event::Person(p) if ["OR", "ID", "CA"].contains(&p.state.as_str()) => {
                Some((p.id, (p.name.as_str(), p.city.as_str(), p.state.as_str())))
            }
            _ => None,
        })
        .collect();
    all.iter()
        .filter_map(|e| match e {
            Event::Auction(a) if a.category == 10 => people
                .get(&a.seller)
                .map(|p| json!({"name": p.0, "city": p.1, "state": p.2, "id": a.id})),
            _ => None,
        })
        .collect()
}

/// Each auction's highest bid within its time: (auction, seller, category, expires,
/// price), for auctions with such a bid.
fn winners(all: &[Event]) -> Vec<(u64, u64, u64, i64, u64)> {
    let auctions: HashMap<u64, (u64, u64, i64, i64)> = all
        .iter()
        .filter_map(|e| match e {
            Event::Auction(a) => Some((a.id, (a.seller, a.category, a.date_time, a.expires))),
            _ => None,
        })
        .collect();
    let mut best: HashMap<u64, u64> = HashMap::new();
    for e in all {
        let Event::Bid(b) = e else { continue };
        if let Some(&(_, _, from, to)) = auctions.get(&b.auction) {
            if from <= b.date_time && b.date_time <= to {
                let m = best.entry(b.auction).or_insert(0);
                *m = (*m).max(b.price);
            }
        }
    }
    best.into_iter()
        .map(|(id, price)| {
            let (seller, category, _, expires) = auctions[&id];
            (id, seller, category, expires, price)
        })
        .collect()
}

/// SELECT category, AVG(final) FROM (SELECT MAX(B.price) AS final, A.category FROM
/// auction A, bid B WHERE A.id = B.auction AND B.date_time BETWEEN A.date_time AND
/// A.expires GROUP BY A.id, A.category) GROUP BY category
fn q4(all: &[Event]) -> Vec<Value> {
    let mut per: BTreeMap<u64, (u128, u64)> = BTreeMap::new();
    for (_, _, category, _, price) in winners(all) {
        let s = per.entry(category).or_default();
        s.0 += u128::from(price);
        s.1 += 1;
    }
    per.into_iter()
        .map(|(c, (sum, n))| {
            json!({"category": c, "avg_price": (sum / u128::from(n)) as u64, "auctions": n})
        })
        .collect()
}

/// Auctions with the most bids per HOP(date_time, 2 s, 10 s) window.
fn q5(all: &[Event]) -> Vec<Value> {
    let mut counts: BTreeMap<i64, HashMap<u64, u64>> = BTreeMap::new();
    for e in all {
        let Event::Bid(b) = e else { continue };
        let mut start = b.date_time.div_euclid(2000) * 2000;
        while start > b.date_time - 10_000 {
            *counts
                .entry(start)
                .or_default()
                .entry(b.auction)
                .or_default() += 1;
            start -= 2000;
        }
    }
    let mut rows = Vec::new();
    for (start, per) in counts {
        let max = per.values().copied().max().unwrap_or(0);
        for (auction, n) in per {
            if n == max {
                rows.push(json!({"auction": auction, "count": n,
                    "window_start": start, "window_end": start + 10_000}));
            }
        }
    }
    rows
}

/// Per seller, after each closed auction (by closing time, then id): the average
/// winning price of their last 10.
fn q6(all: &[Event]) -> Vec<Value> {
    let mut by_seller: BTreeMap<u64, Vec<(i64, u64, u64)>> = BTreeMap::new();
    for (id, seller, _, expires, price) in winners(all) {
        by_seller
            .entry(seller)
            .or_default()
            .push((expires, id, price));
    }
    let mut rows = Vec::new();
    for (seller, mut closed) in by_seller {
        closed.sort_unstable();
        let mut last = VecDeque::new();
        for (_, id, price) in closed {
            if last.len() == 10 {
                last.pop_front();
            }
            last.push_back(u128::from(price));
            let n = last.len() as u128;
            rows.push(
                json!({"seller": seller, "avg_price": (last.iter().sum::<u128>() / n) as u64,
                "auctions": n as u64, "auction": id}),
            );
        }
    }
    rows
}

/// The bids with the highest price per 10 s tumbling window.
fn q7(all: &[Event]) -> Vec<Value> {
    let mut max: BTreeMap<i64, u64> = BTreeMap::new();
    for e in all {
        if let Event::Bid(b) = e {
            let m = max.entry(b.date_time.div_euclid(10_000)).or_default();
            *m = (*m).max(b.price);
        }
    }
    all.iter()
        .filter_map(|e| match e {
            Event::Bid(b) if max[&b.date_time.div_euclid(10_000)] == b.price => Some(json!({
                "auction": b.auction, "bidder": b.bidder, "price": b.price,
                "channel": b.channel, "url": b.url, "date_time": b.date_time, "extra": b.extra,
            })),
            _ => None,
        })
        .collect()
}

/// People who opened an auction in the 10 s tumbling window they registered in.
fn q8(all: &[Event]) -> Vec<Value> {
    let window = |t: i64| t.div_euclid(10_000) * 10_000;
    let sold: BTreeSet<(u64, i64)> = all
        .iter()
        .filter_map(|e| match e {
            Event::Auction(a) => Some((a.seller, window(a.date_time))),
            _ => None,
        })
        .collect();
    all.iter()
        .filter_map(|e| match e {
            Event::Person(p) if sold.contains(&(p.id, window(p.date_time))) => {
                Some(json!({"id": p.id, "name": p.name, "window_start": window(p.date_time)}))
            }
            _ => None,
        })
        .collect()
}
