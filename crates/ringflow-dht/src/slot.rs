//! Key → slot → partition, the way Redis Cluster does it.
//!
//! A key's slot is `CRC16(key) mod 16384` (CRC-16/XMODEM), where only the part inside the
//! first `{...}` is hashed if that part is non-empty, so `{user1}.a` and `{user1}.b` share a
//! slot. Slots map to ring partitions in contiguous ranges, so a partition owns a contiguous
//! slot range and `CLUSTER SLOTS` can describe the cluster compactly.

use std::ops::Range;

use ringflow_ring::PartitionId;

use crate::DhtError;

/// Number of hash slots (Redis Cluster's).
pub const SLOTS: u32 = 16384;

const fn crc16_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut j = 0;
        while j < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            j += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static CRC16: [u16; 256] = crc16_table();

/// CRC-16/XMODEM (polynomial 0x1021, initial 0), as used by Redis Cluster.
pub fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16[(((crc >> 8) as u8) ^ b) as usize]
    })
}

/// The part of a key that is hashed: the content of the first non-empty `{...}`, else the key.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// The key's hash slot in `0..16384`.
pub fn key_slot(key: &[u8]) -> u16 {
    (crc16(hash_tag(key)) as u32 % SLOTS) as u16
}

/// Maps slots onto a partition count: contiguous, equal ranges of slots per partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotMap {
    partitions: u32,
}

impl SlotMap {
    /// Partition counts must be powers of two no larger than [`SLOTS`].
    pub fn new(partitions: u32) -> Result<Self, DhtError> {
        if partitions == 0 || !partitions.is_power_of_two() || partitions > SLOTS {
            return Err(DhtError::Config(format!(
                "the DHT needs a power-of-two partition count of at most {SLOTS}, got {partitions}"
            )));
        }
        Ok(Self { partitions })
    }

    /// Number of partitions.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The partition holding `slot`.
    pub fn partition_of_slot(&self, slot: u16) -> PartitionId {
        PartitionId(slot as u32 / (SLOTS / self.partitions))
    }

    /// The partition holding `key`.
    pub fn partition_of_key(&self, key: &[u8]) -> PartitionId {
        self.partition_of_slot(key_slot(key))
    }

    /// The slots of a partition.
    pub fn slots_of(&self, p: PartitionId) -> Range<u16> {
        let width = SLOTS / self.partitions;
        let start = p.0.min(self.partitions) * width;
        (start as u16)..((start + width).min(SLOTS) as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_check_value() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
    }

    #[test]
    fn slots_match_redis() {
        // Values from `redis-cli CLUSTER KEYSLOT`.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"hello"), 866);
        assert_eq!(key_slot(b""), 0);
    }

    #[test]
    fn hash_tags_follow_redis_rules() {
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"{"), b"{");
        assert_eq!(hash_tag(b"}{"), b"}{");
    }

    #[test]
    fn slot_ranges_partition_the_slot_space() {
        for p in [1u32, 2, 1024, 16384] {
            let m = SlotMap::new(p).unwrap();
            let mut next = 0u32;
            for i in 0..p {
                let r = m.slots_of(PartitionId(i));
                assert_eq!(r.start as u32, next);
                for s in [r.start, r.end - 1] {
                    assert_eq!(m.partition_of_slot(s), PartitionId(i));
                }
                next = r.end as u32;
            }
            assert_eq!(next, SLOTS);
        }
        assert!(SlotMap::new(3).is_err());
        assert!(SlotMap::new(32768).is_err());
        assert!(SlotMap::new(0).is_err());
    }
}
