//! Timestamps as the lineage database stores them (RFC 3339 UTC). The code lives in
//! [`crate::util::time`], below every layer; this path stays for the callers that
//! think of it as the database's clock.

pub use crate::util::time::*;
