//! `[remote_keys]`: how keys fetched over HTTP are fetched, cached and refreshed.

use super::or_default;
use crate::policy::diagnostic::DiagnosticKind;
use crate::policy::reader::{Reader, Table, Value};

pub(super) fn read_remote_keys(
    r: &mut Reader,
    v: &Value<'_>,
) -> Option<crate::jwks::RemoteSettings> {
    use crate::jwks::{RemoteSettings, Startup};
    use std::time::Duration;
    let mut t = r.table(v, "[remote_keys]")?;
    let d = RemoteSettings::default();
    let mut ok = true;
    let mut duration =
        |t: &mut Table<'_, '_>, key: &'static str, default: Duration, min: u64, max: u64| {
            let Some(v) = t.get(key) else { return default };
            let what = t.path(key);
            match r.duration(v, &what) {
                Some(d) if (min..=max).contains(&d.value) => Duration::from_secs(d.value),
                Some(d) => {
                    r.error(
                        DiagnosticKind::InvalidValue,
                        d.span,
                        format!(
                            "`{what}` must be between {min} s and {max} s, found {} s",
                            d.value
                        ),
                        "pick a value in that range",
                    );
                    ok = false;
                    default
                }
                None => {
                    ok = false;
                    default
                }
            }
        };
    const DAY: u64 = 86_400;
    let timeout = duration(&mut t, "timeout", d.timeout, 1, 60);
    let cache_min = duration(&mut t, "cache_min", d.cache_min, 1, 7 * DAY);
    let cache_max = duration(&mut t, "cache_max", d.cache_max, 1, 30 * DAY);
    let cache_default = duration(&mut t, "cache_default", d.cache_default, 1, 30 * DAY);
    let max_stale = duration(&mut t, "max_stale", d.max_stale, 0, 30 * DAY);
    let cooldown = duration(&mut t, "cooldown", d.cooldown, 1, DAY);
    let negative_cache = duration(&mut t, "negative_cache", d.negative_cache, 0, DAY);
    let max_response_bytes = or_default(
        t.get("max_response_bytes"),
        d.max_response_bytes as u64,
        |v| r.count(v, "remote_keys.max_response_bytes", 1024, 16 << 20),
    );
    let startup = or_default(t.get("startup"), d.startup, |v| {
        r.choice(
            v,
            "remote_keys.startup",
            &[("eager", Startup::Eager), ("lazy", Startup::Lazy)],
        )
    });
    if ok && !(cache_min <= cache_default && cache_default <= cache_max) {
        r.error(
            DiagnosticKind::Conflict,
            t.span(),
            "`[remote_keys]` needs `cache_min` <= `cache_default` <= `cache_max`",
            format!(
                "here they are {} s, {} s and {} s",
                cache_min.as_secs(),
                cache_default.as_secs(),
                cache_max.as_secs()
            ),
        );
        ok = false;
    }
    t.finish(r);
    let max_response_bytes = usize::try_from(max_response_bytes?).ok()?;
    let startup = startup?;
    ok.then_some(RemoteSettings {
        timeout,
        max_response_bytes,
        cache_min,
        cache_max,
        cache_default,
        max_stale,
        cooldown,
        negative_cache,
        startup,
    })
}
