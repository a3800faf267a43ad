//! Durable partitioned store (being written).
