//! ringflow-ring
