//! ringflow-net
