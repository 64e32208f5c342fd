//! `[time]`: leeway, which of `exp`, `nbf` and `iat` a token needs, and its maximum age.

use super::PRESENCE;
use crate::policy::diagnostic::DiagnosticKind;
use crate::policy::lint;
use crate::policy::model::{Presence, TimeRules};
use crate::policy::reader::{Reader, Value};

pub(super) fn default_time() -> TimeRules {
    TimeRules {
        leeway: 0,
        exp: Presence::Required,
        nbf: Presence::Optional,
        iat: Presence::Optional,
        max_age: None,
    }
}

pub(super) fn read_time(r: &mut Reader, v: &Value<'_>) -> Option<TimeRules> {
    let mut t = r.table(v, "[time]")?;
    let d = default_time();
    let leeway = t.get("leeway").map(|v| r.duration(v, "time.leeway"));
    let exp = t.get("exp").map(|v| r.choice(v, "time.exp", PRESENCE));
    let nbf = t.get("nbf").map(|v| r.choice(v, "time.nbf", PRESENCE));
    let iat = t.get("iat").map(|v| r.choice(v, "time.iat", PRESENCE));
    let max_age = t.get("max_age").map(|v| r.duration(v, "time.max_age"));
    if let Some(Some(l)) = &leeway {
        lint::leeway(r, l);
    }
    if let (Some(Some(presence)), Some(span)) = (&exp, t.key_span("exp")) {
        lint::exp(r, *presence, span);
    }
    if let (Some(Some(Presence::Ignored)), Some(Some(_)), Some(span)) =
        (&iat, &max_age, t.key_span("max_age"))
    {
        r.error(
            DiagnosticKind::Conflict,
            span,
            "`time.max_age` is measured from `iat`, but `time.iat` is `ignored`",
            "set `iat = \"required\"` (or remove `iat`: `max_age` makes it required)",
        );
    }
    t.finish(r);
    let max_age = max_age.map_or(Some(None), |m| m.map(|m| Some(m.value)))?;
    Some(TimeRules {
        leeway: leeway.map_or(Some(d.leeway), |l| l.map(|l| l.value))?,
        exp: exp.unwrap_or(Some(d.exp))?,
        nbf: nbf.unwrap_or(Some(d.nbf))?,
        // A maximum age needs an issue time to measure it from.
        iat: match (iat.unwrap_or(Some(d.iat))?, max_age) {
            (Presence::Ignored, Some(_)) => return None,
            (_, Some(_)) => Presence::Required,
            (iat, None) => iat,
        },
        max_age,
    })
}
