//! `[limits]`: the largest token the engine looks at.

use super::or_default;
use crate::policy::reader::{Reader, Value};

/// The default maximum token size.
pub(crate) const DEFAULT_MAX_TOKEN_BYTES: u64 = 16_384;

pub(super) fn read_limits(r: &mut Reader, v: &Value<'_>) -> Option<u64> {
    let mut t = r.table(v, "[limits]")?;
    let max = or_default(t.get("max_token_bytes"), DEFAULT_MAX_TOKEN_BYTES, |v| {
        r.count(v, "limits.max_token_bytes", 64, 1 << 20)
    });
    t.finish(r);
    max
}
