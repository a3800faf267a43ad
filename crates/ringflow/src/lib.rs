//! ringflow facade
