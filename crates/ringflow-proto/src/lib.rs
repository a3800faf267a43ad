//! ringflow-proto
