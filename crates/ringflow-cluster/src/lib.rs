//! ringflow-cluster
